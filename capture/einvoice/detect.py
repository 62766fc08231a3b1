"""Which e-invoice is this? Detection from the content only, never from a file name.

A PDF (``%PDF-`` header) is a Factur-X/ZUGFeRD candidate: its invoice attachment
(``factur-x.xml``, ``xrechnung.xml``, ``zugferd-invoice.xml``, any case; the XMP
``DocumentFileName`` breaks ties) is extracted byte for byte. Anything else starting like
XML is parsed safely and classified by its root element's namespace and name: CII
(``CrossIndustryInvoice``, or ZUGFeRD 1.0 ``CrossIndustryDocument``), UBL ``Invoice`` or
``CreditNote``. The profile comes from the specification identifier (BT-24).

This module decides and extracts; it neither reads invoice fields nor validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from capture.einvoice import cii, facturx, ubl
from capture.einvoice._profiles import Profile, profile_from_guideline
from capture.errors import (
    CaptureBadInput,
    EmptyInput,
    NoEmbeddedInvoice,
    NotAnInvoice,
    UnsupportedFormat,
)
from capture.safexml import parse_xml

Syntax = Literal["facturx-pdf", "cii", "ubl-invoice", "ubl-creditnote"]
Flavor = Literal["factur-x", "zugferd-1", "zugferd-2"]

__all__ = ["Detected", "Flavor", "Profile", "Syntax", "detect", "detect_and_parse_xml"]

# Pre-release ZUGFeRD 1 files (2014) used the UN/CEFACT CBFBUY draft; nothing reads it today.
_CBFBUY_INVOICE = "{urn:un:unece:uncefact:data:standard:CBFBUY:5}Invoice"
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


@dataclass(frozen=True)
class Detected:
    """What an e-invoice is, and its invoice XML."""

    #: ``facturx-pdf`` for a PDF with an embedded invoice; else the XML syntax.
    syntax: Syntax
    #: MINIMUM, BASIC WL, BASIC, EN16931, EXTENDED, EXTENDED-CTC-FR, XRECHNUNG, COMFORT
    #: (ZUGFeRD 1.0), or ``None`` when BT-24 names no profile we know.
    profile: Profile | None
    #: BT-24 exactly as written (``urn:cen.eu:en16931:2017#compliant#...``), or ``None``.
    guideline_id: str | None
    #: The invoice XML: the bytes given, or the PDF attachment's bytes, unchanged.
    xml: bytes
    #: For a PDF, the attachment's name as written in the PDF.
    embedded_filename: str | None
    #: Factur-X / ZUGFeRD generation: always set for a PDF; for bare XML only when the
    #: content says it (ZUGFeRD 1.0 root, or a factur-x.eu / zugferd.de guideline).
    flavor: Flavor | None
    #: True when the XML root is a ZUGFeRD 1.0 ``CrossIndustryDocument`` (syntax ``cii``).
    zugferd1: bool = False
    #: For a PDF, what reading it found, so that the embedding checks need not read it again.
    pdf: facturx.PdfReading | None = field(default=None, repr=False, compare=False)

    @property
    def xml_syntax(self) -> Literal["cii", "ubl-invoice", "ubl-creditnote"]:
        """The syntax of :attr:`xml` (a Factur-X PDF always embeds CII)."""
        return "cii" if self.syntax == "facturx-pdf" else self.syntax

    @property
    def namespaces(self) -> dict[str, str]:
        """Prefixes under which the provenance XPaths of the parsed data evaluate."""
        if self.xml_syntax == "ubl-invoice":
            return dict(ubl.INVOICE_NAMESPACES)
        if self.xml_syntax == "ubl-creditnote":
            return dict(ubl.CREDITNOTE_NAMESPACES)
        return dict(cii.ZUGFERD1_NAMESPACES if self.zugferd1 else cii.NAMESPACES)


def detect(data: bytes) -> Detected:
    """Detect the e-invoice in ``data`` or raise a capture ``BadInput``.

    Raises :class:`NoEmbeddedInvoice` (a :class:`NotAnInvoice`) for a readable PDF
    without an invoice attachment (treat it as an ordinary PDF), :class:`NotAnInvoice` for
    anything else that is neither PDF nor an invoice XML;
    :class:`UnsupportedFormat` for a recognised format Coffre does not read;
    ``UnreadablePdf``, ``MalformedXml``, ``UnsafeXml`` when the bytes cannot be read.
    """
    return detect_and_parse_xml(data)[0]


def detect_and_parse_xml(data: bytes) -> tuple[Detected, etree._Element]:
    """:func:`detect`, also returning the parsed XML root (so it is parsed only once)."""
    if not data:
        raise EmptyInput("the file is empty (0 bytes)")
    if facturx.is_pdf(data):
        return _detect_pdf(data)
    if not _looks_like_xml(data):
        raise NotAnInvoice(
            "the file is neither a PDF nor XML, so it is not an e-invoice",
            head=data[:8].hex(),
        )
    root = parse_xml(data)
    syntax, zugferd1 = _classify(root)
    guideline = _guideline(root, syntax)
    detected = Detected(
        syntax=syntax,
        profile=profile_from_guideline(guideline, zugferd1=zugferd1),
        guideline_id=guideline,
        xml=data,
        embedded_filename=None,
        flavor=_xml_flavor(guideline, zugferd1),
        zugferd1=zugferd1,
    )
    return detected, root


def _detect_pdf(data: bytes) -> tuple[Detected, etree._Element]:
    # A broken XMP packet is an embedding problem, not a reason to refuse; an attachment
    # that cannot be read is.
    reading = facturx.read_pdf(data)
    if reading.attachment_error is not None:
        raise reading.attachment_error
    xmp, embedded = reading.xmp, reading.embedded
    if embedded is None:
        raise NoEmbeddedInvoice(
            "the PDF has no embedded invoice XML (" + ", ".join(facturx.INVOICE_FILENAMES) + ")"
        )
    try:
        root = parse_xml(embedded.data)
    except CaptureBadInput as exc:
        details = {**exc.data, "embedded_filename": embedded.filename}
        raise type(exc)(f"the embedded {embedded.filename}: {exc.message}", **details) from exc
    syntax, zugferd1 = _classify(root)
    if syntax != "cii":
        raise UnsupportedFormat(
            f"the PDF embeds {embedded.filename} as UBL; Factur-X and ZUGFeRD embed CII",
            embedded_filename=embedded.filename,
        )
    guideline = cii.guideline_id(root)
    flavor: Flavor
    if zugferd1:
        flavor = "zugferd-1"
    elif (xmp is not None and xmp.namespace == facturx.ZUGFERD2_NS) or (
        (xmp is None or xmp.namespace is None)
        and embedded.filename.casefold() == "zugferd-invoice.xml"
    ):
        flavor = "zugferd-2"
    else:
        flavor = "factur-x"
    detected = Detected(
        syntax="facturx-pdf",
        profile=profile_from_guideline(guideline, zugferd1=zugferd1),
        guideline_id=guideline,
        xml=embedded.data,
        embedded_filename=embedded.filename,
        flavor=flavor,
        zugferd1=zugferd1,
        pdf=reading,
    )
    return detected, root


def _looks_like_xml(data: bytes) -> bool:
    if data.startswith(_UTF16_32_BOMS):
        return True
    head = data[:1024].removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    return head.startswith(b"<")


def _classify(root: etree._Element) -> tuple[Literal["cii", "ubl-invoice", "ubl-creditnote"], bool]:
    if cii.is_cii(root):
        return "cii", cii.is_zugferd1(root)
    if root.tag == ubl.INVOICE_ROOT:
        return "ubl-invoice", False
    if root.tag == ubl.CREDITNOTE_ROOT:
        return "ubl-creditnote", False
    name = etree.QName(root)
    if root.tag == _CBFBUY_INVOICE:
        raise UnsupportedFormat(
            "this is a pre-release ZUGFeRD 1 invoice (UN/CEFACT CBFBUY draft, 2014), which "
            "Coffre does not read; ask the sender for ZUGFeRD 2 / Factur-X",
            root=name.text,
        )
    if name.localname in ("Invoice", "CreditNote") and "ubl" in (name.namespace or "").lower():
        raise UnsupportedFormat(
            f"UBL root {name.text} is not UBL 2.1 (namespace ...:{name.localname}-2)",
            root=name.text,
        )
    raise NotAnInvoice(
        f"the XML root element {name.text} is not a CII or UBL invoice or credit note",
        root=name.text,
    )


def _guideline(root: etree._Element, syntax: str) -> str | None:
    return cii.guideline_id(root) if syntax == "cii" else ubl.guideline_id(root)


def _xml_flavor(guideline: str | None, zugferd1: bool) -> Flavor | None:
    if zugferd1:
        return "zugferd-1"
    urn = (guideline or "").lower()
    if "factur-x.eu" in urn:
        return "factur-x"
    if "zugferd.de" in urn:
        return "zugferd-2"
    return None
