"""Validation on the real corpora: the official EN 16931 examples pass, mustangproject's
validator fixtures are judged as their names (or mustang's own tests) say, hand-broken
invoices are caught with the right rule and layer, and BR-FR only counts for invoices under
the French mandate. One Validator for the whole session: compiling is the slow part."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from archive.errors import BadInput
from capture.einvoice._rulesets import all_artefacts
from capture.einvoice.detect import detect_and_parse_xml
from capture.einvoice.validate import RulesetUnavailable, ValidationReport, Validator
from capture.errors import NotAnInvoice
from tests.conftest import CORPORA

MUSTANG = "facturx/mustangproject/validator-test-resources"
NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


@pytest.fixture(scope="session")
def validator(corpora: Path) -> Validator:
    return Validator(corpora)


def blocking(report: ValidationReport, layer: str | None = None) -> set[str]:
    """Rule ids of the findings that make the invoice invalid (optionally in one layer)."""
    return {f.rule_id for f in report.errors if layer is None or f.layer == layer}


def edited(data: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(data)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def set_text(xpath: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        (node,) = root.xpath(xpath, namespaces=NS)
        node.text = value

    return change


# -- the official EN 16931 examples ---------------------------------------------------------


def official_examples(syntax: str) -> list[str]:
    folder = CORPORA / "en16931" / syntax / "examples"
    if not folder.is_dir():
        return []
    return sorted(name for name in os.listdir(folder) if name.lower().endswith(".xml"))


@pytest.mark.parametrize(("syntax", "count"), [("ubl", 19), ("cii", 15)], ids=["ubl", "cii"])
def test_the_official_example_folders_are_complete(corpora: Path, syntax: str, count: int):
    assert len(official_examples(syntax)) == count


@pytest.mark.parametrize(
    "path",
    [f"en16931/ubl/examples/{n}" for n in official_examples("ubl")]
    + [f"en16931/cii/examples/{n}" for n in official_examples("cii")],
)
def test_every_official_example_passes_the_en16931_rules(
    corpora: Path, validator: Validator, path: str
):
    report = validator.validate((corpora / path).read_bytes())
    fatal = [f for f in report.findings if f.layer in ("xsd", "en16931") and f.flag == "fatal"]
    assert fatal == []
    # None of them is a French domestic invoice under the mandate: BR-FR is advisory.
    assert report.french_rules_binding is False
    assert report.valid


# -- mustangproject's validator fixtures ----------------------------------------------------

#: Fixtures that must validate. A comment gives mustang's own verdict where its tests state one.
EXPECTED_VALID = {
    "01.01a-INVOICE_ubl.xml",  # XRechnung UBL, mustang: valid
    "01.01a-INVOICE_uncefact.xml",
    "CII_XRechnung_with_Peppol_violation.xml",  # mustang: only warnings, valid
    "EN16931_Einfach.ubl.xml",  # mustang: valid
    "Facture_F20180027.pdf",  # French Factur-X of 2018, mustang: valid
    "UC10_F202600004_EXTENDED_FX_CII_Commentee.xml",  # FNFE example, BR-FR binding (BT-23 S8)
    "X03_01_Abschlagsrechnung_SubInvoiceLine_u_LV_Nr.xml",  # EXTENDED sub-lines, mustang: clean
    "XRechnung_internalRecalcBug.xml",  # mustang: valid
    "ZUGFeRD-invoice_rabatte_3_abschlag_duepayableamount.xml",  # mustang: valid
    "ZUGFeRD-invoice_rabatte_4_abschlag_taxbasistotalamount.xml",
    "attributeBasedXMP_zugferd_2p0_EN16931_Einfach_corrected.xml",  # mustang: valid
    "roundingDifferenceIsInTolerance.xml",
    "validAvoir_FR_type380_BASICWL.pdf",
    "validV1.xml",
    "validV2.xml",
    "validV2Basic.xml",
    "validV2FR.xml",
    "validV2PDF.pdf",
    "validXRV23.xml",
    "validXRV30.xml",
    "validXRechnung.pdf",
    "validXRv2.xml",
    "xrechnung-ubl.xml",
}

#: Fixtures that break a checked rule: file -> (layer, a rule id that must be among the
#: blocking findings of that layer).
EXPECTED_FLAGGED = {
    "103767-Invoice-2026-03-24-1.pdf": ("facturx", "af-relationship-invalid"),
    "FAIL_zugferd_2p1_MINIMUM_Rechnung_380.xml": ("xsd", "SCHEMAV_ELEMENT_CONTENT"),
    "corruptedV2PDF.pdf": ("facturx", "pdf-damaged"),
    "invalidSubInvoiceLineHierarchy.xml": ("en16931", "BR-FXEXT-08"),
    "invalidV1.xml": ("xsd", "SCHEMAV_ELEMENT_CONTENT"),
    "invalidV1ExtraTags.xml": ("xsd", "SCHEMAV_ELEMENT_CONTENT"),
    "invalidV1TooMinimal.xml": ("xsd", "SCHEMAV_ELEMENT_CONTENT"),
    "invalidV2.xml": ("xsd", "SCHEMAV_ELEMENT_CONTENT"),
    "invalidV2Profile.xml": ("en16931", "CII-DT-031"),
    "invalidXMP-ParseError.pdf": ("facturx", "xmp-unreadable"),
    "invalidXMP.pdf": ("facturx", "xmp-conformance-level-unknown"),
    "invalidXRSchemav2.xml": ("xsd", "SCHEMAV_ELEMENT_CONTENT"),
    "invalidXRV30.xml": ("en16931", "BR-CO-16"),
    "invalidXRV30_BR-DEC-23.xml": ("en16931", "BR-DEC-23"),
}

#: ``valid*`` files that the current official rules reject, with why: flagged as stated.
MISLABELLED_VALID = {
    "validZREtestZugferd.xml": (
        "en16931",
        "BR-CO-25",
        "mustang's own XMLValidatorTest expects 'invalid': an amount is due with neither "
        "due date (BT-9) nor payment terms (BT-20)",
    ),
    "valid_Avoir_FR_type380_minimum_factur-x.xml": (
        "xsd",
        "SCHEMAV_ELEMENT_CONTENT",
        "mustang's own XMLValidatorTest expects 'invalid': the Factur-X 1.09 MINIMUM XSD "
        "has no InvoiceReferencedDocument (BT-25)",
    ),
    "valid_with_VAT_O.xml": (
        "en16931",
        "BR-CO-26",
        "the fixture exercises VAT category O, but its seller has none of BT-29, BT-30, "
        "BT-31, which the CEN rule BR-CO-26 (fatal) requires",
    ),
}

#: ``invalid*`` files whose defect lies outside what Coffre validates; they pass here.
OUT_OF_SCOPE = {
    "invalidArithmetics.xml": (
        "mustang's own arithmetic re-computation (warnings); mustang itself reports the "
        "file valid, and no EN 16931 rule is broken"
    ),
    "invalidPDF.pdf": (
        "PDF/A-3 conformance (veraPDF, CIDSet of an embedded font): the PDF/A layer is not "
        "part of this validator; the XML and the Factur-X embedding are fine"
    ),
    "invalidV1addition.xml": (
        "ZUGFeRD 1 business rules: their schematron is not in the corpus, and ZUGFeRD 1 "
        "(2014, before EN 16931) is only checked against its XSD, which it passes"
    ),
    "invalidXRechnung.pdf": (
        "German XRechnung CIUS rule BR-DE-2 (seller contact): the national CIUS rules "
        "are not run; the EN 16931 rules pass"
    ),
    "invalidXRv2.xml": (
        "German XRechnung CIUS rule BR-DE-2 (seller contact), as invalidXRechnung.pdf"
    ),
}

#: Not an invoice at all: detection refuses it, the caller quarantines it.
REJECTED = {
    "invalidV2Root.xml": NotAnInvoice,  # root element rsm:myinvoice
}


def test_every_mustang_validator_fixture_has_an_expectation(corpora: Path):
    files = {p.name for p in (corpora / MUSTANG).iterdir() if p.is_file()}
    tables = [EXPECTED_VALID, set(EXPECTED_FLAGGED), set(MISLABELLED_VALID)]
    tables += [set(OUT_OF_SCOPE), set(REJECTED)]
    listed = [name for table in tables for name in table]
    assert len(listed) == len(set(listed)), "a fixture is listed twice"
    assert set(listed) == files


@pytest.mark.parametrize("name", sorted(EXPECTED_VALID))
def test_mustang_valid_fixtures_pass(corpora: Path, validator: Validator, name: str):
    report = validator.validate((corpora / MUSTANG / name).read_bytes())
    assert report.errors == ()


@pytest.mark.parametrize("name", sorted(EXPECTED_FLAGGED))
def test_mustang_invalid_fixtures_are_flagged(corpora: Path, validator: Validator, name: str):
    layer, rule_id = EXPECTED_FLAGGED[name]
    report = validator.validate((corpora / MUSTANG / name).read_bytes())
    assert not report.valid
    assert rule_id in blocking(report, layer)


@pytest.mark.parametrize("name", sorted(MISLABELLED_VALID))
def test_mustang_fixtures_named_valid_that_the_rules_reject(
    corpora: Path, validator: Validator, name: str
):
    layer, rule_id, _why = MISLABELLED_VALID[name]
    report = validator.validate((corpora / MUSTANG / name).read_bytes())
    assert rule_id in blocking(report, layer)


@pytest.mark.parametrize("name", sorted(OUT_OF_SCOPE))
def test_mustang_fixtures_out_of_scope_are_known_to_pass(
    corpora: Path, validator: Validator, name: str
):
    # If one of these starts being flagged, move it to EXPECTED_FLAGGED.
    report = validator.validate((corpora / MUSTANG / name).read_bytes())
    assert report.valid, OUT_OF_SCOPE[name]


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_mustang_fixtures_that_are_no_invoice_are_refused(
    corpora: Path, validator: Validator, name: str
):
    with pytest.raises(REJECTED[name]) as caught:
        validator.validate((corpora / MUSTANG / name).read_bytes())
    assert isinstance(caught.value, BadInput)


# -- hand-broken invoices -------------------------------------------------------------------


def test_a_wrong_grand_total_breaks_br_co_15_in_cii(corpora: Path, validator: Validator):
    data = (corpora / "en16931/cii/examples/CII_example1.xml").read_bytes()
    broken = edited(
        data,
        set_text(
            "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount", "1.00"
        ),
    )
    report = validator.validate(broken)
    assert not report.valid
    (finding,) = [f for f in report.errors if f.rule_id == "BR-CO-15"]
    assert finding.layer == "en16931"
    assert finding.flag == "fatal"
    assert "BT-112" in finding.message
    assert finding.location == "/rsm:CrossIndustryInvoice[1]"
    assert blocking(report, "xsd") == set()


def test_a_wrong_grand_total_breaks_br_co_15_in_ubl(corpora: Path, validator: Validator):
    data = (corpora / "en16931/ubl/examples/ubl-tc434-example1.xml").read_bytes()
    broken = edited(data, set_text("cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount", "1.00"))
    report = validator.validate(broken)
    assert "BR-CO-15" in blocking(report, "en16931")
    locations = {f.location for f in report.errors if f.rule_id == "BR-CO-15"}
    assert locations == {"/ubl:Invoice[1]"}


def test_a_missing_mandatory_element_breaks_the_xsd(corpora: Path, validator: Validator):
    data = (corpora / "en16931/cii/examples/CII_example1.xml").read_bytes()

    def drop_header(root: etree._Element) -> None:
        (header,) = root.xpath("rsm:ExchangedDocument", namespaces=NS)
        root.remove(header)

    report = validator.validate(edited(data, drop_header))
    xsd = [f for f in report.errors if f.layer == "xsd"]
    assert [f.rule_id for f in xsd] == ["SCHEMAV_ELEMENT_CONTENT"]
    assert "ExchangedDocument" in xsd[0].message
    assert "line" in xsd[0].location
    # The business rules still run and say what is missing in EN 16931 terms.
    assert {"BR-02", "BR-03", "BR-04"} <= blocking(report, "en16931")


def test_minimum_is_held_to_its_own_profile_rules_not_to_en16931(
    corpora: Path, validator: Validator
):
    data = (corpora / "facturx/akretion-factur-x/fixtures/xml/factur-x-minimum.xml").read_bytes()
    report = validator.validate(data)
    assert report.valid
    assert any("Factur-X_1.09_MINIMUM" in r for r in report.rulesets)
    assert not any("EN16931-CII-validation" in r for r in report.rulesets)
    assert report.french_rules_binding is None  # no BR-FR for MINIMUM

    # The MINIMUM rules leave out BR-CO-15, but amounts still have 2 decimals at most.
    broken = edited(
        data,
        set_text(
            "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount", "1.001"
        ),
    )
    report = validator.validate(broken)
    assert blocking(report) == {"BR-DEC-14"}
    assert report.errors[0].flag == "error"  # the Factur-X schematrons carry no flags


# -- BR-FR: binding only under the French mandate ---------------------------------------------


def test_br_fr_is_advisory_for_a_french_invoice_issued_before_the_reform(
    corpora: Path, validator: Validator
):
    report = validator.validate((corpora / MUSTANG / "validV2FR.xml").read_bytes())
    assert report.french_rules_binding is False
    advisory = [f for f in report.findings if f.layer == "br-fr" and f.flag == "fatal"]
    assert advisory, "BR-FR still runs and is reported"
    assert all(not f.binding and not f.blocking for f in advisory)
    assert report.valid


def test_br_fr_binds_a_domestic_french_invoice_issued_under_the_reform(
    corpora: Path, validator: Validator
):
    data = (corpora / MUSTANG / "validV2FR.xml").read_bytes()
    reissued = edited(
        data, set_text("rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString", "20261015")
    )
    report = validator.validate(reissued)
    assert report.french_rules_binding is True
    assert not report.valid
    assert {"BR-FR-08_BT-23", "BR-FR-10_BT-30"} <= blocking(report, "br-fr")
    assert blocking(report, "en16931") == set()


def test_br_fr_binds_an_extended_ctc_fr_invoice(corpora: Path, validator: Validator):
    data = (
        corpora / "facturx/akretion-factur-x/fixtures/xml/ubl-21-extended-ctc-fr.xml"
    ).read_bytes()
    report = validator.validate(data)
    assert report.french_rules_binding is True
    assert report.valid
    assert any("EXTENDED-CTC-FR-UBL" in r for r in report.rulesets)


def test_br_fr_is_advisory_for_a_foreign_seller(corpora: Path, validator: Validator):
    report = validator.validate((corpora / MUSTANG / "validV2.xml").read_bytes())
    assert report.french_rules_binding is False
    assert any("seller in DE" in note for note in report.notes)


def test_a_rule_set_that_crashes_is_a_finding_not_an_exception(corpora: Path, validator: Validator):
    # BR-FR 1.4.0 compares a sequence of two billing-period dates with 'ge' (XPTY0004).
    name = "X03_01_Abschlagsrechnung_SubInvoiceLine_u_LV_Nr.xml"
    report = validator.validate((corpora / MUSTANG / name).read_bytes())
    (crash,) = [f for f in report.findings if f.rule_id == "RULESET-RUNTIME-ERROR"]
    assert crash.layer == "br-fr"
    assert "BR-FR-Flux2-Schematron-CII.xslt" in crash.message
    assert not crash.binding  # a German invoice: BR-FR is advisory
    assert report.valid


# -- the API -----------------------------------------------------------------------------------


def test_the_report_serialises_to_json(corpora: Path, validator: Validator):
    report = validator.validate((corpora / MUSTANG / "invalidXMP.pdf").read_bytes())
    data = json.loads(report.to_json())
    assert data["valid"] is False
    assert data["syntax"] == "facturx-pdf"
    assert data["profile"] == "EN16931"
    assert set(data["findings"][0]) == {
        "layer",
        "rule_id",
        "flag",
        "message",
        "location",
        "binding",
    }
    assert "xmp-conformance-level-unknown" in {f["rule_id"] for f in data["findings"]}


def test_a_detected_invoice_is_not_detected_again(corpora: Path, validator: Validator):
    data = (corpora / MUSTANG / "validV2PDF.pdf").read_bytes()
    detected, root = detect_and_parse_xml(data)
    assert validator.validate(data, detected=detected, root=root) == validator.validate(data)


def test_layers_can_be_run_alone(corpora: Path, validator: Validator):
    data = (corpora / "en16931/cii/examples/CII_example2.xml").read_bytes()
    report = validator.validate(data, layers={"xsd"})
    assert len(report.rulesets) == 1 and report.rulesets[0].endswith(".xsd")
    assert report.french_rules_binding is None
    report = validator.validate(data, layers={"br-fr"})
    assert {f.layer for f in report.findings} == {"br-fr"}


def test_threads_share_one_validator(corpora: Path, validator: Validator):
    names = ["validV2.xml", "invalidXRV30.xml", "validV2FR.xml", "invalidV2.xml"]
    payloads = [(corpora / MUSTANG / n).read_bytes() for n in names] * 4
    serial = [validator.validate(p) for p in payloads]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(validator.validate, payloads))
    assert parallel == serial


def test_a_missing_corpus_is_a_deployment_error(tmp_path: Path):
    with pytest.raises(RulesetUnavailable) as caught:
        Validator(tmp_path)
    assert caught.value.data["path"].startswith(str(tmp_path))


def test_an_unreadable_stylesheet_is_a_deployment_error(corpora: Path, tmp_path: Path):
    # Every artefact present, but the CEN CII stylesheet is garbage.
    for relative in all_artefacts():
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(corpora / relative)
    cen_cii = tmp_path / "en16931/cii/xslt/EN16931-CII-validation.xslt"
    cen_cii.unlink()
    cen_cii.write_text("not a stylesheet")
    data = (corpora / "en16931/cii/examples/CII_example1.xml").read_bytes()
    with pytest.raises(RulesetUnavailable) as caught:
        Validator(tmp_path).validate(data, layers={"en16931"})
    assert caught.value.data["path"] == str(cen_cii)
