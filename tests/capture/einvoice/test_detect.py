"""Detection decides from the bytes alone: Factur-X/ZUGFeRD PDF, CII, UBL Invoice or
CreditNote, with profile and flavour; the invoice XML comes back byte for byte; anything
unreadable or hostile is a BadInput with a reason."""

from __future__ import annotations

import io
import logging
import zlib
from pathlib import Path

import pikepdf
import pytest
from facturx import get_xml_from_pdf

from archive.errors import BadInput, CorruptPdf
from capture.einvoice import detect
from capture.einvoice._profiles import profile_from_guideline
from capture.errors import (
    EmptyInput,
    MalformedXml,
    NoEmbeddedInvoice,
    NotAnInvoice,
    UnreadablePdf,
    UnsafeXml,
    UnsupportedFormat,
)

CORRECT_V2 = "facturx/zugferd-corpus/ZUGFeRDv2/correct"


def cii(guideline: str = "urn:cen.eu:en16931:2017", number: str = "F-1") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
        'CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:'
        'ReusableAggregateBusinessInformationEntity:100">'
        "<rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>"
        f"<ram:ID>{guideline}</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>"
        "</rsm:ExchangedDocumentContext>"
        f"<rsm:ExchangedDocument><ram:ID>{number}</ram:ID><ram:TypeCode>380</ram:TypeCode>"
        "</rsm:ExchangedDocument></rsm:CrossIndustryInvoice>\n"
    ).encode()


UBL_INVOICE = (
    b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
    b'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
    b"<cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:"
    b"billing:3.0</cbc:CustomizationID><cbc:ID>U-1</cbc:ID></Invoice>"
)
UBL_CREDIT_NOTE = (
    b'<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2" '
    b'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
    b"<cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID></CreditNote>"
)


def make_pdf(attachments: dict[str, bytes] | None = None, *, bomb: str | None = None) -> bytes:
    """A one-page PDF with the given attachments (text/xml, /Data).

    ``bomb`` names an attachment whose stream is replaced by 64 MiB of inflated spaces
    compressed to a few dozen KiB.
    """
    pdf = pikepdf.new()
    pdf.add_blank_page()
    for name, data in (attachments or {}).items():
        pdf.attachments[name] = pikepdf.AttachedFileSpec(
            pdf, data, filename=name, mime_type="text/xml", relationship=pikepdf.Name.Data
        )
    if bomb is not None:
        deflater = zlib.compressobj(9)
        chunks = [deflater.compress(b"<a>")]
        chunks += [deflater.compress(b" " * (1 << 20)) for _ in range(64)]
        chunks.append(deflater.flush())
        stream = pdf.attachments[bomb].obj.EF.F
        stream.write(b"".join(chunks), filter=pikepdf.Name.FlateDecode)
    out = io.BytesIO()
    pdf.save(out, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    return out.getvalue()


# --- profiles -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guideline", "profile"),
    [
        ("urn:factur-x.eu:1p0:minimum", "MINIMUM"),
        ("urn:zugferd.de:2p0:minimum", "MINIMUM"),
        ("urn:factur-x.eu:1p0:basicwl", "BASIC WL"),
        ("urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic", "BASIC"),
        ("urn:cen.eu:en16931:2017:compliant:factur-x.eu:1p0:basic", "BASIC"),  # FNFE typo
        ("urn:cen.eu:en16931:2017#compliant#urn:zugferd.de:2p0:basic", "BASIC"),
        ("urn:cen.eu:en16931:2017", "EN16931"),
        ("urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0", "EN16931"),
        ("urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended", "EXTENDED"),
        ("urn:cen.eu:en16931:2017#conformant#urn:zugferd.de:2p0:extended", "EXTENDED"),
        (
            "urn:cen.eu:en16931:2017#conformant#urn.cpro.gouv.fr:1p0:extended-ctc-fr",
            "EXTENDED-CTC-FR",
        ),
        ("urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0", "XRECHNUNG"),
        (
            "urn:cen.eu:en16931:2017#compliant#urn:xoev-de:kosit:standard:xrechnung_2.2"
            "#conformant#urn:xoev-de:kosit:extension:xrechnung_2.2",
            "XRECHNUNG",
        ),
        ("urn:ferd:CrossIndustryDocument:invoice:1p0:comfort", "EN16931"),  # in a CII:100
        ("urn:example:something-else", None),
        ("", None),
    ],
)
def test_profile_from_the_guideline_id(guideline, profile):
    assert profile_from_guideline(guideline) == profile


def test_zugferd1_keeps_its_own_comfort_profile():
    guideline = "urn:ferd:CrossIndustryDocument:invoice:1p0:comfort"
    assert profile_from_guideline(guideline, zugferd1=True) == "COMFORT"


# --- bare XML -------------------------------------------------------------------------


def test_cii_is_detected_with_its_guideline_and_kept_byte_for_byte():
    data = cii("urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended")
    detected = detect(data)
    assert detected.syntax == "cii"
    assert detected.profile == "EXTENDED"
    assert (
        detected.guideline_id == "urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended"
    )
    assert detected.flavor == "factur-x"
    assert detected.xml is data
    assert detected.embedded_filename is None


def test_ubl_invoice_and_credit_note_are_told_apart_by_their_root():
    invoice, credit_note = detect(UBL_INVOICE), detect(UBL_CREDIT_NOTE)
    assert (invoice.syntax, invoice.profile, invoice.flavor) == ("ubl-invoice", "EN16931", None)
    assert credit_note.syntax == "ubl-creditnote"


def test_a_byte_order_mark_or_leading_space_does_not_hide_the_format():
    assert detect(b"\xef\xbb\xbf" + cii()).syntax == "cii"
    assert detect(b"\n  " + UBL_INVOICE).syntax == "ubl-invoice"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyInput),
        (b"\x89PNG\r\n\x1a\n0000", NotAnInvoice),
        (b"Bad XML", NotAnInvoice),
        (b"<dummy></dummy>", NotAnInvoice),
        (b"<Order xmlns='urn:oasis:names:specification:ubl:schema:xsd:Order-2'/>", NotAnInvoice),
        (
            b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-1.0'/>",
            UnsupportedFormat,
        ),
        (
            b"<rsm:Invoice xmlns:rsm='urn:un:unece:uncefact:data:standard:CBFBUY:5'/>",
            UnsupportedFormat,
        ),
        (b"<rsm:CrossIndustryInvoice", MalformedXml),
    ],
    ids=["empty", "png", "text", "other-xml", "ubl-order", "ubl-1.0", "zugferd-rc", "truncated"],
)
def test_what_is_not_a_readable_invoice_is_bad_input(data, error):
    with pytest.raises(error) as caught:
        detect(data)
    assert isinstance(caught.value, BadInput)
    assert str(caught.value)


# --- PDFs -----------------------------------------------------------------------------


def test_facturx_pdf_gives_the_embedded_xml_unchanged():
    xml = cii("urn:factur-x.eu:1p0:basicwl")
    detected = detect(make_pdf({"factur-x.xml": xml}))
    assert detected.syntax == "facturx-pdf"
    assert detected.xml == xml
    assert detected.embedded_filename == "factur-x.xml"
    assert (detected.profile, detected.flavor) == ("BASIC WL", "factur-x")


def test_zugferd2_attachment_name_in_any_case():
    detected = detect(make_pdf({"ZUGFeRD-invoice.xml": cii()}))
    assert (detected.embedded_filename, detected.flavor) == ("ZUGFeRD-invoice.xml", "zugferd-2")


def test_with_several_invoice_attachments_factur_x_xml_wins():
    detected = detect(
        make_pdf({"zugferd-invoice.xml": cii(number="OLD"), "factur-x.xml": cii(number="NEW")})
    )
    assert detected.embedded_filename == "factur-x.xml"
    assert b"NEW" in detected.xml


def test_a_pdf_without_invoice_xml_is_an_ordinary_pdf():
    with pytest.raises(NoEmbeddedInvoice) as caught:
        detect(make_pdf({"notes.xml": cii()}))
    assert isinstance(caught.value, NotAnInvoice)


def test_a_pdf_embedding_ubl_as_factur_x_is_unsupported():
    with pytest.raises(UnsupportedFormat, match="UBL"):
        detect(make_pdf({"factur-x.xml": UBL_INVOICE}))


def test_xxe_inside_a_pdf_is_refused():
    hostile = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    with pytest.raises(UnsafeXml, match=r"^the embedded factur-x.xml: .*DOCTYPE") as caught:
        detect(make_pdf({"factur-x.xml": hostile}))
    assert caught.value.data["embedded_filename"] == "factur-x.xml"


def test_a_compression_bomb_attachment_is_refused_without_inflating_it():
    with pytest.raises(UnsafeXml, match="larger than the limit"):
        detect(make_pdf({"factur-x.xml": b"<a/>"}, bomb="factur-x.xml"))


def test_malformed_embedded_xml_names_the_attachment():
    with pytest.raises(MalformedXml, match=r"^the embedded factur-x.xml: "):
        detect(make_pdf({"factur-x.xml": b"<rsm:CrossIndustryInvoice"}))


# --- real corpora ---------------------------------------------------------------------


def test_the_15_byte_corrupt_pdf_is_bad_input_with_a_clear_reason(corpora: Path):
    data = (
        corpora / "facturx/mustangproject/cli-test-resources/corrupt-factur-x-waytoosmall.pdf"
    ).read_bytes()
    assert len(data) == 15
    with pytest.raises(UnreadablePdf) as caught:
        detect(data)
    assert isinstance(caught.value, BadInput)
    assert isinstance(caught.value, CorruptPdf)
    assert str(caught.value).startswith("the PDF cannot be read (15 bytes): ")
    assert "BytesIO" not in str(caught.value)


@pytest.mark.parametrize("name", ["zugferd-invalid-1.xml", "zugferd-invalid-2.xml"])
def test_the_malformed_ferd_fixtures_are_bad_input(corpora: Path, name: str):
    data = (corpora / "facturx/ferd-zugferd-2.3.3-xml/negative/malformed" / name).read_bytes()
    with pytest.raises(BadInput) as caught:
        detect(data)
    assert "not an e-invoice" in str(caught.value) or "not a CII or UBL" in str(caught.value)


def test_an_embedded_xml_with_a_broken_encoding_declaration_is_malformed(corpora: Path):
    path = corpora / "facturx/zugferd-corpus/ZUGFeRDv2/fail/Mustangproject"
    data = (path / "factur-x-invalid-xml-encoding-attribute.pdf").read_bytes()
    with pytest.raises(MalformedXml, match=r"^the embedded factur-x\.xml: the document is not"):
        detect(data)


def test_pre_release_zugferd1_is_unsupported_with_a_reason(corpora: Path):
    path = corpora / "facturx/zugferd-corpus/ZUGFeRDv1/correct/Mustangproject"
    with pytest.raises(UnsupportedFormat, match="pre-release ZUGFeRD 1"):
        detect((path / "MustangGnuaccountingBeispielRE-20140519_499.pdf").read_bytes())


def _correct_pdfs() -> list[str]:
    from tests.conftest import CORPORA

    root = CORPORA / CORRECT_V2
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.pdf")) if root.is_dir() else []


@pytest.mark.parametrize("relative", _correct_pdfs())
def test_embedded_xml_is_byte_identical_to_what_factur_x_extracts(corpora: Path, relative: str):
    data = (corpora / CORRECT_V2 / relative).read_bytes()
    detected = detect(data)
    logging.disable(logging.WARNING)  # the library logs every attachment it looks at
    try:
        name, xml = get_xml_from_pdf(data, check_xsd=False)
    finally:
        logging.disable(logging.NOTSET)
    assert detected.syntax == "facturx-pdf"
    assert (detected.embedded_filename, detected.xml) == (name, xml)
