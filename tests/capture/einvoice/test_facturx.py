"""The PDF side of Factur-X/ZUGFeRD: XMP properties, PDF/A-3 declaration, attachment
relationship, and the problems ``check_embedding`` hands to the validator."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest

from capture.einvoice import check_embedding
from capture.einvoice.detect import detect_and_parse_xml
from capture.einvoice.facturx import FACTURX_NS, embedding_problems, open_pdf, read_xmp
from capture.errors import UnreadablePdf

V2 = "facturx/zugferd-corpus/ZUGFeRDv2"
VALIDATOR = "facturx/mustangproject/validator-test-resources"
CII = (
    b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
    b'CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:'
    b'ReusableAggregateBusinessInformationEntity:100"><rsm:ExchangedDocumentContext>'
    b"<ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:factur-x.eu:1p0:minimum"
    b"</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter></rsm:ExchangedDocumentContext>"
    b"</rsm:CrossIndustryInvoice>"
)


def xmp_packet(level: str = "MINIMUM", *, part: str = "3", filename: str = "factur-x.xml") -> bytes:
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"
  pdfaid:part="{part}" pdfaid:conformance="B"/>
<rdf:Description rdf:about="" xmlns:fx="{FACTURX_NS}">
  <fx:DocumentType>INVOICE</fx:DocumentType><fx:DocumentFileName>{filename}</fx:DocumentFileName>
  <fx:Version>1.0</fx:Version><fx:ConformanceLevel>{level}</fx:ConformanceLevel>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"
  xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#"><pdfaExtension:schemas><rdf:Bag>
  <rdf:li rdf:parseType="Resource"><pdfaSchema:namespaceURI>{FACTURX_NS}</pdfaSchema:namespaceURI>
  </rdf:li></rdf:Bag></pdfaExtension:schemas></rdf:Description>
</rdf:RDF></x:xmpmeta><?xpacket end="w"?>""".encode()


def facturx_pdf(
    *,
    xmp: bytes | None = None,
    relationship: str | None = "/Data",
    in_catalog_af: bool = True,
    name: str = "factur-x.xml",
) -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    spec = pikepdf.AttachedFileSpec(pdf, CII, filename=name, mime_type="text/xml")
    pdf.attachments[name] = spec
    spec_obj = pdf.attachments[name].obj
    if relationship is None:
        del spec_obj["/AFRelationship"]
    else:
        spec_obj.AFRelationship = pikepdf.Name(relationship)
    if in_catalog_af:
        pdf.Root.AF = pikepdf.Array([spec_obj])
    elif "/AF" in pdf.Root:
        del pdf.Root["/AF"]
    if xmp is not None:
        pdf.Root.Metadata = pdf.make_stream(
            xmp, Type=pikepdf.Name.Metadata, Subtype=pikepdf.Name.XML
        )
    out = io.BytesIO()
    pdf.save(out, fix_metadata_version=False)  # keep the XMP exactly as written
    return out.getvalue()


def codes(data: bytes) -> list[str]:
    return [problem.code for problem in check_embedding(data)]


def test_a_well_formed_facturx_pdf_has_no_problem():
    assert check_embedding(facturx_pdf(xmp=xmp_packet())) == []


def test_xmp_properties_are_read_from_elements_and_attributes():
    with open_pdf(facturx_pdf(xmp=xmp_packet("BASIC WL"))) as pdf:
        xmp = read_xmp(pdf)
    assert xmp is not None
    assert (xmp.pdfa_part, xmp.pdfa_conformance) == ("3", "B")
    assert (xmp.namespace, xmp.document_file_name) == (FACTURX_NS, "factur-x.xml")
    assert (xmp.conformance_level, xmp.document_type, xmp.version) == ("BASIC WL", "INVOICE", "1.0")
    assert xmp.extension_schema


@pytest.mark.parametrize(
    ("pdf_kwargs", "expected"),
    [
        ({"xmp": None}, ["xmp-missing"]),
        ({"xmp": xmp_packet("EN 16931")}, ["xmp-profile-mismatch"]),
        ({"xmp": xmp_packet("no thing")}, ["xmp-conformance-level-unknown"]),
        ({"xmp": xmp_packet(part="2")}, ["pdfa-not-part-3"]),
        ({"xmp": xmp_packet(filename="invoice.xml")}, ["xmp-filename-mismatch"]),
        ({"xmp": xmp_packet(), "relationship": None}, ["af-relationship-missing"]),
        ({"xmp": xmp_packet(), "relationship": "/Unspecified"}, ["af-relationship-invalid"]),
        ({"xmp": xmp_packet(), "in_catalog_af": False}, ["af-not-in-catalog"]),
        ({"xmp": b"<x:xmpmeta"}, ["xmp-unreadable"]),
    ],
    ids=["no-xmp", "profile-mismatch", "unknown-level", "pdfa-2", "filename", "no-af",
         "af-unspecified", "not-in-catalog-af", "broken-xmp"],
)  # fmt: skip
def test_each_broken_convention_is_reported(pdf_kwargs, expected):
    assert codes(facturx_pdf(**pdf_kwargs)) == expected


def test_every_problem_has_a_message():
    for problem in check_embedding(facturx_pdf(xmp=xmp_packet("EN 16931"), relationship=None)):
        assert problem.message and problem.code


def test_an_unreadable_pdf_raises(corpora: Path):
    data = (
        corpora / "facturx/mustangproject/cli-test-resources/corrupt-factur-x-waytoosmall.pdf"
    ).read_bytes()
    with pytest.raises(UnreadablePdf):
        check_embedding(data)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        (f"{V2}/correct/intarsys/EN16931/zugferd_2p0_EN16931_Einfach.pdf", []),
        (f"{V2}/correct/symtrax/Beispiele/BASIC WL/zugferd_2p1_BASIC-WL_Einfach.pdf", []),
        (f"{V2}/correct/FNFE-factur-x-examples/Avoir_FR_type381_BASIC.pdf", []),
        # XRechnung labelled "EN 16931" in the XMP, as ZUGFeRD 2.1 did: not a mismatch.
        (f"{V2}/correct/symtrax/Beispiele/EN16931/zugferd_2p1_EN16931_Elektron_XRechnung.pdf", []),
        (f"{VALIDATOR}/invalidXMP.pdf", ["xmp-conformance-level-unknown"]),
        (f"{VALIDATOR}/invalidXMP-ParseError.pdf", ["pdf-damaged", "xmp-unreadable"]),
        (f"{VALIDATOR}/corruptedV2PDF.pdf", ["pdf-damaged", "attachment-not-in-name-tree"]),
        (f"{VALIDATOR}/103767-Invoice-2026-03-24-1.pdf",
         ["af-relationship-invalid", "attachment-mime-type"]),
        (f"{V2}/fail/python-factur-x/python-factur-x.pdf", ["af-not-in-catalog"]),
        ("facturx/mustangproject/library-test-resources/EXTENDED_Fremdwaehrung_wdis_fx-pdfa4.pdf",
         ["pdfa-not-part-3"]),
        ("facturx/zugferd-corpus/unstructured/RE-E-974-Hetzner_2016-01-19_R0005532486.pdf",
         ["no-invoice-xml", "pdfa-not-declared", "xmp-invoice-properties-missing"]),
    ],
    ids=lambda value: value.rsplit("/", 1)[-1] if isinstance(value, str) else None,
)  # fmt: skip
def test_corpus_pdfs(corpora: Path, relative: str, expected: list[str]):
    assert codes((corpora / relative).read_bytes()) == expected


def test_every_correct_zugferd2_pdf_respects_the_conventions(corpora: Path):
    broken = {
        str(path.relative_to(corpora)): codes(path.read_bytes())
        for path in sorted((corpora / V2 / "correct").rglob("*.pdf"))
    }
    assert len(broken) == 46
    assert {name: found for name, found in broken.items() if found} == {}


@pytest.mark.parametrize(
    "relative",
    [
        f"{VALIDATOR}/invalidXMP-ParseError.pdf",
        f"{VALIDATOR}/corruptedV2PDF.pdf",
        f"{VALIDATOR}/103767-Invoice-2026-03-24-1.pdf",
        f"{V2}/correct/FNFE-factur-x-examples/Avoir_FR_type381_BASIC.pdf",
    ],
    ids=lambda value: value.rsplit("/", 1)[-1],
)
def test_detection_reads_the_pdf_once_for_the_embedding_checks(corpora: Path, relative: str):
    data = (corpora / relative).read_bytes()
    detected, root = detect_and_parse_xml(data)
    assert detected.pdf is not None
    assert embedding_problems(detected.pdf, xml_root=root) == check_embedding(data)


def test_the_xml_passed_in_is_compared_with_the_xmp_profile():
    detected, root = detect_and_parse_xml(facturx_pdf(xmp=xmp_packet("EN 16931")))
    assert detected.pdf is not None
    problems = embedding_problems(detected.pdf, xml_root=root)
    assert [problem.code for problem in problems] == ["xmp-profile-mismatch"]
