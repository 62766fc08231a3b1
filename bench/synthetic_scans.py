"""Synthetic scans of French supplier invoices, with the truth of every field.

``generate(seed)`` draws one invoice (parties, lines, VAT, payment details), lays it out on
an A4 page at 300 dpi in one of several layouts and fonts, then gives it the look of a
scanner (slight rotation, paper tint, uneven light, blur, noise). The result is the paper
image as a scanning station would deliver it; the archive keeps that image as is.

Everything is deterministic per seed: the same seed gives the same pixels and the same
truth. Identifiers are valid (SIREN/SIRET Luhn keys, FR VAT keys, IBAN mod 97, RIB keys),
amounts add up (lines → bases per rate → VAT rounded per rate → totals).

    .venv/bin/python -m bench.synthetic_scans 7 --out /tmp/scan7.png
"""

from __future__ import annotations

import argparse
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont
from stdnum import iban as stdnum_iban
from stdnum import luhn

from archive.invoice import VatBreakdown

DPI = 300
WIDTH, HEIGHT = 2480, 3508  # A4 at 300 dpi
CENT = Decimal("0.01")
FONT_DIR = Path("/usr/share/fonts/truetype")

#: (regular, bold) font files per family.
FAMILIES: dict[str, tuple[str, str]] = {
    "DejaVu Sans": ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf"),
    "DejaVu Sans Condensed": (
        "dejavu/DejaVuSansCondensed.ttf",
        "dejavu/DejaVuSansCondensed-Bold.ttf",
    ),
    "DejaVu Serif": ("dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSerif-Bold.ttf"),
    "Liberation Sans": (
        "liberation/LiberationSans-Regular.ttf",
        "liberation/LiberationSans-Bold.ttf",
    ),
    "Liberation Sans Narrow": (
        "liberation/LiberationSansNarrow-Regular.ttf",
        "liberation/LiberationSansNarrow-Bold.ttf",
    ),
    "Liberation Serif": (
        "liberation/LiberationSerif-Regular.ttf",
        "liberation/LiberationSerif-Bold.ttf",
    ),
    "Liberation Mono": (
        "liberation/LiberationMono-Regular.ttf",
        "liberation/LiberationMono-Bold.ttf",
    ),
    "FreeSans": ("freefont/FreeSans.ttf", "freefont/FreeSansBold.ttf"),
    "FreeSerif": ("freefont/FreeSerif.ttf", "freefont/FreeSerifBold.ttf"),
    "DejaVu Sans Mono": ("dejavu/DejaVuSansMono.ttf", "dejavu/DejaVuSansMono-Bold.ttf"),
}
MONO_FAMILIES = ("Liberation Mono", "DejaVu Sans Mono")
PROPORTIONAL_FAMILIES = tuple(f for f in FAMILIES if f not in MONO_FAMILIES)

MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

CITIES = (
    ("Lyon", "69003"),
    ("Lyon", "69007"),
    ("Villeurbanne", "69100"),
    ("Grenoble", "38000"),
    ("Saint-Étienne", "42000"),
    ("Paris", "75011"),
    ("Paris", "75002"),
    ("Marseille", "13002"),
    ("Nantes", "44000"),
    ("Bordeaux", "33000"),
    ("Lille", "59000"),
    ("Toulouse", "31000"),
    ("Rennes", "35000"),
    ("Strasbourg", "67000"),
    ("Dijon", "21000"),
    ("Annecy", "74000"),
    ("Clermont-Ferrand", "63000"),
    ("Montpellier", "34000"),
)
STREETS = (
    "rue de la République",
    "avenue Jean Jaurès",
    "boulevard des Belges",
    "rue Victor Hugo",
    "quai Saint-Vincent",
    "rue du Moulin",
    "chemin des Vignes",
    "place Bellecour",
    "rue Garibaldi",
    "allée des Tilleuls",
    "route de Grenoble",
    "impasse des Artisans",
    "rue Paul Bert",
    "cours Lafayette",
    "ZI des Trois Chênes",
)
SURNAMES = (
    "Giraud",
    "Lemaire",
    "Morel",
    "Fabre",
    "Chevalier",
    "Rousseau",
    "Lambert",
    "Blanchard",
    "Dupuis",
    "Perrin",
    "Morand",
    "Faure",
    "Mercier",
    "Bonnet",
    "Garnier",
    "Roussel",
    "Gauthier",
    "Masson",
    "Renaud",
    "Picard",
)
#: Trade patterns for supplier names, and the catalogue each trade sells from.
TRADES = (
    ("Imprimerie {n}", "office"),
    ("Papeterie {n}", "office"),
    ("Fournitures de Bureau {n}", "office"),
    ("Transports {n}", "transport"),
    ("{n} Logistique", "transport"),
    ("Boulangerie {n}", "food"),
    ("Traiteur {n}", "food"),
    ("Maison {n} Primeurs", "food"),
    ("Électricité {n}", "works"),
    ("Plomberie {n} & Fils", "works"),
    ("Atelier {n} Menuiserie", "works"),
    ("{n} Informatique", "it"),
    ("Cabinet {n} Conseil", "it"),
    ("Librairie {n}", "press"),
    ("Kiosque {n} Presse", "press"),
    ("Pharmacie {n}", "press"),
)
LEGAL_FORMS = ("SAS", "SARL", "SA", "EURL", "SASU", "SNC")

#: (description, VAT rate, min unit price, max unit price, unit)
CATALOGUE: dict[str, tuple[tuple[str, str, int, int, str], ...]] = {
    "office": (
        ("Ramette papier A4 80 g/m²", "20", 4, 9, "u"),
        ("Cartouche d'encre noire XL", "20", 19, 59, "u"),
        ("Classeur à levier dos 80 mm", "20", 2, 6, "u"),
        ("Stylos bille bleus (boîte de 50)", "20", 8, 22, "u"),
        ("Impression flyers A5 quadri", "20", 60, 480, "lot"),
        ("Cartes de visite 350 g (x500)", "20", 25, 90, "lot"),
        ("Livre « Gestion de la PME »", "5.5", 18, 45, "u"),
        ("Revue professionnelle (numéro)", "2.1", 6, 14, "u"),
    ),
    "transport": (
        ("Transport palette Lyon - Grenoble", "20", 85, 260, "u"),
        ("Frais de carburant", "20", 20, 140, "forfait"),
        ("Manutention et chargement", "20", 35, 120, "h"),
        ("Location hayon élévateur", "20", 40, 90, "j"),
        ("Transport de repas livrés", "10", 40, 150, "forfait"),
    ),
    "food": (
        ("Café en grains 1 kg", "5.5", 14, 32, "u"),
        ("Eau minérale 50 cl (pack de 24)", "5.5", 5, 11, "u"),
        ("Viennoiseries assorties", "5.5", 1, 3, "u"),
        ("Jus d'orange 1 L", "5.5", 2, 5, "u"),
        ("Plateau repas", "10", 14, 28, "u"),
        ("Prestation traiteur sur place", "10", 180, 950, "forfait"),
        ("Boissons alcoolisées (cidre)", "20", 4, 12, "u"),
        ("Livraison", "20", 10, 45, "forfait"),
    ),
    "works": (
        ("Main-d'œuvre (heure)", "10", 38, 65, "h"),
        ("Fourniture et pose prise électrique", "10", 45, 120, "u"),
        ("Tableau électrique 2 rangées", "10", 180, 420, "u"),
        ("Déplacement", "20", 25, 60, "forfait"),
        ("Diagnostic installation", "20", 80, 190, "forfait"),
        ("Isolation combles (m²)", "5.5", 18, 35, "m²"),
    ),
    "it": (
        ("Maintenance informatique - forfait mensuel", "20", 90, 690, "mois"),
        ("Licence logiciel comptable (1 an)", "20", 190, 1490, "u"),
        ("Disque SSD 1 To", "20", 59, 149, "u"),
        ("Intervention sur site (heure)", "20", 65, 120, "h"),
        ("Formation bureautique (journée)", "20", 450, 1200, "j"),
        ("Abonnement presse en ligne", "2.1", 9, 29, "mois"),
    ),
    "press": (
        ("Abonnement quotidien régional (mois)", "2.1", 18, 39, "mois"),
        ("Magazine professionnel", "2.1", 5, 12, "u"),
        ("Médicament remboursable", "2.1", 3, 30, "u"),
        ("Livre de poche", "5.5", 6, 12, "u"),
        ("Dictionnaire bilingue", "5.5", 15, 39, "u"),
        ("Fournitures diverses", "20", 3, 25, "u"),
        ("Produits d'hygiène", "10", 3, 15, "u"),
    ),
}
#: (bank code, BIC) of French banks.
BANKS = (
    ("30004", "BNPAFRPPXXX"),
    ("30002", "CRLYFRPPXXX"),
    ("30003", "SOGEFRPPXXX"),
    ("30066", "CMCIFRPPXXX"),
    ("10278", "CMCIFR2A"),
    ("16807", "CCBPFRPPGRE"),
    ("13906", "AGRIFRPP839"),
    ("20041", "PSSTFRPPLYO"),
)
#: The buyer companies ("own" companies of the archive's user): a small fixed group.
_OWN_NAMES = (
    "Coffre Distribution",
    "Maison Vernay Industries",
    "Groupe Delorme Services",
    "Les Ateliers du Lyonnais",
)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def make_siren(rng: random.Random) -> str:
    body = str(rng.randrange(10**7, 10**8))
    return body + luhn.calc_check_digit(body)


def make_siret(siren: str, rng: random.Random) -> str:
    body = siren + f"{rng.choice((1, 1, 2, 3, 4, 5, 12, 27, 35)):04d}"
    return body + luhn.calc_check_digit(body)


def vat_of(siren: str) -> str:
    return f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"


def make_iban(rng: random.Random) -> tuple[str, str]:
    bank, bic = rng.choice(BANKS)
    branch = f"{rng.randrange(100000):05d}"
    account = f"{rng.randrange(10**11):011d}"
    rib_key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    bban = f"{bank}{branch}{account}{rib_key:02d}"
    check = stdnum_iban.calc_check_digits("FR00" + bban)
    return f"FR{check}{bban}", bic


OWN_COMPANIES: tuple[tuple[str, str], ...] = tuple(
    (name, make_siren(random.Random(f"own-{i}"))) for i, name in enumerate(_OWN_NAMES)
)


def own_sirens() -> tuple[str, ...]:
    """The SIRENs of the buyer group, as the archive's user would configure them."""
    return tuple(siren for _, siren in OWN_COMPANIES)


# --- the invoice, before layout ----------------------------------------------------------


@dataclass(frozen=True)
class Party:
    name: str
    legal_form: str
    street: str
    postcode: str
    city: str
    siren: str
    siret: str
    vat: str
    phone: str
    email: str


@dataclass(frozen=True)
class Line:
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    rate: Decimal

    @property
    def amount(self) -> Decimal:
        return _money(self.quantity * self.unit_price)


@dataclass(frozen=True)
class Invoice:
    credit_note: bool
    number: str
    issue: date
    due: date
    po: str | None
    seller: Party
    capital: int
    buyer: Party
    buyer_ids: str  # "", "siren", "siret", "vat"
    lines: tuple[Line, ...]
    iban: str
    bic: str
    original: str | None = None  # credit notes: the invoice they correct

    @property
    def breakdown(self) -> tuple[VatBreakdown, ...]:
        rates = sorted({line.rate for line in self.lines}, reverse=True)
        out = []
        for rate in rates:
            base = sum((li.amount for li in self.lines if li.rate == rate), Decimal(0))
            out.append(
                VatBreakdown(category="S", rate=rate, base=base, amount=_money(base * rate / 100))
            )
        return tuple(out)

    @property
    def total_ht(self) -> Decimal:
        return sum((b.base for b in self.breakdown), Decimal(0))

    @property
    def total_vat(self) -> Decimal:
        return sum((b.amount for b in self.breakdown), Decimal(0))

    @property
    def total_ttc(self) -> Decimal:
        return self.total_ht + self.total_vat


def _phone(rng: random.Random) -> str:
    return f"0{rng.randint(1, 5)} " + " ".join(f"{rng.randrange(100):02d}" for _ in range(4))


def _party(rng: random.Random, name: str, siren: str | None = None) -> Party:
    city, postcode = rng.choice(CITIES)
    siren = siren or make_siren(rng)
    slug = "".join(c for c in name.lower().split()[0] if c.isascii() and c.isalpha()) or "contact"
    return Party(
        name=name,
        legal_form=rng.choice(LEGAL_FORMS),
        street=f"{rng.randint(1, 180)} {rng.choice(STREETS)}",
        postcode=postcode,
        city=city,
        siren=siren,
        siret=make_siret(siren, rng),
        vat=vat_of(siren),
        phone=_phone(rng),
        email=f"{rng.choice(('contact', 'compta', 'facturation'))}@{slug}.fr",
    )


def _invoice_number(rng: random.Random, issue: date, credit: bool) -> str:
    n = rng.randint(1, 9999)
    prefix = "AV" if credit else rng.choice(("F", "FA", "FAC", "INV"))
    pattern = rng.randrange(6)
    if pattern == 0:
        return f"{prefix}-{issue.year}-{n:04d}"
    if pattern == 1:
        return f"{prefix}{issue.year}{issue.month:02d}-{n % 1000:03d}"
    if pattern == 2:
        return f"{issue.year}/{n:05d}"
    if pattern == 3:
        return f"{prefix}{rng.randint(10000, 999999)}"
    if pattern == 4:
        return str(rng.randint(1000, 999999))
    return f"{prefix}-{issue.strftime('%y')}-{n:05d}"


def _lines(rng: random.Random, trade: str) -> tuple[Line, ...]:
    catalogue = list(CATALOGUE[trade])
    rates = sorted({item[1] for item in catalogue})
    k = min(len(rates), rng.choice((1, 1, 2, 2, 2, 3)))
    if k == 1:
        chosen_rates = {"20" if "20" in rates and rng.random() < 0.8 else rng.choice(rates)}
    else:
        chosen_rates = set(rng.sample(rates, k))
    pool = [item for item in catalogue if item[1] in chosen_rates]
    items: list[tuple[str, str, int, int, str]] = []
    for rate in sorted(chosen_rates):  # each chosen rate appears at least once
        items.append(rng.choice([item for item in pool if item[1] == rate]))
    for _ in range(rng.randint(0, 5)):
        items.append(rng.choice(pool))
    rng.shuffle(items)
    lines = []
    for desc, rate, low, high, unit in items:
        price = _money(Decimal(rng.randint(low * 100, high * 100)) / 100)
        if unit == "h" and rng.random() < 0.4:
            qty = Decimal(rng.choice(("0.5", "1.5", "2.5", "3.5", "7.5")))
        elif unit in ("forfait", "mois", "lot"):
            qty = Decimal(rng.choice((1, 1, 1, 2, 3)))
        else:
            qty = Decimal(rng.choice((1, 2, 3, 4, 5, 6, 10, 12, 20, 24, 50)))
        lines.append(Line(desc, qty, unit, price, Decimal(rate)))
    return tuple(lines)


def _draw_invoice(rng: random.Random) -> Invoice:
    surname = rng.choice(SURNAMES)
    pattern, trade = rng.choice(TRADES)
    seller = _party(rng, pattern.format(n=surname))
    buyer_name, buyer_siren = rng.choice(OWN_COMPANIES)
    buyer = _party(rng, buyer_name, buyer_siren)
    issue = date(2025, 1, 1) + timedelta(days=rng.randrange(0, 540))
    term = rng.choice((0, 15, 30, 30, 30, 45, 60))
    due = issue + timedelta(days=term)
    if rng.random() < 0.25:  # "45 jours fin de mois"-style: end of the due month
        nxt = date(due.year + (due.month == 12), due.month % 12 + 1, 1)
        due = nxt - timedelta(days=1)
    credit = rng.random() < 0.1
    number = _invoice_number(rng, issue, credit)
    po = None
    if rng.random() < 0.5:
        po = rng.choice(
            (
                f"BC-{issue.year}-{rng.randint(1, 999):03d}",
                f"{rng.randint(4500000000, 4509999999)}",
                f"PO{rng.randint(10000, 99999)}",
                f"CMD{rng.randint(100, 9999)}",
            )
        )
    iban, bic = make_iban(rng)
    return Invoice(
        credit_note=credit,
        number=number,
        issue=issue,
        due=due,
        po=po,
        seller=seller,
        capital=rng.choice((1000, 5000, 7500, 8000, 10000, 15000, 37000, 50000, 100000, 250000)),
        buyer=buyer,
        buyer_ids=rng.choice(("", "", "siren", "siret", "vat")),
        lines=_lines(rng, trade),
        iban=iban,
        bic=bic,
        original=_invoice_number(rng, issue - timedelta(days=20), False) if credit else None,
    )


# --- formatting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How one issuer prints numbers, dates and identifiers."""

    number: str  # fr_space, fr_dot, fr_plain, en, en_plain
    currency: str  # "€", "EUR", "" (none in the table, "€" in totals)
    date: str  # dmy_slash, long_fr, iso, dmy_dot, dmy_dash
    group_ids: bool
    group_iban: bool
    rate_decimals: bool

    def amount(self, value: Decimal, *, with_currency: bool = True) -> str:
        text = f"{value:,.2f}"
        if self.number == "fr_space":
            text = text.replace(",", " ").replace(".", ",")
        elif self.number == "fr_dot":
            text = text.replace(",", "_").replace(".", ",").replace("_", ".")
        elif self.number == "fr_plain":
            text = f"{value:.2f}".replace(".", ",")
        elif self.number == "en_plain":
            text = f"{value:.2f}"
        if not with_currency:
            return text
        if self.currency == "EUR":
            return f"{text} EUR"
        return f"{text} €"

    def quantity(self, value: Decimal) -> str:
        text = f"{value.normalize():f}"
        return text if self.number.startswith("en") else text.replace(".", ",")

    def rate(self, value: Decimal) -> str:
        english = self.number.startswith("en")
        text = f"{value:.2f}" if self.rate_decimals else f"{value.normalize():f}"
        return (text if english else text.replace(".", ",")) + (" %" if not english else "%")

    def date_text(self, value: date) -> str:
        if self.date == "long_fr":
            day = "1er" if value.day == 1 else str(value.day)
            return f"{day} {MONTHS_FR[value.month - 1]} {value.year}"
        if self.date == "long_en":
            return f"{MONTHS_EN[value.month - 1]} {value.day}, {value.year}"
        if self.date == "iso":
            return value.isoformat()
        sep = {"dmy_slash": "/", "dmy_dot": ".", "dmy_dash": "-"}[self.date]
        return f"{value.day:02d}{sep}{value.month:02d}{sep}{value.year}"

    def siren(self, value: str) -> str:
        return f"{value[:3]} {value[3:6]} {value[6:]}" if self.group_ids else value

    def siret(self, value: str) -> str:
        return f"{self.siren(value[:9])} {value[9:]}" if self.group_ids else value

    def vat(self, value: str) -> str:
        return f"{value[:4]} {self.siren(value[4:])}" if self.group_ids else value

    def iban(self, value: str) -> str:
        if not self.group_iban:
            return value
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def _style(rng: random.Random, english: bool) -> Style:
    if english:
        number = rng.choice(("en", "en_plain", "fr_space"))
        dates = rng.choice(("iso", "dmy_slash", "long_en"))
    else:
        number = rng.choice(("fr_space", "fr_space", "fr_dot", "fr_plain"))
        dates = rng.choice(("dmy_slash", "dmy_slash", "long_fr", "iso", "dmy_dot", "dmy_dash"))
    return Style(
        number=number,
        currency=rng.choice(("€", "€", "EUR")),
        date=dates,
        group_ids=rng.random() < 0.7,
        group_iban=rng.random() < 0.8,
        rate_decimals=rng.random() < 0.4,
    )


# --- drawing -----------------------------------------------------------------------------


def _px(mm: float) -> float:
    return mm * DPI / 25.4


class Fonts:
    def __init__(self, family: str, size_pt: float) -> None:
        regular, bold = FAMILIES[family]
        self._paths = (str(FONT_DIR / regular), str(FONT_DIR / bold))
        self.size = size_pt
        self._cache: dict[tuple[float, bool], ImageFont.FreeTypeFont] = {}

    def get(self, scale: float = 1.0, *, bold: bool = False) -> ImageFont.FreeTypeFont:
        key = (scale, bold)
        if key not in self._cache:
            px = round(self.size * scale * DPI / 72)
            self._cache[key] = ImageFont.truetype(self._paths[bold], px)
        return self._cache[key]


@dataclass
class Canvas:
    fonts: Fonts
    image: Image.Image = field(init=False)
    draw: ImageDraw.ImageDraw = field(init=False)
    ink: tuple[int, int, int] = (25, 25, 30)

    def __post_init__(self) -> None:
        self.image = Image.new("RGB", (WIDTH, HEIGHT), "white")
        self.draw = ImageDraw.Draw(self.image)

    def width_mm(self, text: str, scale: float = 1.0, *, bold: bool = False) -> float:
        return self.draw.textlength(text, font=self.fonts.get(scale, bold=bold)) * 25.4 / DPI

    def text(
        self,
        x: float,
        y: float,
        text: str,
        scale: float = 1.0,
        *,
        bold: bool = False,
        align: str = "left",
        fill: tuple[int, int, int] | None = None,
    ) -> float:
        """Draw ``text`` with its baseline at ``y`` mm; return the line height in mm."""
        font = self.fonts.get(scale, bold=bold)
        anchor = {"left": "ls", "right": "rs", "center": "ms"}[align]
        self.draw.text((_px(x), _px(y)), text, font=font, fill=fill or self.ink, anchor=anchor)
        return self.fonts.size * scale * 25.4 / 72 * 1.45

    def lines(
        self, x: float, y: float, texts: list[str], scale: float = 1.0, **kw: object
    ) -> float:
        for t in texts:
            y += self.text(x, y, t, scale, **kw)  # type: ignore[arg-type]
        return y

    def rect(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        *,
        fill: tuple[int, int, int] | None = None,
        outline: tuple[int, int, int] | None = None,
        width: int = 3,
    ) -> None:
        self.draw.rectangle(
            (_px(x0), _px(y0), _px(x1), _px(y1)), fill=fill, outline=outline, width=width
        )

    def hline(self, x0: float, x1: float, y: float, width: int = 3) -> None:
        self.draw.line((_px(x0), _px(y), _px(x1), _px(y)), fill=self.ink, width=width)


@dataclass(frozen=True)
class Labels:
    title: str
    number: str
    date: str
    due: str
    po: str
    buyer: str
    total_ht: str
    total_vat: str
    total_ttc: str
    amount_due: str | None
    vat_line: str  # "{rate}" is replaced
    columns: tuple[str, str, str, str, str]
    original: str
    breakdown_heads: tuple[str, str, str]


def _labels(rng: random.Random, inv: Invoice, english: bool) -> Labels:
    if english:
        return Labels(
            title="CREDIT NOTE" if inv.credit_note else "INVOICE",
            number=rng.choice(("Invoice No:", "Invoice number:", "Invoice #"))
            if not inv.credit_note
            else "Credit note No:",
            date=rng.choice(("Invoice date:", "Date:", "Date of issue:")),
            due=rng.choice(("Due date:", "Payment due:")),
            po=rng.choice(("PO number:", "Purchase order:", "Your order:")),
            buyer=rng.choice(("Bill to:", "Invoice to:", "Customer:")),
            total_ht=rng.choice(("Subtotal", "Total excl. VAT", "Net amount")),
            total_vat=rng.choice(("Total VAT", "VAT total")),
            total_ttc=rng.choice(("Total incl. VAT", "Total")),
            amount_due=rng.choice(("Amount due", "Balance due", None)),
            vat_line="VAT {rate}",
            columns=("Description", "Qty", "Unit price", "VAT", "Amount"),
            original="Related invoice:",
            breakdown_heads=("Rate", "Base", "VAT"),
        )
    title = "AVOIR" if inv.credit_note else rng.choice(("FACTURE", "Facture", "FACTURE"))
    number = (
        rng.choice(("Avoir n°", "N° d'avoir :"))
        if inv.credit_note
        else rng.choice(("Facture n°", "N° de facture :", "Facture N° :", "Numéro de facture :"))
    )
    return Labels(
        title=title,
        number=number,
        date=rng.choice(
            ("Date :", "Date de facture :", "Date d'émission :", "Date de facturation :")
        ),
        due=rng.choice(
            (
                "Échéance :",
                "Date d'échéance :",
                "Date limite de paiement :",
                "À régler avant le :",
                "Payable le :",
            )
        ),
        po=rng.choice(
            ("Votre commande :", "Bon de commande :", "Réf. commande :", "N° commande :")
        ),
        buyer=rng.choice(("Facturé à", "Client", "Adresse de facturation", "Destinataire")),
        total_ht=rng.choice(("Total HT", "Total H.T.", "Montant HT", "Total hors taxes")),
        total_vat=rng.choice(("Total TVA", "Montant TVA", "TVA")),
        total_ttc=rng.choice(("Total TTC", "Total T.T.C.", "Montant TTC")),
        amount_due=rng.choice(("Net à payer", "Net à payer", None)),
        vat_line=rng.choice(("TVA {rate}", "TVA à {rate}", "T.V.A. {rate}")),
        columns=rng.choice(
            (
                ("Désignation", "Qté", "P.U. HT", "TVA", "Montant HT"),
                ("Description", "Quantité", "Prix unitaire", "Taux", "Total HT"),
                ("Article", "Qté", "PU HT", "TVA", "Total"),
            )
        ),
        original="Facture d'origine :",
        breakdown_heads=rng.choice(
            (("Taux", "Base HT", "Montant TVA"), ("Taux TVA", "Base", "TVA"), ("TVA", "HT", "TVA"))
        ),
    )


@dataclass
class Page:
    canvas: Canvas
    inv: Invoice
    style: Style
    labels: Labels
    rng: random.Random

    # the pieces every layout places somewhere --------------------------------------------

    def seller_block(self, x: float, y: float, *, align: str = "left", name_scale=1.6) -> float:
        s = self.inv.seller
        c = self.canvas
        y += c.text(x, y, s.name, name_scale, bold=True, align=align)
        rows = [s.street, f"{s.postcode} {s.city}", f"Tél. {s.phone}", s.email]
        for row in rows:
            y += c.text(x, y, row, 0.95, align=align)
        return y

    def buyer_block(self, x: float, y: float, *, boxed: bool = False) -> float:
        b = self.inv.buyer
        c = self.canvas
        top = y
        y += c.text(x, y, self.labels.buyer, 0.9, bold=True)
        y += c.text(x, y, b.name, 1.05, bold=True)
        for row in (b.street, f"{b.postcode} {b.city}"):
            y += c.text(x, y, row)
        ids = self.inv.buyer_ids
        if ids == "siren":
            y += c.text(x, y, f"SIREN : {self.style.siren(b.siren)}", 0.9)
        elif ids == "siret":
            y += c.text(x, y, f"SIRET : {self.style.siret(b.siret)}", 0.9)
        elif ids == "vat":
            y += c.text(x, y, f"N° TVA : {self.style.vat(b.vat)}", 0.9)
        if boxed:
            c.rect(x - 3, top - 7, x + 85, y - 2, outline=(120, 120, 120))
        return y

    def meta_rows(self) -> list[tuple[str, str]]:
        inv, lab, st = self.inv, self.labels, self.style
        rows = [
            (lab.number, inv.number),
            (lab.date, st.date_text(inv.issue)),
            (lab.due, st.date_text(inv.due)),
        ]
        if inv.po:
            rows.append((lab.po, inv.po))
        if inv.original:
            rows.append((lab.original, inv.original))
        return rows

    def table(self, y: float, *, style: str) -> float:
        """Line items from ``y``; ``style`` is grid, header, zebra or plain."""
        c, st, inv = self.canvas, self.style, self.inv
        xs = (20.0, 124.0, 150.0, 167.0, 190.0)
        aligns = ("left", "right", "right", "right", "right")
        row_h = c.fonts.size * 25.4 / 72 * 1.9
        top = y
        if style in ("header", "grid"):
            c.rect(18, y - row_h * 0.72, 192, y + row_h * 0.28, fill=(225, 225, 225))
        for x, a, title in zip(xs, aligns, self.labels.columns, strict=True):
            c.text(x, y, title, 0.95, bold=True, align=a)
        if style == "plain":
            c.hline(18, 192, y + row_h * 0.35)
        y += row_h
        for i, line in enumerate(inv.lines):
            if style == "zebra" and i % 2 == 0:
                c.rect(18, y - row_h * 0.72, 192, y + row_h * 0.28, fill=(236, 240, 246))
            qty = st.quantity(line.quantity)
            if self.rng.random() < 0.3 and line.unit not in ("u",):
                qty = f"{qty} {line.unit}"
            cells = (
                line.description,
                qty,
                st.amount(line.unit_price, with_currency=False),
                st.rate(line.rate),
                st.amount(line.amount, with_currency=False),
            )
            scale = min(1.0, 80 / max(c.width_mm(line.description), 1))
            for x, a, cell in zip(xs, aligns, cells, strict=True):
                c.text(x, y, cell, scale if cell is line.description else 1.0, align=a)
            y += row_h
        if style == "grid":
            c.rect(18, top - row_h * 0.72, 192, y - row_h * 0.72, outline=(60, 60, 60))
            for x in (104.0, 127.0, 153.0, 170.0):
                c.draw.line(
                    (_px(x), _px(top - row_h * 0.72), _px(x), _px(y - row_h * 0.72)),
                    fill=(60, 60, 60),
                    width=3,
                )
        else:
            c.hline(18, 192, y - row_h * 0.6)
        return y + 4

    def totals(self, x_label: float, x_value: float, y: float, *, boxed: bool, breakdown: str):
        """Totals block; ``breakdown`` is inline (TVA 20 % lines), table or none."""
        c, st, inv, lab = self.canvas, self.style, self.inv, self.labels
        top = y
        rows: list[tuple[str, str, bool]] = [(lab.total_ht, st.amount(inv.total_ht), False)]
        if breakdown == "inline":
            for b in inv.breakdown:
                assert b.rate is not None
                rows.append((lab.vat_line.format(rate=st.rate(b.rate)), st.amount(b.amount), False))
            if len(inv.breakdown) > 1 or self.rng.random() < 0.5:
                rows.append((lab.total_vat, st.amount(inv.total_vat), False))
        else:
            rows.append((lab.total_vat, st.amount(inv.total_vat), False))
        rows.append((lab.total_ttc, st.amount(inv.total_ttc), True))
        if lab.amount_due:
            rows.append((lab.amount_due, st.amount(inv.total_ttc), True))
        step = c.fonts.size * 25.4 / 72 * 1.8
        for label, value, bold in rows:
            c.text(x_label, y, label, 1.0, bold=bold)
            c.text(x_value, y, value, 1.0, bold=bold, align="right")
            y += step
        if boxed:
            c.rect(
                x_label - 3, top - step * 0.8, x_value + 3, y - step * 0.55, outline=(40, 40, 40)
            )
        if breakdown == "table":
            y = self.breakdown_table(20, top)
        return y

    def breakdown_table(self, x: float, y: float) -> float:
        c, st, heads = self.canvas, self.style, self.labels.breakdown_heads
        cols = (x, x + 38, x + 70)
        for cx, head in zip(cols, heads, strict=True):
            c.text(cx, y, head, 0.9, bold=True, align="left" if cx == x else "right")
        y += c.fonts.size * 25.4 / 72 * 1.7
        for b in self.inv.breakdown:
            assert b.rate is not None
            c.text(cols[0], y, st.rate(b.rate))
            c.text(cols[1], y, st.amount(b.base, with_currency=False), align="right")
            c.text(cols[2], y, st.amount(b.amount, with_currency=False), align="right")
            y += c.fonts.size * 25.4 / 72 * 1.6
        return y

    def legal_lines(self) -> list[str]:
        s, st = self.inv.seller, self.style
        capital = f"{self.inv.capital:,}".replace(",", " ")
        first = (
            f"{s.name} - {s.legal_form} au capital de {capital} € - "
            f"RCS {s.city} {st.siren(s.siren)}"
        )
        second = f"SIRET {st.siret(s.siret)} - TVA intracommunautaire {st.vat(s.vat)}"
        if self.rng.random() < 0.4:
            second = f"SIRET : {st.siret(s.siret)} - N° TVA : {st.vat(s.vat)}"
        return [first, second]

    def bank_line(self) -> str:
        st = self.style
        return f"IBAN : {st.iban(self.inv.iban)} - BIC : {self.inv.bic}"

    def footer(self, y: float = 270.0, *, with_bank: bool = True) -> None:
        c = self.canvas
        c.hline(20, 190, y - 5, width=2)
        rows = self.legal_lines()
        if with_bank:
            rows.append(self.bank_line())
        for row in rows:
            y += c.text(105, y, row, 0.78, align="center", fill=(70, 70, 70))


def _layout_classic(p: Page) -> None:
    """Seller top left, title and meta top right, buyer right, totals box bottom right."""
    c = p.canvas
    p.seller_block(20, 25)
    c.text(190, 27, p.labels.title, 2.3, bold=True, align="right")
    y = 38.0
    for label, value in p.meta_rows():
        w = c.width_mm(value)
        c.text(190 - w - 3, y, label, 0.95, align="right")
        c.text(190, y, value, 0.95, align="right")
        y += c.fonts.size * 25.4 / 72 * 1.5
    y = p.buyer_block(118, max(y + 8, 70))
    y = p.table(max(y + 12, 112), style=p.rng.choice(("header", "plain")))
    y = p.totals(130, 190, y + 8, boxed=True, breakdown="inline")
    c.text(20, y + 6, "Conditions de paiement : virement à réception de facture", 0.85)
    c.text(20, y + 12, "Pénalités de retard : 3 fois le taux d'intérêt légal.", 0.8)
    c.text(20, y + 17, "Indemnité forfaitaire pour frais de recouvrement : 40 €", 0.8)
    p.footer()


def _layout_grid(p: Page) -> None:
    """Seller top right, logo box left, meta in a grid of labelled cells, VAT table."""
    c, inv, lab, st = p.canvas, p.inv, p.labels, p.style
    initials = "".join(w[0] for w in inv.seller.name.split()[:2]).upper()
    c.rect(20, 15, 48, 38, fill=(40, 70, 120))
    c.text(34, 31, initials, 2.2, bold=True, align="center", fill=(255, 255, 255))
    p.seller_block(190, 22, align="right", name_scale=1.4)
    c.text(20, 58, lab.title, 2.0, bold=True)
    cells = [(lab.number, inv.number), (lab.date, st.date_text(inv.issue))]
    cells.append((lab.due, st.date_text(inv.due)))
    if inv.po:
        cells.append((lab.po, inv.po))
    width = 170 / len(cells)
    for i, (label, value) in enumerate(cells):
        x0 = 20 + i * width
        c.rect(x0, 63, x0 + width, 79, outline=(90, 90, 90), width=2)
        c.text(x0 + 2.5, 69, label.rstrip(" :"), 0.85, bold=True)
        c.text(x0 + 2.5, 76, value, 0.95)
    y = 88.0
    if inv.original:
        c.text(20, y, f"{lab.original} {inv.original}", 0.9)
        y += 6
    y = p.buyer_block(20, y + 6, boxed=True)
    y = p.table(max(y + 12, 130), style="grid")
    y = p.totals(130, 190, y + 8, boxed=False, breakdown="table")
    c.text(20, y + 10, "Coordonnées bancaires", 0.9, bold=True)
    c.text(20, y + 16, p.bank_line(), 0.9)
    p.footer(with_bank=False)


def _layout_banded(p: Page) -> None:
    """A coloured band with the seller's name, meta in running text, zebra table."""
    c, inv, lab, st = p.canvas, p.inv, p.labels, p.style
    band = p.rng.choice(((25, 45, 90), (20, 90, 80), (90, 30, 40), (60, 60, 60)))
    c.rect(0, 0, 210, 34, fill=band)
    white = (255, 255, 255)
    c.text(20, 17, inv.seller.name, 1.8, bold=True, fill=white)
    s = inv.seller
    c.text(20, 26, f"{s.street}, {s.postcode} {s.city} - Tél. {s.phone}", 0.9, fill=white)
    c.text(20, 50, f"{lab.title} N° {inv.number}", 1.5, bold=True)
    due_label = lab.due.rstrip(" :")
    c.text(
        20,
        58,
        f"{lab.date.rstrip(' :')} : {st.date_text(inv.issue)}    "
        f"{due_label} : {st.date_text(inv.due)}",
    )
    y = 64.0
    if inv.po:
        c.text(20, y, f"{lab.po} {inv.po}")
        y += 6
    if inv.original:
        c.text(20, y, f"{lab.original} {inv.original}")
    p.buyer_block(120, 76)
    y = p.table(118, style="zebra")
    y2 = p.totals(130, 190, y + 8, boxed=False, breakdown="none")
    # a sentence-style breakdown on the left
    yb = y + 8
    for b in inv.breakdown:
        assert b.rate is not None
        c.text(
            20,
            yb,
            f"TVA {st.rate(b.rate)} sur {st.amount(b.base)} : {st.amount(b.amount)}",
            0.9,
        )
        yb += 6
    c.text(20, max(y2, yb) + 8, "Règlement par virement bancaire.", 0.9)
    p.footer(272)


def _layout_english(p: Page) -> None:
    """Monospaced or plain English-labelled invoice (exporters, IT services)."""
    c, lab = p.canvas, p.labels
    c.text(20, 24, lab.title, 2.2, bold=True)
    p.seller_block(20, 36, name_scale=1.3)
    y = 36.0
    for label, value in p.meta_rows():
        c.text(120, y, label, 0.95, bold=True)
        c.text(190, y, value, 0.95, align="right")
        y += 6
    p.buyer_block(20, 78)
    y = p.table(118, style=p.rng.choice(("plain", "header")))
    y = p.totals(125, 190, y + 8, boxed=p.rng.random() < 0.5, breakdown="inline")
    c.text(20, y + 8, "Payment by bank transfer to:", 0.9)
    c.text(20, y + 14, p.bank_line().replace("IBAN :", "IBAN:").replace("BIC :", "BIC:"), 0.9)
    p.footer(with_bank=False)


LAYOUTS: dict[str, Callable[[Page], None]] = {
    "classic": _layout_classic,
    "grid": _layout_grid,
    "banded": _layout_banded,
    "english": _layout_english,
}


# --- the scanner -----------------------------------------------------------------------


def _scanner(image: Image.Image, rng: random.Random) -> Image.Image:
    """Rotation, paper tint, uneven light, blur and noise of a flatbed or sheet-fed scan."""
    angle = rng.uniform(0.3, 1.0) * rng.choice((-1, 1))
    shift = (rng.randint(-12, 12), rng.randint(-12, 12))
    out = image.rotate(
        angle, resample=Image.Resampling.BICUBIC, translate=shift, fillcolor=(255, 255, 255)
    )
    tint = (rng.randint(240, 252), rng.randint(236, 248), rng.randint(222, 240))
    out = ImageChops.multiply(out, Image.new("RGB", out.size, tint))
    # Uneven light: a gentle gradient across the page.
    direction = rng.choice(
        (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
    )
    gradient = Image.linear_gradient("L").transpose(direction).resize(out.size)
    low = rng.randint(225, 245)
    gradient = gradient.point(lambda v: low + (255 - low) * v // 255)
    out = ImageChops.multiply(out, Image.merge("RGB", (gradient, gradient, gradient)))
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.0)))
    amplitude = rng.randint(6, 14)
    noise = Image.frombytes("L", out.size, rng.randbytes(out.size[0] * out.size[1]))
    noise = noise.point(lambda v: 128 + (v - 128) * amplitude // 128)
    return ImageChops.add(out, Image.merge("RGB", (noise, noise, noise)), 1.0, -128)


# --- the public entry point ------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticInvoice:
    """One scanned page and the fields it shows."""

    image: Image.Image
    #: The same image as PNG with its 300 dpi resolution recorded.
    png: bytes
    #: Field name (InvoiceData vocabulary) -> value; fields the page does not show are absent.
    truth: dict[str, object]
    layout: str
    font: str


def _truth(inv: Invoice, labels: Labels) -> dict[str, object]:
    truth: dict[str, object] = {
        "invoice_number": inv.number,
        "issue_date": inv.issue,
        "due_date": inv.due,
        "type_code": "381" if inv.credit_note else "380",
        "currency": "EUR",
        "seller_name": inv.seller.name,
        "seller_siren": inv.seller.siren,
        "seller_siret": inv.seller.siret,
        "seller_vat": inv.seller.vat,
        "buyer_name": inv.buyer.name,
        "total_ht": inv.total_ht,
        "total_vat": inv.total_vat,
        "total_ttc": inv.total_ttc,
        "vat_breakdown": inv.breakdown,
        "iban": inv.iban,
        "bic": inv.bic,
    }
    if inv.po:
        truth["po_reference"] = inv.po
    if labels.amount_due:
        truth["amount_due"] = inv.total_ttc
    if inv.buyer_ids in ("siren", "siret"):
        truth["buyer_siren"] = inv.buyer.siren
    if inv.buyer_ids == "vat":
        truth["buyer_vat"] = inv.buyer.vat
        truth["buyer_siren"] = inv.buyer.siren
    return truth


def generate(seed: int) -> SyntheticInvoice:
    rng = random.Random(seed)
    inv = _draw_invoice(rng)
    layout = rng.choice(sorted(LAYOUTS))
    english = layout == "english"
    family = rng.choice(MONO_FAMILIES if english and rng.random() < 0.6 else PROPORTIONAL_FAMILIES)
    fonts = Fonts(family, rng.choice((8.5, 9.0, 9.5, 10.0, 10.5)))
    labels = _labels(rng, inv, english)
    page = Page(Canvas(fonts), inv, _style(rng, english), labels, rng)
    LAYOUTS[layout](page)
    image = _scanner(page.canvas.image, rng)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(DPI, DPI), compress_level=3)
    return SyntheticInvoice(
        image=image, png=buffer.getvalue(), truth=_truth(inv, labels), layout=layout, font=family
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Write one synthetic scan and print its truth.")
    parser.add_argument("seed", type=int)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sample = generate(args.seed)
    args.out.write_bytes(sample.png)
    print(sample.layout, sample.font)
    for key, value in sample.truth.items():
        print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
