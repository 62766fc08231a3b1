"""The reader on real material: the official EN 16931 examples, every Factur-X/ZUGFeRD 2
file of the ZUGFeRD corpus's ``correct`` folder, and the ground truth of
``facturx/INDEX_pdfs.csv`` (every row is either matched or accounted for)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from archive.invoice import InvoiceData
from capture.einvoice import Detected, read_einvoice
from capture.errors import (
    InvalidValue,
    MalformedXml,
    NoEmbeddedInvoice,
    NotAnInvoice,
    UnreadablePdf,
    UnsupportedFormat,
)
from capture.safexml import parse_xml
from tests.conftest import CORPORA

CORRECT_V2 = "facturx/zugferd-corpus/ZUGFeRDv2/correct"
EXAMPLES = ("en16931/ubl/examples", "en16931/cii/examples")
SCALAR_TEXT = {"invoice_number", "type_code", "currency", "po_reference", "seller_name",
               "seller_vat", "buyer_name", "buyer_vat"}  # fmt: skip


def _files(folder: str, *patterns: str) -> list[str]:
    root = CORPORA / folder
    if not root.is_dir():
        return []
    found = {p for pattern in patterns for p in root.rglob(pattern)}
    return sorted(str(p.relative_to(CORPORA)) for p in found)


def _id(relative: str) -> str:
    return relative.rsplit("/", 2)[-2] + "/" + relative.rsplit("/", 1)[-1]


@cache
def read(relative: str) -> tuple[Detected, InvoiceData]:
    return read_einvoice((CORPORA / relative).read_bytes())


EXAMPLE_FILES = [f for folder in EXAMPLES for f in _files(folder, "*.xml", "*.XML")]
CORRECT_PDFS = _files(CORRECT_V2, "*.pdf")
CORRECT_XMLS = _files(CORRECT_V2, "*.xml")
#: ZUGFeRD 1.0 (CrossIndustryDocument) is read too; the 2014 pre-release files are not.
ZUGFERD1_PDFS = [
    f
    for f in _files("facturx/zugferd-corpus/ZUGFeRDv1/correct", "*.pdf")
    if not f.endswith(("_499.pdf", "_501.pdf"))
]


# --- every file parses ----------------------------------------------------------------


@pytest.mark.parametrize("relative", EXAMPLE_FILES, ids=_id)
def test_official_en16931_example_parses(corpora: Path, relative: str):
    detected, invoice = read(relative)
    assert detected.syntax in ("cii", "ubl-invoice", "ubl-creditnote")
    assert detected.xml_syntax == ("ubl" if "/ubl/" in relative else "cii") or (
        detected.xml_syntax.startswith("ubl") and "/ubl/" in relative
    )
    assert invoice.invoice_number
    assert isinstance(invoice.issue_date, date)
    assert invoice.currency and len(invoice.currency) == 3
    assert isinstance(invoice.total_ttc, Decimal)
    assert isinstance(invoice.amount_due, Decimal)
    assert invoice.vat_breakdown and invoice.lines


@pytest.mark.parametrize("relative", CORRECT_PDFS, ids=_id)
def test_correct_facturx_zugferd_pdf_is_detected_and_parses(corpora: Path, relative: str):
    detected, invoice = read(relative)
    assert detected.syntax == "facturx-pdf"
    assert detected.flavor in ("factur-x", "zugferd-2")
    assert detected.profile is not None, detected.guideline_id
    assert detected.embedded_filename in ("factur-x.xml", "zugferd-invoice.xml")
    assert invoice.invoice_number and invoice.type_code and invoice.currency
    assert isinstance(invoice.issue_date, date)
    assert isinstance(invoice.total_ttc, Decimal) and isinstance(invoice.amount_due, Decimal)


@pytest.mark.parametrize("relative", ZUGFERD1_PDFS, ids=_id)
def test_zugferd1_pdf_is_detected_and_parses(corpora: Path, relative: str):
    detected, invoice = read(relative)
    assert (detected.syntax, detected.flavor, detected.zugferd1) == (
        "facturx-pdf",
        "zugferd-1",
        True,
    )
    assert detected.profile in ("BASIC", "COMFORT", "EXTENDED")
    assert invoice.invoice_number and isinstance(invoice.issue_date, date)
    assert isinstance(invoice.total_ttc, Decimal) and invoice.lines


@pytest.mark.parametrize("relative", CORRECT_XMLS, ids=_id)
def test_correct_cii_xml_parses(corpora: Path, relative: str):
    detected, invoice = read(relative)
    assert detected.syntax == "cii"
    assert invoice.invoice_number and isinstance(invoice.total_ttc, Decimal)


# --- provenance points at what was read -----------------------------------------------


@pytest.mark.parametrize(
    "relative", EXAMPLE_FILES + CORRECT_PDFS + CORRECT_XMLS + ZUGFERD1_PDFS, ids=_id
)
def test_every_provenance_xpath_selects_the_value(corpora: Path, relative: str):
    detected, invoice = read(relative)
    root = parse_xml(detected.xml)
    for field, provenance in invoice.provenance.items():
        assert provenance.xpath is not None
        found = root.xpath(provenance.xpath, namespaces=detected.namespaces)
        value = getattr(invoice, field)
        if isinstance(value, tuple):
            assert len(found) >= len(value), field
            continue
        assert len(found) == 1, (field, provenance.xpath)
        text = "".join(found[0].text.split())
        if isinstance(value, Decimal):
            assert Decimal(text) == value, field
        elif isinstance(value, date):
            assert text.replace("-", "")[:8] == value.strftime("%Y%m%d"), field
        elif field in SCALAR_TEXT:
            assert " ".join(found[0].text.split()) == " ".join(value.split()), field
        else:  # SIREN/SIRET (prefix of the digits), IBAN/BIC (spaces dropped)
            assert text.startswith(value), field


# --- INDEX_pdfs.csv ground truth ------------------------------------------------------


@dataclass(frozen=True)
class Row:
    file: str
    embedded_files: str
    invoice_id: str
    type_code: str
    currency: str
    grand_total: str


def _index() -> list[Row]:
    path = CORPORA / "facturx/INDEX_pdfs.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            Row(
                file="facturx/" + r["file"],
                embedded_files=r["embedded_files"],
                invoice_id=r["invoice_id"],
                type_code=r["type_code"],
                currency=r["currency"],
                grand_total=r["grand_total"],
            )
            for r in csv.DictReader(handle)
        ]


INDEX = _index()
#: Rows whose file the reader refuses on purpose, with why.
REFUSED = {
    # 2014 release-candidate ZUGFeRD (UN/CEFACT CBFBUY draft root), read by nobody today.
    "ZUGFeRDv1/correct/Mustangproject/MustangGnuaccountingBeispielRE-20140519_499.pdf": (
        UnsupportedFormat
    ),
    "ZUGFeRDv1/correct/Mustangproject/MustangGnuaccountingBeispielRE-20140522_501.pdf": (
        UnsupportedFormat
    ),
    # ``fail`` fixtures: issue date with format="1020", XML declaration broken.
    "ZUGFeRDv1/fail/Mustangproject/fail1.pdf": InvalidValue,
    "ZUGFeRDv2/fail/Mustangproject/factur-x-invalid-xml-encoding-attribute.pdf": MalformedXml,
}


#: Rows where the index is wrong, checked by hand: file tail -> {field: the right value}.
INDEX_ERRATA = {
    # <ram:TypeCode></ram:TypeCode> is empty; the index took the payment means TypeCode (42).
    "ZUGFeRDv1/fail/Mustangproject/fail3.pdf": {"type_code": None},
}
#: A damaged PDF whose /EmbeddedFiles name tree is broken: the index found no attachment,
#: the reader finds factur-x.xml through the catalog's /AF (check_embedding reports both).
RECOVERED = {"mustangproject/validator-test-resources/corruptedV2PDF.pdf"}


def _refused(row: Row) -> type[Exception] | None:
    return next((error for tail, error in REFUSED.items() if row.file.endswith(tail)), None)


def _kind(row: Row) -> str:
    if not (CORPORA / row.file).is_file():
        return "absent"
    if not row.invoice_id:
        return "no-invoice-xml"
    if _refused(row) is not None:
        return "refused"
    return "matched"


MATCHED = [row for row in INDEX if _kind(row) == "matched"]


@pytest.mark.parametrize("row", MATCHED, ids=[_id(r.file) for r in MATCHED])
def test_parsed_fields_match_the_index(corpora: Path, row: Row):
    detected, invoice = read(row.file)
    expected = {
        "invoice_number": row.invoice_id,
        "type_code": row.type_code,
        "currency": row.currency or None,
        "total_ttc": Decimal(row.grand_total),
    }
    expected |= next((e for tail, e in INDEX_ERRATA.items() if row.file.endswith(tail)), {})
    assert detected.syntax == "facturx-pdf"
    assert {field: getattr(invoice, field) for field in expected} == expected


def test_every_index_row_is_matched_or_accounted_for(corpora: Path):
    kinds: dict[str, list[Row]] = {}
    for row in INDEX:
        kinds.setdefault(_kind(row), []).append(row)
    # Every Factur-X/ZUGFeRD 2 file of ``correct`` is matched, none excused.
    correct = [r for r in INDEX if r.file.startswith(CORRECT_V2)]
    assert correct and all(_kind(r) == "matched" for r in correct)
    assert {Path(r.file).name for r in correct} == {Path(f).name for f in CORRECT_PDFS}
    # The index was built from a larger checkout: its XML-Rechnung/FX PDFs are not stored.
    assert all("/XML-Rechnung/" in r.file for r in kinds.get("absent", []))
    # PDFs without invoice XML are ordinary PDFs, or unreadable.
    for row in kinds["no-invoice-xml"]:
        data = (CORPORA / row.file).read_bytes()
        if any(row.file.endswith(tail) for tail in RECOVERED):
            assert read_einvoice(data)[0].embedded_filename == "factur-x.xml"
            continue
        with pytest.raises((NoEmbeddedInvoice, UnreadablePdf)):
            read_einvoice(data)
    for row in kinds["refused"]:
        error = _refused(row)
        assert error is not None
        with pytest.raises(error):
            read_einvoice((CORPORA / row.file).read_bytes())
    assert len(kinds["matched"]) >= 90


def test_the_pdfs_without_invoice_xml_are_not_invoices(corpora: Path):
    plain = (
        CORPORA / "facturx/zugferd-corpus/unstructured/RE-E-974-Hetzner_2016-01-19_R0005532486.pdf"
    )
    with pytest.raises(NotAnInvoice):
        read_einvoice(plain.read_bytes())
