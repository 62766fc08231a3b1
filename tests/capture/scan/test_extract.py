"""Field extraction from the words of a page: labels, formats, checksums, cross-checks,
parties and the supplier directory — on pages built by hand (fast), plus real OCR of two
synthetic scans (slow) and the text layer of a born-digital PDF."""

from __future__ import annotations

import io
import math
from datetime import date
from decimal import Decimal

import pikepdf
import pytest
from stdnum import iban as stdnum_iban
from stdnum import luhn

from archive.invoice import FieldSource, VatBreakdown
from capture.scan.extract import (
    Extraction,
    StaticDirectory,
    Supplier,
    extract,
    normalise_name,
)
from capture.scan.text import PageText, Word, words_from_pdf

# --- a page typed by hand ------------------------------------------------------------------

CHAR = 5.0  # width of one character, points
HEIGHT = 7.0  # height of a word box


def page(*rows: tuple[float, float, str], number: int = 1, skew: float = 0.0) -> PageText:
    """Words laid out like a printed page: each row is (x, y, text) with y from the top,
    words one space apart; ``skew`` tilts every baseline (dy/dx) as a crooked scan does."""
    words = []
    for x, top, text in rows:
        cursor = x
        for token in text.split(" "):
            if token:
                width = CHAR * len(token)
                y0 = 842 - top - HEIGHT + skew * cursor
                words.append(Word(token, (cursor, y0, cursor + width, y0 + HEIGHT)))
                cursor += width
            cursor += CHAR
    return PageText(page=number, width=595, height=842, words=tuple(words))


def siren_from(body: str) -> str:
    return body + luhn.calc_check_digit(body)


def vat_of(siren: str) -> str:
    return f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"


def iban_from(bban: str) -> str:
    return f"FR{stdnum_iban.calc_check_digits('FR00' + bban)}{bban}"


SELLER = siren_from("73282932")  # 732829320
SELLER_SIRET = SELLER + "0007" + luhn.calc_check_digit(SELLER + "0007")
BUYER = siren_from("44306184")
IBAN = iban_from("30004000031234567890143")
OTHER_IBAN = iban_from("30003012340001234567866")


def spaced(number: str) -> str:
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def invoice_page(
    *,
    ht: str = "1 000,00 €",
    vat_line: str = "TVA 20 %",
    vat: str = "200,00 €",
    ttc: str = "1 200,00 €",
    title: str = "FACTURE",
    number_row: str = "Facture n° : F-2026-0042",
    seller_siren_text: str | None = None,
    iban_text: str | None = None,
    extra: tuple[tuple[float, float, str], ...] = (),
) -> PageText:
    siren_text = seller_siren_text or f"{SELLER[:3]} {SELLER[3:6]} {SELLER[6:]}"
    return page(
        (40, 40, "Imprimerie Giraud"),
        (40, 55, "12 rue de la République"),
        (40, 67, "69003 Lyon"),
        (400, 40, title),
        (360, 60, number_row),
        (360, 72, "Date : 15/03/2026"),
        (360, 84, "Échéance : 14/04/2026"),
        (360, 130, "Facturé à"),
        (360, 142, "Coffre Distribution"),
        (360, 154, "8 quai Saint-Vincent"),
        (40, 250, "Ramette papier A4"),
        (260, 250, "10"),
        (330, 250, "100,00"),
        (420, 250, "20 %"),
        (480, 250, "1 000,00"),
        (330, 320, "Total HT"),
        (470, 320, ht),
        (330, 334, vat_line),
        (470, 334, vat),
        (330, 348, "Total TTC"),
        (470, 348, ttc),
        (60, 760, f"Imprimerie Giraud - SAS au capital de 10 000 € - RCS Lyon {siren_text}"),
        (60, 772, f"TVA intracommunautaire {vat_of(SELLER)}"),
        (60, 784, iban_text or f"IBAN : {spaced(IBAN)} - BIC : BNPAFRPPXXX"),
        *extra,
    )


def conf(result: Extraction, name: str) -> float:
    return result.invoice.provenance[name].confidence


# --- labels and geometry -------------------------------------------------------------------


def test_reads_the_header_totals_and_parties_of_a_french_invoice() -> None:
    result = extract([invoice_page()])
    inv = result.invoice
    assert inv.invoice_number == "F-2026-0042"
    assert inv.issue_date == date(2026, 3, 15)
    assert inv.due_date == date(2026, 4, 14)
    assert inv.type_code == "380"
    assert inv.currency == "EUR"
    assert (inv.total_ht, inv.total_vat, inv.total_ttc) == (
        Decimal("1000.00"),
        Decimal("200.00"),
        Decimal("1200.00"),
    )
    assert inv.vat_breakdown == (
        VatBreakdown(
            category="S", rate=Decimal("20"), base=Decimal("1000.00"), amount=Decimal("200.00")
        ),
    )
    assert inv.seller_siren == SELLER
    assert inv.seller_vat == vat_of(SELLER)
    assert inv.seller_name == "Imprimerie Giraud"
    assert inv.buyer_name == "Coffre Distribution"
    assert inv.iban == IBAN
    assert inv.bic == "BNPAFRPPXXX"
    assert "totals_inconsistent" not in result.flag_codes


def test_every_field_says_where_it_was_read() -> None:
    inv = extract([invoice_page()]).invoice
    where = inv.provenance["invoice_number"]
    assert where.source is FieldSource.ocr
    assert where.page == 1
    assert where.bbox is not None
    # "F-2026-0042" is the last word of the row typed at x=360, 60 pt from the top.
    x0 = 360 + CHAR * len("Facture n° : ")
    expected = (x0, 842 - 60 - HEIGHT, x0 + CHAR * len("F-2026-0042"), 842 - 60)
    assert where.bbox == pytest.approx(expected)
    assert all(0.0 <= p.confidence <= 1.0 for p in inv.provenance.values())
    assert set(inv.provenance) >= {"invoice_number", "issue_date", "total_ttc", "seller_siren"}


def test_a_value_in_the_cell_below_its_label() -> None:
    grid = page(
        (40, 40, "Transports Lemaire"),
        (40, 100, "N° de facture"),
        (160, 100, "Date de facture"),
        (300, 100, "Date d'échéance"),
        (440, 100, "Bon de commande"),
        (40, 112, "2026/00457"),
        (160, 112, "2026-03-15"),
        (300, 112, "2026-04-30"),
        (440, 112, "BC-2026-118"),
    )
    inv = extract([grid]).invoice
    assert inv.invoice_number == "2026/00457"
    assert inv.issue_date == date(2026, 3, 15)
    assert inv.due_date == date(2026, 4, 30)
    assert inv.po_reference == "BC-2026-118"
    # Below the label scores under beside it.
    assert conf(extract([grid]), "invoice_number") < conf(
        extract([invoice_page()]), "invoice_number"
    )


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("Facture n° : F-2026-0042", "F-2026-0042"),
        ("N° de facture : FA2026-113", "FA2026-113"),
        ("Numéro de facture : 000871", "000871"),
        ("Invoice No: INV-26-0113", "INV-26-0113"),
        ("Invoice number: 2026/00042", "2026/00042"),
        ("FACTURE N° 2025/05934", "2025/05934"),
        ("Facture n° F-2O26-0042", "F-2026-0042"),  # O for 0 in a run of digits
    ],
)
def test_invoice_number_labels(row: str, expected: str) -> None:
    assert extract([invoice_page(number_row=row)]).invoice.invoice_number == expected


@pytest.mark.parametrize(
    ("label", "expected_field"),
    [
        ("Bon de commande : BC-2026-07", "po_reference"),
        ("Votre commande : 4500012345", "po_reference"),
        ("N° de commande : CMD-778", "po_reference"),
        ("Purchase order: PO-1234", "po_reference"),
    ],
)
def test_purchase_order_labels(label: str, expected_field: str) -> None:
    inv = extract([invoice_page(extra=((40, 200, label),))]).invoice
    assert getattr(inv, expected_field) == label.split(":")[1].strip()
    assert inv.invoice_number == "F-2026-0042"  # not mistaken for the order


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15/03/2026", date(2026, 3, 15)),
        ("15.03.2026", date(2026, 3, 15)),
        ("15-03-26", date(2026, 3, 15)),
        ("2026-03-15", date(2026, 3, 15)),
        ("15 mars 2026", date(2026, 3, 15)),
        ("1er mars 2026", date(2026, 3, 1)),
        ("ler mars 2026", date(2026, 3, 1)),  # OCR: l for 1
        ("15 février 2026", date(2026, 2, 15)),
        ("15 fevr. 2026", date(2026, 2, 15)),
        ("March 15, 2026", date(2026, 3, 15)),
        ("15/O3/2026", date(2026, 3, 15)),  # O for 0
    ],
)
def test_date_formats(text: str, expected: date) -> None:
    grid = page((40, 40, "Garage des Alpes"), (360, 72, f"Date de facture : {text}"))
    assert extract([grid]).invoice.issue_date == expected


@pytest.mark.parametrize(
    "label",
    [
        "Date d'échéance :",
        "Échéance :",
        "Date limite de paiement :",
        "À régler avant le",
        "Due date:",
    ],
)
def test_due_date_labels_and_issue_date_kept_apart(label: str) -> None:
    grid = page((360, 72, "Date : 15/03/2026"), (360, 84, f"{label} 30/04/2026"))
    inv = extract([grid]).invoice
    assert inv.issue_date == date(2026, 3, 15)
    assert inv.due_date == date(2026, 4, 30)


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ht", "vat", "ttc"),
    [
        ("1 234,56 €", "246,91 €", "1 481,47 €"),
        ("1.234,56", "246,91", "1.481,47"),
        ("1234,56 EUR", "246,91 EUR", "1481,47 EUR"),
        ("1234.56 EUR", "246.91 EUR", "1481.47 EUR"),
        ("€1,234.56", "€246.91", "€1,481.47"),
        ("1 234, 56 €", "246,9l €", "1 48l,47 €"),  # OCR: a space in a number, l for 1
    ],
)
def test_number_formats(ht: str, vat: str, ttc: str) -> None:
    result = extract([invoice_page(ht=ht, vat=vat, ttc=ttc)])
    inv = result.invoice
    assert (inv.total_ht, inv.total_vat, inv.total_ttc) == (
        Decimal("1234.56"),
        Decimal("246.91"),
        Decimal("1481.47"),
    )
    assert "totals_inconsistent" not in result.flag_codes


def test_english_labels() -> None:
    grid = page(
        (40, 40, "INVOICE"),
        (360, 60, "Invoice No: INV-2291"),
        (360, 72, "Invoice date: 2026-03-15"),
        (360, 84, "Due date: 2026-04-14"),
        (330, 320, "Subtotal"),
        (470, 320, "500.00 EUR"),
        (330, 334, "VAT 10%"),
        (470, 334, "50.00 EUR"),
        (330, 348, "Total incl. VAT"),
        (470, 348, "550.00 EUR"),
    )
    inv = extract([grid]).invoice
    assert inv.invoice_number == "INV-2291"
    assert (inv.total_ht, inv.total_vat, inv.total_ttc) == (
        Decimal("500.00"),
        Decimal("50.00"),
        Decimal("550.00"),
    )
    assert inv.vat_breakdown[0].rate == Decimal("10")


def test_net_a_payer_is_the_amount_due() -> None:
    inv = extract(
        [invoice_page(extra=((330, 362, "Net à payer"), (470, 362, "1 200,00 €")))]
    ).invoice
    assert inv.amount_due == Decimal("1200.00")
    assert inv.total_ttc == Decimal("1200.00")


def test_vat_breakdown_with_several_rates() -> None:
    grid = page(
        (330, 320, "Total HT"),
        (470, 320, "1 300,00 €"),
        (40, 334, "TVA 20 % sur 1 000,00 € : 200,00 €"),
        (40, 346, "TVA 5,5 % sur 300,00 € : 16,50 €"),
        (330, 360, "Total TVA"),
        (470, 360, "216,50 €"),
        (330, 374, "Total TTC"),
        (470, 374, "1 516,50 €"),
    )
    result = extract([grid])
    assert result.invoice.vat_breakdown == (
        VatBreakdown(
            category="S", rate=Decimal("20"), base=Decimal("1000.00"), amount=Decimal("200.00")
        ),
        VatBreakdown(
            category="S", rate=Decimal("5.5"), base=Decimal("300.00"), amount=Decimal("16.50")
        ),
    )
    assert result.invoice.total_vat == Decimal("216.50")
    assert not result.flags


# --- cross-checks --------------------------------------------------------------------------


def test_totals_that_do_not_add_up_are_flagged_and_less_trusted() -> None:
    # 1 000 + 190 is not 1 250, and no French rate makes 190 of 1 000: nothing tells which
    # total is wrong, so the page is taken as read, flagged, and trusted less.
    def totals(vat: str, ttc: str) -> PageText:
        return page(
            (330, 320, "Total HT"),
            (470, 320, "1 000,00 €"),
            (330, 334, "Total TVA"),
            (470, 334, vat),
            (330, 348, "Total TTC"),
            (470, 348, ttc),
        )

    good = extract([totals("190,00 €", "1 190,00 €")])
    bad = extract([totals("190,00 €", "1 250,00 €")])
    assert "totals_inconsistent" not in good.flag_codes
    assert "totals_inconsistent" in bad.flag_codes
    inv = bad.invoice
    assert (inv.total_ht, inv.total_vat, inv.total_ttc) == (
        Decimal("1000.00"),
        Decimal("190.00"),
        Decimal("1250.00"),
    )
    for name in ("total_ht", "total_vat", "total_ttc"):
        assert conf(bad, name) < conf(good, name)


def test_a_misread_total_is_recomputed_when_the_rate_confirms_the_others() -> None:
    # 20 % of 1 000 is 200: HT and VAT agree, so the TTC that disagrees is the odd one out
    # (an OCR misreading, or a misprint): proposed as 1 200, flagged, with low confidence.
    good = extract([invoice_page()])
    bad = extract([invoice_page(ttc="1 250,00 €")])
    assert bad.invoice.total_ttc == Decimal("1200.00")
    (message,) = [m for code, m in bad.flags if code == "totals_inconsistent"]
    assert "1250.00" in message
    assert conf(bad, "total_ttc") <= 0.5
    assert bad.invoice.provenance["total_ttc"].bbox is None  # not where it was read
    for name in ("total_ht", "total_vat", "total_ttc"):
        assert conf(bad, name) < conf(good, name)


def test_a_vat_amount_that_is_not_rate_times_base_is_flagged() -> None:
    grid = page(
        (330, 320, "Total HT"),
        (470, 320, "1 000,00 €"),
        (40, 334, "Taux"),
        (100, 334, "Base HT"),
        (200, 334, "Montant TVA"),
        (40, 346, "20 %"),
        (100, 346, "1 000,00"),
        (200, 346, "210,00"),
        (330, 360, "Total TVA"),
        (470, 360, "210,00 €"),
        (330, 374, "Total TTC"),
        (470, 374, "1 210,00 €"),
    )
    result = extract([grid])
    assert "totals_inconsistent" in result.flag_codes
    assert conf(result, "vat_breakdown") < 0.5


def test_a_missing_total_is_derived_with_less_confidence() -> None:
    grid = page(
        (330, 320, "Total HT"),
        (470, 320, "1 000,00 €"),
        (330, 348, "Total TTC"),
        (470, 348, "1 200,00 €"),
    )
    result = extract([grid])
    assert result.invoice.total_vat == Decimal("200.00")
    assert conf(result, "total_vat") < conf(result, "total_ht")


def test_an_unlabelled_amount_completes_the_totals_when_the_sum_confirms_it() -> None:
    # The TTC label was lost by the OCR ("Tota1 T7C"), its amount was not.
    grid = page(
        (330, 320, "Total HT"),
        (470, 320, "1 000,00 €"),
        (330, 334, "Total TVA"),
        (470, 334, "200,00 €"),
        (330, 348, "Tota1 T7C"),
        (470, 348, "1 200,00 €"),
        (40, 200, "Acompte versé le 02/03/2026 : 300,00 €"),
    )
    inv = extract([grid]).invoice
    assert inv.total_ttc == Decimal("1200.00")


# --- identifiers and OCR confusions --------------------------------------------------------


def test_ocr_confusions_in_identifiers_are_fixed_when_the_checksum_confirms() -> None:
    assert "0" in SELLER
    siren = SELLER.replace("0", "O")
    damaged_siren = f"{siren[:3]} {siren[3:6]} {siren[6:]}"
    damaged_iban = IBAN[:4] + IBAN[4:9].replace("0", "O") + IBAN[9:]
    assert damaged_iban != IBAN
    inv = extract(
        [
            invoice_page(
                seller_siren_text=damaged_siren,
                iban_text=f"IBAN : {damaged_iban} BIC : BNPAFRPPXXX",
            )
        ]
    ).invoice
    assert inv.seller_siren == SELLER
    assert inv.iban == IBAN


def test_a_number_failing_its_checksum_is_not_taken_for_a_siren() -> None:
    wrong = SELLER[:-1] + str((int(SELLER[-1]) + 1) % 10)
    grid = page((40, 40, "Garage des Alpes"), (60, 760, f"SIREN {wrong}"))
    assert extract([grid]).invoice.seller_siren is None


def test_siret_and_french_vat_both_give_the_siren() -> None:
    only_vat = page((40, 40, "Garage des Alpes"), (60, 760, f"N° TVA : {vat_of(SELLER)}"))
    assert extract([only_vat]).invoice.seller_siren == SELLER
    only_siret = page((40, 40, "Garage des Alpes"), (60, 760, f"SIRET : {SELLER_SIRET}"))
    inv = extract([only_siret]).invoice
    assert (inv.seller_siren, inv.seller_siret) == (SELLER, SELLER_SIRET)


def test_a_vat_number_with_a_wrong_key_is_ignored() -> None:
    good = vat_of(SELLER)
    wrong_key = f"FR{(int(good[2:4]) + 1) % 100:02d}{SELLER}"
    grid = page((40, 40, "Garage des Alpes"), (60, 760, f"N° TVA : {wrong_key}"))
    assert extract([grid]).invoice.seller_vat is None


# --- parties -------------------------------------------------------------------------------


def test_own_siren_is_the_buyer_never_the_seller() -> None:
    # The buyer's SIREN comes first on the page and is labelled just like the seller's.
    buyer_siret = BUYER + "0001" + luhn.calc_check_digit(BUYER + "0001")
    grid = invoice_page(extra=((40, 110, f"SIRET client : {buyer_siret}"),))
    alone = extract([grid], own_sirens={BUYER})
    assert alone.invoice.buyer_siren == BUYER
    assert alone.invoice.seller_siren == SELLER


def test_a_siren_in_the_buyer_block_is_the_buyers() -> None:
    grid = invoice_page(extra=((360, 166, f"SIREN : {BUYER}"),))
    inv = extract([grid]).invoice
    assert inv.buyer_siren == BUYER
    assert inv.seller_siren == SELLER


def test_credit_note() -> None:
    credit = invoice_page(title="AVOIR", number_row="Avoir n° AV-2026-0007")
    inv = extract([credit]).invoice
    assert inv.type_code == "381"
    assert inv.invoice_number == "AV-2026-0007"
    english = page((40, 40, "CREDIT NOTE"), (360, 60, "Credit note No: CN-12"))
    assert extract([english]).invoice.type_code == "381"
    # "avoir" as a verb in the small print does not make a credit note.
    terms = invoice_page(extra=((40, 700, "Vous pouvez avoir un escompte de 2 %"),))
    assert extract([terms]).invoice.type_code == "380"


# --- the supplier directory ----------------------------------------------------------------


def directory(*ibans: str) -> StaticDirectory:
    return StaticDirectory(
        [
            Supplier(
                siren=SELLER,
                vat=vat_of(SELLER),
                name="IMPRIMERIE GIRAUD SAS",
                aliases=("Imprimerie Giraud",),
                ibans=ibans,
            ),
            Supplier(siren=BUYER, vat=None, name="Autre Fournisseur SARL"),
        ]
    )


def test_directory_confirms_the_supplier_and_raises_confidence() -> None:
    alone = extract([invoice_page()])
    known = extract([invoice_page()], directory=directory(IBAN))
    assert known.invoice.seller_name == "IMPRIMERIE GIRAUD SAS"
    assert conf(known, "seller_siren") > conf(alone, "seller_siren")
    assert conf(known, "iban") >= conf(alone, "iban")
    assert not known.flag_codes & {"unknown_supplier", "iban_changed"}


def test_directory_fills_the_seller_fields_the_page_lacks() -> None:
    # Only the IBAN identifies the supplier on this page.
    grid = page((40, 40, "Bon de livraison"), (60, 784, f"IBAN : {IBAN}"))
    result = extract([grid], directory=directory(IBAN))
    inv = result.invoice
    assert (inv.seller_siren, inv.seller_vat) == (SELLER, vat_of(SELLER))
    assert inv.seller_name == "IMPRIMERIE GIRAUD SAS"
    assert inv.provenance["seller_siren"].bbox is None  # not read on the page


def test_a_new_iban_for_a_known_supplier_is_flagged() -> None:
    result = extract([invoice_page()], directory=directory(OTHER_IBAN))
    assert "iban_changed" in result.flag_codes
    assert "unknown_supplier" not in result.flag_codes


def test_an_unknown_supplier_is_flagged() -> None:
    result = extract([invoice_page()], directory=StaticDirectory([]))
    assert "unknown_supplier" in result.flag_codes


def test_directory_matches_names_without_case_accents_punctuation_or_legal_form() -> None:
    d = StaticDirectory([Supplier(siren=None, vat=None, name="Électricité Fabre & Fils, S.A.R.L.")])
    assert d.find(name="ELECTRICITE FABRE ET FILS") is not None
    assert d.find(name="sarl electricité fabre & fils") is not None
    assert d.find(name="Électricité Moreau") is None
    assert normalise_name("SAS Imprimerie  Giraud.") == normalise_name("imprimerie giraud")


def test_directory_finds_by_each_identifier() -> None:
    d = directory(IBAN)
    assert d.find(siren=SELLER) is d.find(vat=vat_of(SELLER)) is d.find(iban=spaced(IBAN))
    assert d.find(siren=SELLER_SIRET) is not None  # a SIRET leads to its SIREN
    assert d.find(siren="000000000") is None


# --- text lines ----------------------------------------------------------------------------


def test_lines_follow_a_skewed_scan() -> None:
    # 1° of skew lifts the right end of a 500 pt line by ~9 pt, more than a line's height.
    skew = math.tan(math.radians(1))
    tilted = page(
        (40, 100, "Désignation quantité prix unitaire taux montant"),
        (40, 112, "Ramette papier A4 80 g 10 4,20 20 % 42,00 livré le lundi matin"),
        (40, 124, "Cartouche encre noire XL 2 39,90 20 % 79,80 livrée le mardi soir"),
        skew=skew,
    )
    assert tilted.skew == pytest.approx(skew, abs=0.003)
    texts = [line.text for line in tilted.lines()]
    assert texts == [
        "Désignation quantité prix unitaire taux montant",
        "Ramette papier A4 80 g 10 4,20 20 % 42,00 livré le lundi matin",
        "Cartouche encre noire XL 2 39,90 20 % 79,80 livrée le mardi soir",
    ]


def test_empty_page() -> None:
    result = extract([PageText(page=1, width=595, height=842, words=())])
    assert result.invoice.invoice_number is None
    assert "no_text" in result.flag_codes


# --- a born-digital PDF ------------------------------------------------------------------


def born_digital_pdf(rows: list[tuple[float, float, str]]) -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )
    page_obj = pdf.pages[0]
    page_obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    ops = []
    for x, y, text in rows:
        escaped = (
            text.encode("cp1252")
            .replace(b"\\", b"\\\\")
            .replace(b"(", b"\\(")
            .replace(b")", b"\\)")
        )
        ops.append(b"BT /F1 10 Tf %.1f %.1f Td (" % (x, y) + escaped + b") Tj ET")
    page_obj.Contents = pdf.make_stream(b"\n".join(ops))
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def test_words_from_a_born_digital_pdf() -> None:
    pdf = born_digital_pdf(
        [
            (40, 780, "Imprimerie Giraud"),
            (360, 760, "Facture n° F-2026-0042"),
            (360, 745, "Date : 15/03/2026"),
            (330, 500, "Total HT"),
            (470, 500, "1 000,00 €"),
            (330, 485, "TVA 20 %"),
            (470, 485, "200,00 €"),
            (330, 470, "Total TTC"),
            (470, 470, "1 200,00 €"),
        ]
    )
    (first,) = words_from_pdf(pdf)
    assert (first.page, first.width, first.height) == (1, 595, 842)
    texts = [line.text for line in first.lines()]
    assert "Facture n° F-2026-0042" in texts
    assert "Total HT 1 000,00 €" in texts
    word = next(w for w in first.words if w.text == "F-2026-0042")
    x0, y0, x1, y1 = word.bbox
    assert 360 < x0 < x1 < 595 and 755 <= y0 < y1 <= 772
    inv = extract([first]).invoice
    assert inv.invoice_number == "F-2026-0042"
    assert inv.total_ttc == Decimal("1200.00")


# --- real OCR of synthetic scans (slow) ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.xdist_group("ocr")
@pytest.mark.parametrize("seed", [3, 8])
def test_fields_of_an_ocred_synthetic_scan(seed: int) -> None:
    from bench.synthetic_scans import generate, own_sirens
    from capture.scan.convert import convert
    from capture.scan.probe import probe

    scan = generate(seed)
    pages = words_from_pdf(convert(scan.png, probe(scan.png)).pdf)
    assert len(pages) == 1
    result = extract(pages, own_sirens=own_sirens())
    inv, truth = result.invoice, scan.truth
    for name in ("invoice_number", "issue_date", "due_date", "total_ttc", "seller_siren", "iban"):
        assert getattr(inv, name) == truth[name], name
    assert inv.buyer_name == truth["buyer_name"]
    assert all(p.source is FieldSource.ocr for p in inv.provenance.values())


# --- the synthetic scans the benchmark reads ---------------------------------------------


def test_synthetic_scans_are_deterministic_valid_and_add_up() -> None:
    from PIL import Image
    from stdnum.fr import siren as fr_siren
    from stdnum.fr import siret as fr_siret
    from stdnum.fr import tva as fr_tva

    from bench.synthetic_scans import generate

    first, again, other = generate(11), generate(11), generate(12)
    assert first.png == again.png and first.truth == again.truth
    assert first.png != other.png
    with Image.open(io.BytesIO(first.png)) as image:
        assert (image.size, image.mode) == ((2480, 3508), "RGB")
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)  # stored per metre
    for scan in (first, other):
        truth = scan.truth
        assert fr_siren.is_valid(truth["seller_siren"])
        assert fr_siret.is_valid(truth["seller_siret"])
        assert fr_tva.is_valid(truth["seller_vat"])
        assert stdnum_iban.is_valid(truth["iban"])
        breakdown = truth["vat_breakdown"]
        assert 1 <= len(breakdown) <= 3
        assert sum(b.base for b in breakdown) == truth["total_ht"]
        assert sum(b.amount for b in breakdown) == truth["total_vat"]
        assert truth["total_ht"] + truth["total_vat"] == truth["total_ttc"]
