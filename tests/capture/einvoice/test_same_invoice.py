"""One invoice, several syntaxes or profiles, one InvoiceData.

Groups of corpus files holding the same invoice (Factur-X PDF, bare CII, UBL; MINIMUM to
EXTENDED) must agree on every field that both sides carry (a MINIMUM has no lines, a UBL
may add a BIC): provenance aside, a field filled on both sides has the same value. Where
the upstream files themselves disagree, the difference is listed with the reason.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from capture.einvoice import read_einvoice

FX = "facturx"
MUSTANG = f"{FX}/mustangproject/library-test-resources"
INTARSYS = f"{FX}/zugferd-corpus/ZUGFeRDv2/correct/intarsys"
FNFE = f"{FX}/fnfe-examples-via-stafyniaksacha"
OCA = f"{FX}/oca-edi-14.0/account_invoice_import_facturx/tests/files"
FERD = f"{FX}/ferd-zugferd-2.3.3-xml/cii"

#: Same invoice, no upstream difference in any field both sides carry.
SAME = {
    "fnfe-facture-pdf-xml-all-profiles": [
        f"{FNFE}/Facture_FR_EN16931.pdf",
        f"{FNFE}/Facture_FR_EN16931.xml",
        f"{FNFE}/Facture_FR_MINIMUM.xml",
        f"{OCA}/Facture_FR_MINIMUM.pdf",
        f"{OCA}/Facture_FR_BASICWL.pdf",
        f"{OCA}/Facture_FR_BASIC.pdf",
        f"{OCA}/Facture_FR_EXTENDED.pdf",
        f"{FX}/zugferd-corpus/ZUGFeRDv2/correct/FNFE-factur-x-examples/Facture_FR_BASICWL.pdf",
    ],
    "fnfe-avoir-pdf-xml": [
        f"{FNFE}/Avoir_FR_type381_EN16931.pdf",
        f"{FNFE}/Avoir_FR_type381_EN16931.xml",
        f"{FX}/zugferd-corpus/ZUGFeRDv2/correct/FNFE-factur-x-examples/Avoir_FR_type381_BASIC.pdf",
    ],
    "mustang-508-facturx-cii-ubl": [
        f"{FX}/zugferd-corpus/ZUGFeRDv2/correct/Mustangproject/MustangGnuaccountingBeispielRE-20201121_508.pdf",
        f"{MUSTANG}/factur-x.xml",
        f"{MUSTANG}/ubl-conv-ubl-output-factur-x.xml",
    ],
    "xrechnung-01.01a-cii-ubl": [
        f"{MUSTANG}/cii/01.01a-INVOICE.cii.xml",
        f"{MUSTANG}/ubl/01.01a-INVOICE.ubl.xml",
    ],
    "eeisi-full-model-cii-ubl": [
        f"{MUSTANG}/not_validating_full_invoice_based_onTest_EeISI_300_CENfullmodel.cii.xml",
        f"{MUSTANG}/not_validating_full_invoice_based_onTest_EeISI_300_CENfullmodel.ubl.xml",
    ],
    "einfach-cii-ubl": [
        f"{FERD}/en16931/zugferd-en16931-einfach.xml",
        f"{FX}/mustangproject/validator-test-resources/EN16931_Einfach.ubl.xml",
    ],
    "reisekosten-zugferd-ubl": [
        f"{INTARSYS}/EN16931/zugferd_2p0_EN16931_Reisekostenabrechnung.pdf",
        f"{MUSTANG}/XRECHNUNG_Reisekostenabrechnung.ubl.xml",
    ],
    "betriebskosten-zugferd-ubl": [
        f"{INTARSYS}/EN16931/zugferd_2p0_EN16931_Betriebskostenabrechnung.pdf",
        f"{MUSTANG}/XRECHNUNG_Betriebskostenabrechnung.ubl.xml",
    ],
}

_UNITS = "unit codes differ upstream (H87/C62/EA/NAR, KWT/KW)"
#: The official EN 16931 examples exist in CII and UBL, written separately: upstream
#: differences, field path ("lines[*].unit") -> reason.
EN16931_PAIRS: dict[str, tuple[str, str, dict[str, str]]] = {
    "example1": (
        "CII_example1.xml",
        "ubl-tc434-example1.xml",
        {"lines[*].unit": _UNITS, "lines[*].name": "typos in two item names (PKAAS, CHOCOLADEMEL)"},
    ),
    "example2": (
        "CII_example2.xml",
        "ubl-tc434-example2.xml",
        {"lines[*].unit": _UNITS, "lines[*].quantity": "line 1 quantity 1 in CII, 2 in UBL"},
    ),
    "example3": ("CII_example3.xml", "guide-example3.xml", {"lines": "1 line in CII, 2 in UBL"}),
    "example4": ("CII_example4.xml", "ubl-tc434-example4.xml", {"lines[*].unit": _UNITS}),
    "example5": ("CII_example5.xml", "ubl-tc434-example5.xml", {"lines[*].unit": _UNITS}),
    "example6": ("CII_example6.xml", "ubl-tc434-example6.xml", {"lines[*].unit": _UNITS}),
    "example7": (
        "CII_example7.xml",
        "ubl-tc434-example7.xml",
        {"lines[*].unit": _UNITS, "issue_date": "2013-05-13 in CII, 2013-03-11 in UBL"},
    ),
    "example8": ("CII_example8.xml", "ubl-tc434-example8.xml", {"lines[*].unit": _UNITS}),
    "example9": ("CII_example9.xml", "ubl-tc434-example9.xml", {"due_date": "15 vs 14 April"}),
}


def differences(a: BaseModel, b: BaseModel, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Fields filled on both sides with different values; ``lines[*].x`` for groups."""
    found: dict[str, tuple[Any, Any]] = {}
    for name in type(a).model_fields:
        if name == "provenance":
            continue
        left, right = getattr(a, name), getattr(b, name)
        if left in (None, ()) or right in (None, ()):
            continue
        if isinstance(left, tuple):
            if len(left) != len(right):
                found[prefix + name] = (len(left), len(right))
                continue
            for x, y in zip(left, right, strict=True):
                found |= differences(x, y, f"{prefix}{name}[*].")
        elif left != right:
            found[prefix + name] = (left, right)
    return found


@pytest.mark.parametrize("group", SAME.values(), ids=SAME.keys())
def test_the_same_invoice_reads_the_same_in_every_syntax(corpora: Path, group: list[str]):
    parsed = [(name, read_einvoice((corpora / name).read_bytes())) for name in group]
    assert len({detected.syntax for _, (detected, _) in parsed}) >= 2  # really several syntaxes
    for (left, (_, a)), (right, (_, b)) in itertools.combinations(parsed, 2):
        assert differences(a, b) == {}, (left, right)
    # And the groups really share something: number, date, totals at least.
    for _, (_, invoice) in parsed:
        assert invoice.invoice_number == parsed[0][1][1].invoice_number
        assert invoice.total_ttc == parsed[0][1][1].total_ttc


def test_a_full_cross_syntax_pair_is_identical_except_provenance(corpora: Path):
    cii_path, ubl_path = SAME["xrechnung-01.01a-cii-ubl"]
    _, from_cii = read_einvoice((corpora / cii_path).read_bytes())
    _, from_ubl = read_einvoice((corpora / ubl_path).read_bytes())
    assert from_cii.model_dump(exclude={"provenance"}) == from_ubl.model_dump(
        exclude={"provenance"}
    )
    assert from_cii.lines and from_cii.vat_breakdown and from_cii.iban


@pytest.mark.parametrize("pair", EN16931_PAIRS.values(), ids=EN16931_PAIRS.keys())
def test_official_examples_agree_across_cii_and_ubl(
    corpora: Path, pair: tuple[str, str, dict[str, str]]
):
    cii_name, ubl_name, known = pair
    detected_cii, from_cii = read_einvoice(
        (corpora / "en16931/cii/examples" / cii_name).read_bytes()
    )
    detected_ubl, from_ubl = read_einvoice(
        (corpora / "en16931/ubl/examples" / ubl_name).read_bytes()
    )
    assert (detected_cii.xml_syntax, detected_ubl.xml_syntax) == ("cii", "ubl-invoice")
    assert set(differences(from_cii, from_ubl)) == set(known)
    assert from_cii.total_ttc == from_ubl.total_ttc
    assert from_cii.vat_breakdown == from_ubl.vat_breakdown
