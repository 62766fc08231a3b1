"""The PDF side of Factur-X and ZUGFeRD: the embedded invoice XML, the XMP metadata, and
the embedding conventions a validator reports on.

:func:`find_invoice_xml` returns the embedded XML exactly as stored (decoded from its PDF
stream filter, nothing else), :func:`read_xmp` the ``fx:``/``zf:`` properties and the
PDF/A identification, :func:`check_embedding` a list of :class:`EmbeddingProblem`.
:func:`read_pdf` opens a PDF once for both detection and the embedding checks
(:func:`embedding_problems`), so a received PDF is not read twice. Reading
the invoice itself is ``cii.py``'s job, deciding validity ``validate.py``'s. Nothing here
writes to a PDF or fetches anything.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pikepdf
from lxml import etree

from capture.einvoice._profiles import (
    profile_from_conformance_level,
    profile_from_guideline,
    profiles_agree,
)
from capture.einvoice.cii import guideline_id, is_cii, is_zugferd1
from capture.errors import CaptureBadInput, ProtectedPdf, UnreadablePdf, UnsafeXml
from capture.safexml import DEFAULT_MAX_BYTES, parse_xml

#: Names of the invoice attachment, in order of preference when several are present.
INVOICE_FILENAMES = ("factur-x.xml", "xrechnung.xml", "zugferd-invoice.xml")
FACTURX_NS = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
ZUGFERD2_NS = "urn:zugferd:pdfa:CrossIndustryDocument:invoice:2p0#"
ZUGFERD1_NS = "urn:ferd:pdfa:CrossIndustryDocument:invoice:1p0#"
#: The 2014 release candidate of ZUGFeRD 1 (still found in archives of old invoices).
ZUGFERD1_RC_NS = "urn:ferd:pdfa:invoice:rc#"
XMP_NAMESPACES = (FACTURX_NS, ZUGFERD2_NS, ZUGFERD1_NS, ZUGFERD1_RC_NS)
_PDFAID = "http://www.aiim.org/pdfa/ns/id/"
_PDFA_SCHEMA = "http://www.aiim.org/pdfa/ns/schema#"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_AF_RELATIONSHIPS = ("Data", "Source", "Alternative")
_XML_SUBTYPES = ("text/xml", "application/xml")

_Report = Callable[[str, str], None]
# qpdf names its input ("stream <_io.BytesIO object at 0x...>: "): noise in a user message.
_STREAM_PREFIX = re.compile(r"^stream <[^>]*>:?\s*")

__all__ = [
    "INVOICE_FILENAMES",
    "EmbeddedXml",
    "EmbeddingProblem",
    "PdfReading",
    "XmpInfo",
    "check_embedding",
    "embedding_problems",
    "find_invoice_xml",
    "is_pdf",
    "open_pdf",
    "read_pdf",
    "read_xmp",
]


@dataclass(frozen=True)
class EmbeddedXml:
    """The invoice XML attached to a PDF and how it is attached."""

    #: The attachment's file name as written in the PDF (``/UF``, else ``/F``).
    filename: str
    #: The file's bytes, exactly as embedded (only the PDF stream filter is undone).
    data: bytes
    #: ``/AFRelationship`` of the file specification (``Data``, ``Alternative``...), if any.
    af_relationship: str | None
    #: ``/Subtype`` of the embedded file stream (a MIME type such as ``text/xml``), if any.
    mime_type: str | None
    #: Whether the catalog's ``/AF`` array references the file specification (PDF/A-3).
    in_catalog_af: bool
    #: Whether the ``/EmbeddedFiles`` name tree lists it (else it was found through /AF).
    in_name_tree: bool


@dataclass(frozen=True)
class XmpInfo:
    """What the XMP metadata declares about PDF/A and the embedded invoice."""

    pdfa_part: str | None = None
    pdfa_conformance: str | None = None
    #: The namespace carrying the invoice properties (Factur-X, ZUGFeRD 2 or 1), if any.
    namespace: str | None = None
    document_file_name: str | None = None
    conformance_level: str | None = None
    document_type: str | None = None
    version: str | None = None
    #: Whether a PDF/A extension schema describes :attr:`namespace` (PDF/A requires it).
    extension_schema: bool = False


@dataclass(frozen=True)
class EmbeddingProblem:
    """One breach of the Factur-X/ZUGFeRD embedding conventions."""

    code: str
    message: str


@dataclass(frozen=True)
class PdfReading:
    """What one reading of a PDF found: what detection and the embedding checks work from."""

    #: qpdf's warnings on opening the PDF (damage it recovered from), as it words them.
    warnings: tuple[str, ...]
    #: The XMP properties; ``None`` without an XMP packet or when it cannot be read.
    xmp: XmpInfo | None
    #: Why the XMP packet cannot be read, if it cannot.
    xmp_error: CaptureBadInput | None
    #: The invoice attachment; ``None`` without one or when it cannot be read.
    embedded: EmbeddedXml | None
    #: Why the invoice attachment cannot be read, if it cannot.
    attachment_error: CaptureBadInput | None


def is_pdf(data: bytes) -> bool:
    """Whether the bytes start like a PDF (``%PDF-`` within the first KiB)."""
    return data[:1024].lstrip(b"\x00\t\n\r\f ").startswith(b"%PDF-")


@contextmanager
def open_pdf(data: bytes) -> Iterator[pikepdf.Pdf]:
    """Open PDF bytes read-only; pikepdf failures, at opening or while the PDF is being
    read inside the ``with`` block, become capture BadInput errors."""
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError as exc:
        raise ProtectedPdf("the PDF is password-protected; send it without a password") from exc
    except pikepdf.PdfError as exc:
        reason = _STREAM_PREFIX.sub("", str(exc))
        raise UnreadablePdf(
            f"the PDF cannot be read ({len(data)} bytes): {reason}", size=len(data)
        ) from exc
    with pdf:
        try:
            yield pdf
        except pikepdf.PdfError as exc:  # qpdf reads lazily: damage can surface later
            reason = _STREAM_PREFIX.sub("", str(exc))
            raise UnreadablePdf(f"the PDF is damaged: {reason}", size=len(data)) from exc


def find_invoice_xml(
    pdf: pikepdf.Pdf, *, preferred: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> EmbeddedXml | None:
    """The attached invoice XML, or ``None`` if the PDF has none.

    Candidates are attachments named like :data:`INVOICE_FILENAMES` (any case). With
    several, ``preferred`` (the XMP ``DocumentFileName``) wins, then the order of
    :data:`INVOICE_FILENAMES`.
    """
    catalog_af = {spec.objgen for spec in _catalog_af(pdf) if spec.is_indirect}
    candidates: dict[str, tuple[str, pikepdf.Dictionary, bool]] = {}
    for name, spec, in_name_tree in _filespecs(pdf):
        key = name.casefold()
        if key in INVOICE_FILENAMES and key not in candidates:
            candidates[key] = (name, spec, in_name_tree)
    if not candidates:
        return None
    order = list(INVOICE_FILENAMES)
    if preferred is not None and preferred.casefold() in candidates:
        order.insert(0, preferred.casefold())
    name, spec, in_name_tree = next(candidates[key] for key in order if key in candidates)
    stream = _embedded_stream(spec)
    if stream is None:
        return None
    relationship = spec.get("/AFRelationship")
    subtype = stream.get("/Subtype")
    return EmbeddedXml(
        filename=name,
        data=_read_stream(stream, name, max_bytes),
        af_relationship=str(relationship)[1:] if isinstance(relationship, pikepdf.Name) else None,
        mime_type=str(subtype)[1:] if isinstance(subtype, pikepdf.Name) else None,
        in_catalog_af=spec.is_indirect and spec.objgen in catalog_af,
        in_name_tree=in_name_tree,
    )


def read_xmp(pdf: pikepdf.Pdf) -> XmpInfo | None:
    """The PDF/A and Factur-X/ZUGFeRD properties of the XMP packet; ``None`` without one.

    Raises a capture BadInput (``MalformedXml``, ``UnsafeXml``) if the packet is not safe,
    well-formed XML.
    """
    metadata = pdf.Root.get("/Metadata")
    if not isinstance(metadata, pikepdf.Stream):
        return None
    root = parse_xml(metadata.read_bytes())
    namespace = next(
        (ns for ns in XMP_NAMESPACES if _xmp_property(root, ns, "DocumentFileName") is not None),
        None,
    ) or next((ns for ns in XMP_NAMESPACES if _xmp_mentions(root, ns)), None)
    described = {
        (text or "").strip()
        for text in root.xpath(
            "//pdfaSchema:namespaceURI/text() | //@pdfaSchema:namespaceURI",
            namespaces={"pdfaSchema": _PDFA_SCHEMA},
        )
    }

    def prop(name: str) -> str | None:
        return None if namespace is None else _xmp_property(root, namespace, name)

    return XmpInfo(
        pdfa_part=_xmp_property(root, _PDFAID, "part"),
        pdfa_conformance=_xmp_property(root, _PDFAID, "conformance"),
        namespace=namespace,
        document_file_name=prop("DocumentFileName"),
        conformance_level=prop("ConformanceLevel"),
        document_type=prop("DocumentType"),
        version=prop("Version"),
        extension_schema=namespace is not None and namespace in described,
    )


def read_pdf(data: bytes) -> PdfReading:
    """Open a PDF and read its warnings, XMP properties and invoice attachment.

    An unreadable XMP packet or attachment is recorded, not raised (the XMP ``DocumentFileName``
    breaks ties between attachments when it can be read). Raises a capture BadInput only
    when the PDF itself cannot be opened or read.
    """
    with open_pdf(data) as pdf:
        warnings = tuple(str(warning) for warning in pdf.get_warnings())
        xmp: XmpInfo | None = None
        xmp_error: CaptureBadInput | None = None
        try:
            xmp = read_xmp(pdf)
        except CaptureBadInput as exc:
            xmp_error = exc
        embedded: EmbeddedXml | None = None
        attachment_error: CaptureBadInput | None = None
        try:
            embedded = find_invoice_xml(
                pdf, preferred=None if xmp is None else xmp.document_file_name
            )
        except CaptureBadInput as exc:
            attachment_error = exc
    return PdfReading(warnings, xmp, xmp_error, embedded, attachment_error)


def check_embedding(data: bytes) -> list[EmbeddingProblem]:
    """Check the Factur-X/ZUGFeRD conventions of a PDF; an empty list means none broken.

    Checks: an invoice XML is attached under a standard name, with ``/AFRelationship``
    ``Data``, ``Source`` or ``Alternative``, a ``text/xml`` MIME type, referenced from
    the catalog's ``/AF``; the XMP is readable, declares PDF/A-3, carries the
    Factur-X/ZUGFeRD properties with their PDF/A extension schema, names the attachment,
    says INVOICE, and its conformance level agrees with the XML's guideline (BT-24).
    Raises only when the PDF itself cannot be opened.
    """
    return embedding_problems(read_pdf(data))


def embedding_problems(
    reading: PdfReading, *, xml_root: etree._Element | None = None
) -> list[EmbeddingProblem]:
    """:func:`check_embedding` on a PDF already read; ``xml_root``, the attachment's XML
    already parsed, spares parsing it again."""
    problems: list[EmbeddingProblem] = []

    def report(code: str, message: str) -> None:
        problems.append(EmbeddingProblem(code, message))

    if reading.warnings:
        report(
            "pdf-damaged",
            "the PDF is damaged and was read by recovery: "
            + "; ".join(_STREAM_PREFIX.sub("", w) for w in reading.warnings[:3]),
        )
    xmp = reading.xmp
    if reading.xmp_error is not None:
        report("xmp-unreadable", f"the XMP metadata cannot be read: {reading.xmp_error}")
    elif xmp is None:
        report("xmp-missing", "the PDF has no XMP metadata stream")
    embedded = reading.embedded
    if reading.attachment_error is not None:
        report(
            "attachment-unreadable",
            f"the invoice attachment cannot be read: {reading.attachment_error}",
        )

    if embedded is None:
        report(
            "no-invoice-xml",
            "no attachment named " + ", ".join(INVOICE_FILENAMES) + " holds an invoice",
        )
    else:
        _check_attachment(embedded, report)
    if xmp is not None:
        _check_xmp(xmp, embedded, report, xml_root)
    return problems


def _check_attachment(embedded: EmbeddedXml, report: _Report) -> None:
    name = embedded.filename
    if embedded.af_relationship is None:
        report("af-relationship-missing", f"the attachment {name} has no /AFRelationship")
    elif embedded.af_relationship not in _AF_RELATIONSHIPS:
        report(
            "af-relationship-invalid",
            f"the attachment {name} has /AFRelationship /{embedded.af_relationship}; "
            "expected /Data, /Source or /Alternative",
        )
    if not embedded.in_name_tree:
        report(
            "attachment-not-in-name-tree",
            f"the attachment {name} is missing from the /EmbeddedFiles name tree",
        )
    if not embedded.in_catalog_af:
        report(
            "af-not-in-catalog",
            f"the catalog's /AF array does not reference the attachment {name} (PDF/A-3)",
        )
    if embedded.mime_type not in _XML_SUBTYPES:
        report(
            "attachment-mime-type",
            f"the attachment {name} has MIME type {embedded.mime_type!r}; expected text/xml",
        )


def _check_xmp(
    xmp: XmpInfo,
    embedded: EmbeddedXml | None,
    report: _Report,
    xml_root: etree._Element | None,
) -> None:
    if xmp.pdfa_part is None:
        report("pdfa-not-declared", "the XMP metadata declares no PDF/A part (pdfaid:part)")
    elif xmp.pdfa_part.strip() != "3":
        report(
            "pdfa-not-part-3",
            f"the PDF declares PDF/A-{xmp.pdfa_part.strip()}; Factur-X needs PDF/A-3",
        )
    if xmp.namespace is None:
        report(
            "xmp-invoice-properties-missing",
            "the XMP metadata has no Factur-X/ZUGFeRD properties (fx:DocumentFileName...)",
        )
        return
    if not xmp.extension_schema:
        report(
            "xmp-extension-schema-missing",
            f"no PDF/A extension schema describes the namespace {xmp.namespace}",
        )
    if embedded is not None and xmp.document_file_name != embedded.filename:
        report(
            "xmp-filename-mismatch",
            f"the XMP DocumentFileName is {xmp.document_file_name!r} but the invoice is "
            f"attached as {embedded.filename!r}",
        )
    if (xmp.document_type or "").strip().upper() != "INVOICE":
        report(
            "xmp-document-type",
            f"the XMP DocumentType is {xmp.document_type!r}; expected INVOICE",
        )
    if not (xmp.version or "").strip():
        report("xmp-version-missing", "the XMP metadata has no Version")
    xmp_profile = profile_from_conformance_level(xmp.conformance_level)
    if xmp.conformance_level is None:
        report("xmp-conformance-level-missing", "the XMP metadata has no ConformanceLevel")
    elif xmp_profile is None:
        report(
            "xmp-conformance-level-unknown",
            f"the XMP ConformanceLevel {xmp.conformance_level!r} names no known profile",
        )
    if embedded is None or xmp_profile is None:
        return
    root = xml_root
    if root is None:
        try:
            root = parse_xml(embedded.data)
        except CaptureBadInput:
            return  # the reader reports the XML itself; nothing to compare with
    if not is_cii(root):
        return
    guideline = guideline_id(root)
    xml_profile = profile_from_guideline(guideline, zugferd1=is_zugferd1(root))
    if xml_profile is not None and not profiles_agree(xmp_profile, xml_profile):
        report(
            "xmp-profile-mismatch",
            f"the XMP ConformanceLevel {xmp.conformance_level!r} disagrees with the XML's "
            f"guideline {guideline!r} ({xml_profile})",
        )


def _filespecs(pdf: pikepdf.Pdf) -> Iterator[tuple[str, pikepdf.Dictionary, bool]]:
    """(file name, file specification, listed in the name tree) of every attachment: the
    EmbeddedFiles name tree, then specifications only referenced from the catalog's /AF
    (a damaged name tree must not hide the invoice)."""
    seen: set[tuple[int, int]] = set()
    for key, attached in pdf.attachments.items():
        spec = attached.obj
        if spec.is_indirect:
            seen.add(spec.objgen)
        yield _spec_name(spec) or key, spec, True
    for spec in _catalog_af(pdf):
        if not (spec.is_indirect and spec.objgen in seen):
            name = _spec_name(spec)
            if name:
                yield name, spec, False


def _catalog_af(pdf: pikepdf.Pdf) -> list[pikepdf.Dictionary]:
    af = pdf.Root.get("/AF")
    if not isinstance(af, pikepdf.Array):
        return []
    return [spec for spec in af if isinstance(spec, pikepdf.Dictionary)]


def _spec_name(spec: pikepdf.Dictionary) -> str | None:
    for key in ("/UF", "/F"):
        value = spec.get(key)
        if isinstance(value, pikepdf.String):
            return str(value)
    return None


def _embedded_stream(spec: pikepdf.Dictionary) -> pikepdf.Stream | None:
    ef = spec.get("/EF")
    if not isinstance(ef, pikepdf.Dictionary):
        return None
    for key in ("/UF", "/F"):
        stream = ef.get(key)
        if isinstance(stream, pikepdf.Stream):
            return stream
    return None


def _read_stream(stream: pikepdf.Stream, name: str, max_bytes: int) -> bytes:
    """The decoded bytes of an embedded file, refusing to inflate past ``max_bytes``.

    Plain Flate (the usual case) is inflated here with a bound, so a compression bomb
    costs nothing; any other filter chain is left to qpdf.
    """
    filters = stream.get("/Filter")
    if isinstance(filters, pikepdf.Array) and len(filters) == 1:
        filters = filters[0]
    try:
        if filters is None:
            data = stream.read_raw_bytes()
        elif filters == pikepdf.Name.FlateDecode and stream.get("/DecodeParms") is None:
            inflater = zlib.decompressobj()
            data = inflater.decompress(stream.read_raw_bytes(), max_bytes + 1)
        else:
            data = stream.read_bytes()
    except (zlib.error, pikepdf.PdfError) as exc:
        raise UnreadablePdf(
            f"the embedded file {name} cannot be decoded: {exc}", filename=name
        ) from exc
    if len(data) > max_bytes:
        raise UnsafeXml(
            f"the embedded file {name} is larger than the limit of {max_bytes} bytes",
            reason="too_large",
            limit=max_bytes,
            filename=name,
        )
    return data


def _xmp_property(root: etree._Element, namespace: str, name: str) -> str | None:
    """A simple XMP property, written as an element or as an rdf:Description attribute."""
    tag = f"{{{namespace}}}{name}"
    for element in root.iter(tag):
        if element.text and element.text.strip():
            return element.text.strip()
    for description in root.iter(f"{{{_RDF}}}Description"):
        value = description.get(tag)
        if value is not None and value.strip():
            return value.strip()
    return None


def _xmp_mentions(root: etree._Element, namespace: str) -> bool:
    for element in root.iter(etree.Element):
        if etree.QName(element).namespace == namespace:
            return True
        if any(etree.QName(attribute).namespace == namespace for attribute in element.attrib):
            return True
    return False
