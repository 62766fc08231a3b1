"""Invoice fields from the words of a scanned (OCR'd) or born-digital invoice.

This room turns :class:`~capture.scan.text.PageText` into an
:class:`~archive.invoice.InvoiceData` with a :class:`~archive.invoice.Provenance` per field,
and says what looks wrong (flags). It reads labels and the geometry of the page (a value is
on the label's line, to its right, or in the cell just below it), parses French and English
number and date formats, repairs OCR confusions only where a checksum or the arithmetic of
the totals confirms the repair, and cross-checks the totals. It does not OCR, store or
decide anything: a flag is information for the workflow, not a rejection.

The supplier directory (who the company's suppliers are, with their known bank accounts)
is a collaborator behind the :class:`SupplierDirectory` protocol; :class:`StaticDirectory`
is the in-memory implementation and test double.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property
from itertools import product
from typing import Protocol

from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.eu import vat as eu_vat
from stdnum.fr import tva as fr_tva

from archive.invoice import FieldSource, InvoiceData, Provenance, VatBreakdown
from capture.scan.text import BBox, Line, PageText, Word, union

__all__ = [
    "Extraction",
    "StaticDirectory",
    "Supplier",
    "SupplierDirectory",
    "extract",
    "normalise_name",
]

CENT = Decimal("0.01")
#: French VAT rates (percent) a breakdown may use.
VAT_RATES = (Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("2.1"))


# --- the supplier directory ----------------------------------------------------------------


@dataclass(frozen=True)
class Supplier:
    """A known supplier of the company."""

    siren: str | None
    #: Intra-EU VAT number, compact (``FR40303265045``).
    vat: str | None
    name: str
    #: Other names the supplier prints (brand, former name).
    aliases: tuple[str, ...] = ()
    #: Bank accounts the supplier is known to be paid on (compact IBANs).
    ibans: tuple[str, ...] = ()


class SupplierDirectory(Protocol):
    """Looks a supplier up by any of its identifiers, or by name."""

    def find(
        self,
        *,
        siren: str | None = None,
        vat: str | None = None,
        iban: str | None = None,
        name: str | None = None,
    ) -> Supplier | None: ...


_LEGAL_FORMS = frozenset(
    {"sa", "sas", "sasu", "sarl", "eurl", "snc", "sci", "scop", "scs", "selarl", "selas", "sca"}
    | {"gie", "ei", "eirl", "earl", "ltd", "llc", "gmbh", "bv", "nv", "inc", "corp", "plc", "ag"}
)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalise_name(name: str) -> str:
    """A company name for comparison: no case, accents, punctuation or legal form."""
    text = _strip_accents(name).lower().replace("&", " et ")
    text = re.sub(r"\b([a-z])\.(?=[a-z]\.)", r"\1", text)  # S.A.R.L. -> SARL
    text = re.sub(r"\b([a-z])\.", r"\1", text)
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    kept = [w for w in words if w not in _LEGAL_FORMS]
    return " ".join(kept or words)


def _compact(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


class StaticDirectory:
    """An in-memory :class:`SupplierDirectory`."""

    def __init__(self, suppliers: Iterable[Supplier]) -> None:
        self._suppliers = tuple(suppliers)
        self._by_siren: dict[str, Supplier] = {}
        self._by_vat: dict[str, Supplier] = {}
        self._by_iban: dict[str, Supplier] = {}
        self._by_name: dict[str, Supplier] = {}
        for supplier in self._suppliers:
            if supplier.siren:
                self._by_siren.setdefault(_compact(supplier.siren), supplier)
            if supplier.vat:
                self._by_vat.setdefault(_compact(supplier.vat), supplier)
                siren = _siren_of_vat(_compact(supplier.vat))
                if siren:
                    self._by_siren.setdefault(siren, supplier)
            for iban in supplier.ibans:
                self._by_iban.setdefault(_compact(iban), supplier)
            for name in (supplier.name, *supplier.aliases):
                self._by_name.setdefault(normalise_name(name), supplier)

    def find(
        self,
        *,
        siren: str | None = None,
        vat: str | None = None,
        iban: str | None = None,
        name: str | None = None,
    ) -> Supplier | None:
        """The first supplier matching, trying SIREN, VAT, IBAN, then name, in that order."""
        if siren and (found := self._by_siren.get(_compact(siren)[:9])):
            return found
        if vat and (found := self._by_vat.get(_compact(vat))):
            return found
        if iban and (found := self._by_iban.get(_compact(iban))):
            return found
        if name:
            return self._by_name.get(normalise_name(name))
        return None


# --- the result ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extraction:
    """What was read from the scan, and what looked wrong."""

    invoice: InvoiceData
    #: (code, message), codes: ``totals_inconsistent`` (the totals, or the VAT breakdown, do
    #: not add up as read), ``iban_changed`` (not an account known for the supplier: fraud
    #: risk), ``unknown_supplier``, ``supplier_mismatch`` (the VAT number or IBAN belongs to a
    #: supplier with another SIREN), ``no_text`` (nothing to read).
    flags: tuple[tuple[str, str], ...] = ()

    @property
    def flag_codes(self) -> frozenset[str]:
        return frozenset(code for code, _ in self.flags)


# --- text with geometry ----------------------------------------------------------------------


def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    return (decomposed[:1] or char).lower()[:1] or char


#: Letters an OCR engine reads in place of digits (one for one, so offsets are kept).
_DIGIT_LOOKALIKES = str.maketrans(
    {"O": "0", "o": "0", "D": "0", "Q": "0", "I": "1", "l": "1", "|": "1", "i": "1", "S": "5",
     "s": "5", "B": "8", "Z": "2", "z": "2", "G": "6", "g": "9", "L": "1"}
)  # fmt: skip
_NUMERIC_PUNCT = set(".,'/-:€$£%()")


def _numeric_view(word: str) -> str:
    """``word`` with look-alike letters made digits, when the word is a number at heart."""
    core = word.strip("".join(_NUMERIC_PUNCT))
    digits = sum(c.isdigit() for c in core)
    if digits < 1 or not core:
        return word
    lookalikes = sum(c in "OoDQIl|iSsBZzGg" for c in core)
    if lookalikes == 0:
        return word
    others = len(core) - digits - lookalikes - sum(c in _NUMERIC_PUNCT for c in core)
    if others > 0 or lookalikes > max(1, digits // 2) or digits < 2:
        return word
    return word.translate(_DIGIT_LOOKALIKES)


@dataclass(eq=False)
class _Line:
    """One text line with its text views; offsets are shared between the views."""

    page: int
    order: int
    words: tuple[Word, ...]
    text: str
    spans: tuple[tuple[int, int], ...]
    cells: tuple[tuple[int, int], ...]
    page_height: float
    page_width: float

    @classmethod
    def build(cls, page: PageText, order: int, line: Line) -> _Line:
        heights = [w.height for w in line.words]
        unit = statistics.median(heights) if heights else 1.0
        widths = [(w.bbox[2] - w.bbox[0]) / len(w.text) for w in line.words if len(w.text) > 1]
        # A column gap: wider than two characters (monospaced fonts space by a whole one).
        threshold = max(2.2 * statistics.median(widths), unit) if widths else 1.6 * unit
        parts: list[str] = []
        spans: list[tuple[int, int]] = []
        cells: list[tuple[int, int]] = []
        cell_start = 0
        pos = 0
        for i, word in enumerate(line.words):
            if i:
                gap = word.bbox[0] - line.words[i - 1].bbox[2]
                sep = "\t" if gap > threshold else " "
                if sep == "\t":
                    cells.append((cell_start, pos))
                    cell_start = pos + 1
                parts.append(sep)
                pos += 1
            parts.append(word.text)
            spans.append((pos, pos + len(word.text)))
            pos += len(word.text)
        cells.append((cell_start, pos))
        return cls(
            page=page.page,
            order=order,
            words=line.words,
            text="".join(parts),
            spans=tuple(spans),
            cells=tuple(cells),
            page_height=page.height,
            page_width=page.width,
        )

    @cached_property
    def fold(self) -> str:
        """Lower case, no accents, and column gaps as ``¦`` so no pattern spans them."""
        return "".join(_fold_char(c) for c in self.text).replace("\t", "¦")

    @cached_property
    def num(self) -> str:
        out = list(self.text)
        for (start, end), word in zip(self.spans, self.words, strict=True):
            out[start:end] = _numeric_view(word.text)
        return "".join(out)

    @cached_property
    def fnum(self) -> str:
        return "".join(_fold_char(c) for c in self.num).replace("\t", "¦")

    @cached_property
    def bbox(self) -> BBox:
        return union([w.bbox for w in self.words])

    @cached_property
    def unit(self) -> float:
        return statistics.median(w.height for w in self.words)

    def box(self, start: int, end: int) -> BBox:
        boxes = [
            w.bbox
            for w, (s, e) in zip(self.words, self.spans, strict=True)
            if s < end and e > start
        ]
        return union(boxes) if boxes else self.bbox

    def x_range(self, start: int, end: int) -> tuple[float, float]:
        box = self.box(start, end)
        return box[0], box[2]

    def cell_at(self, pos: int) -> tuple[int, int]:
        for start, end in self.cells:
            if start <= pos <= end:
                return start, end
        return self.cells[-1]

    def cells_under(self, x0: float, x1: float) -> list[tuple[int, int]]:
        """Cells of this line overlapping the horizontal range ``x0..x1``."""
        out = []
        for start, end in self.cells:
            c0, c1 = self.x_range(start, end)
            if c0 < x1 and c1 > x0:
                out.append((start, end))
        return out

    @property
    def top(self) -> float:
        """Distance from the top of the page to this line, as a fraction of its height."""
        return 1 - self.bbox[3] / self.page_height if self.page_height else 0.0


# --- parsing values --------------------------------------------------------------------------

_AMOUNT = re.compile(
    r"(?<![\w.,/'-])"
    r"(?P<sign>[-−]\s?)?"
    r"(?P<cur1>(?:[€$£₹]|EUR|USD|GBP|CHF|INR|Rs\.?)\s?)?"
    r"(?P<num>\d{1,3}(?:(?:[ \u00a0\u202f.,'])\d{3})+(?:[.,]\s?\d{2})?|\d+(?:[.,]\s?\d{2})?)"
    r"(?![\d])(?![.,/]\d)(?!\s?%)"
    # A symbol belongs to the number before it unless a number follows it ("2014 $4.11").
    r"(?P<cur2>\s?(?:€|eur\b|euros?\b|EUR\b|Euros?\b|usd\b|USD\b|\$|£|GBP\b|CHF\b|INR\b|₹)"
    r"(?!\s?[-−]?\d))?"
)
_RATE = re.compile(r"(?<![\d.,])(\d{1,2}(?:[.,]\d{1,2})?)\s?%")


@dataclass(frozen=True)
class _Amount:
    value: Decimal
    start: int
    end: int
    currency: str | None
    decimals: bool


def _parse_number(text: str) -> tuple[Decimal, bool] | None:
    """(value, has decimals) of "1 234,56", "1.234,56", "1,234.56", "1234.56", "1234"."""
    text = re.sub(r"[\s\u00a0\u202f']", "", text)
    match = re.search(r"[.,](\d{2})$", text)
    if match:
        integer = re.sub(r"[.,]", "", text[: match.start()])
        digits, decimals = f"{integer}.{match.group(1)}", True
    else:
        digits, decimals = re.sub(r"[.,]", "", text), False
    try:
        return Decimal(digits).quantize(CENT), decimals
    except InvalidOperation:
        return None


def _currency(symbol: str | None) -> str | None:
    if not symbol:
        return None
    symbol = symbol.strip().upper()
    if symbol in ("€", "EUR", "EURO", "EUROS"):
        return "EUR"
    others = {"$": "USD", "USD": "USD", "£": "GBP", "GBP": "GBP", "CHF": "CHF", "₹": "INR"}
    return others.get(symbol) or ("INR" if symbol in ("INR", "RS", "RS.") else None)


def _amounts(line: _Line) -> list[_Amount]:
    out = []
    for m in _AMOUNT.finditer(line.num):
        parsed = _parse_number(m.group("num"))
        if parsed is None:
            continue
        value, decimals = parsed
        if m.group("sign"):
            value = -value
        currency = _currency(m.group("cur1") or m.group("cur2"))
        out.append(_Amount(value, m.start("num"), m.end(), currency, decimals))
    return out


def _rates(line: _Line) -> list[tuple[Decimal, int, int]]:
    out = []
    for m in _RATE.finditer(line.num):
        try:
            value = Decimal(m.group(1).replace(",", "."))
        except InvalidOperation:  # pragma: no cover - the pattern only admits numbers
            continue
        canonical = next((r for r in VAT_RATES if r == value), None)
        if canonical is None and value > 30 and "," not in m.group(1) and "." not in m.group(1):
            # "210 %", "550 %", "2000 %": the OCR lost the decimal comma of a rate.
            digits = m.group(1)
            fits = {
                r for i in range(1, len(digits)) for r in VAT_RATES
                if r == Decimal(f"{digits[:i]}.{digits[i:]}")
            }  # fmt: skip
            canonical = fits.pop() if len(fits) == 1 else None
        if canonical is not None:
            out.append((canonical, m.start(), m.end()))
    return out


_MONTHS = {
    "janvier": 1, "janv": 1, "jan": 1, "january": 1,
    "fevrier": 2, "fevr": 2, "fev": 2, "february": 2, "feb": 2,
    "mars": 3, "march": 3, "mar": 3,
    "avril": 4, "avr": 4, "april": 4, "apr": 4,
    "mai": 5, "may": 5,
    "juin": 6, "june": 6, "jun": 6,
    "juillet": 7, "juil": 7, "july": 7, "jul": 7,
    "aout": 8, "august": 8, "aug": 8,
    "septembre": 9, "sept": 9, "sep": 9, "september": 9,
    "octobre": 10, "oct": 10, "october": 10,
    "novembre": 11, "nov": 11, "november": 11,
    "decembre": 12, "dec": 12, "december": 12,
}  # fmt: skip
_MONTH_NAMES = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_PATTERNS = (
    # 15/03/2026, 15.03.2026, 15-03-2026, 15/03/26
    re.compile(r"(?<![\d/.-])(?P<d>\d{1,2})\s?([/.-])\s?(?P<m>\d{1,2})\s?\2\s?(?P<y>\d{4}|\d{2})(?![\d/])"),
    # 2026-03-15, 2026/03/15
    re.compile(r"(?<![\d/.-])(?P<y>\d{4})\s?([/.-])\s?(?P<m>\d{1,2})\s?\2\s?(?P<d>\d{1,2})(?![\d/])"),
    # 15 mars 2026, 1er mars 2026 (read "ler" too), 15-mar-2026
    re.compile(
        rf"(?<![\w])(?P<d>\d{{1,2}}|[li|]er\b)(?:er)?[\s.-]*(?P<mn>{_MONTH_NAMES})\.?[\s.,-]*(?P<y>\d{{4}})(?!\d)"
    ),
    # March 15, 2026
    re.compile(rf"\b(?P<mn>{_MONTH_NAMES})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})(?!\d)"),
)  # fmt: skip


#: Dates whose separators the OCR lost or read as digits ("1210412026", "3105 2025"): only
#: believed right after a date label.
_DAMAGED_DATES = (
    re.compile(r"(?<![\d/.-])(?P<d>\d{2})[17](?P<m>\d{2})[17](?P<y>20\d{2})(?!\d)"),
    re.compile(r"(?<![\d/.-])(?P<d>\d{2})\s?(?P<m>\d{2})\s?(?P<y>20\d{2})(?!\d)"),
)


def _dates(line: _Line, patterns: tuple[re.Pattern[str], ...] = ()) -> list[tuple[date, int, int]]:
    out: list[tuple[date, int, int]] = []
    for pattern in patterns or _DATE_PATTERNS:
        for m in pattern.finditer(line.fnum):
            if any(s < m.end() and m.start() < e for _, s, e in out):
                continue
            groups = m.groupdict()
            month = _MONTHS[groups["mn"]] if groups.get("mn") else int(groups["m"])
            if not groups.get("mn") and month > 12 >= int(groups["d"]):
                # 03/20/2023: month first (US); unambiguous only because 20 > 12.
                month, groups["d"] = int(groups["d"]), groups["m"]
            year = int(groups["y"])
            if year < 100:
                year += 2000
            try:
                day = 1 if groups["d"].endswith("er") else int(groups["d"])
                value = date(year, month, day)
            except ValueError:
                continue
            if 1990 <= value.year <= 2100:
                out.append((value, m.start(), m.end()))
    return sorted(out, key=lambda d: d[1])


# --- identifiers -----------------------------------------------------------------------------


def _siren_of_vat(vat: str) -> str | None:
    if vat.startswith("FR") and len(vat) == 13 and vat[4:].isdigit():
        return vat[4:]
    return None


def _siren_ok(digits: str) -> bool:
    return len(digits) == 9 and digits.isdigit() and luhn.is_valid(digits)


def _siret_ok(digits: str) -> bool:
    return (
        len(digits) == 14
        and digits.isdigit()
        and _siren_ok(digits[:9])
        and (luhn.is_valid(digits) or digits.startswith("356000000"))  # La Poste
    )


_LETTER_LOOKALIKES = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "6": "G"})


def _variants(text: str, digit_positions: Callable[[int], bool]) -> list[str]:
    """``text``, then its reading with look-alike letters made digits where digits belong."""
    fixed = "".join(
        c.translate(_DIGIT_LOOKALIKES) if digit_positions(i) else c for i, c in enumerate(text)
    )
    return [text] if fixed == text else [text, fixed]


@dataclass(frozen=True)
class _Id:
    """A checksum-valid identifier found on a line."""

    kind: str  # siren, siret, vat
    value: str  # compact
    siren: str | None
    line: _Line
    start: int
    end: int
    repaired: bool
    label: str | None


_VAT_RE = re.compile(
    r"(?<![A-Z0-9])(?P<cc>FR|AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK)"
    r"\s?(?P<body>[0-9A-Z](?:[ .]?[0-9A-Z]){7,12})(?![0-9A-Z])"
)  # fmt: skip
_DIGIT_RUN = re.compile(r"(?<![\w])\d+(?:[ .\u00a0]\d+)*(?![\w])")
_ID_LABELS = (
    ("siret", re.compile(r"\bsiret\b")),
    ("siren", re.compile(r"\bsiren\b")),
    ("rcs", re.compile(r"\br\.?\s?c\.?\s?s\.?(?![a-z])")),
    ("vat", re.compile(r"\b(?:t\.?\s?v\.?\s?a\.?(?![a-z])|vat\b|intracom)")),
)


def _id_label(line: _Line, start: int) -> str | None:
    before = line.fold[max(0, start - 40) : start]
    best: tuple[int, str] | None = None
    for name, pattern in _ID_LABELS:
        for m in pattern.finditer(before):
            if best is None or m.end() > best[0]:
                best = (m.end(), name)
    return best[1] if best else None


def _vat_ids(line: _Line) -> list[_Id]:
    out = []
    upper = line.text.upper()
    for m in _VAT_RE.finditer(upper):
        cc = m.group("cc")
        body = re.sub(r"[ .]", "", m.group("body"))
        found = None
        for length in range(len(body), 7, -1):
            raw = cc + body[:length]
            if cc == "FR" and length == 11:
                candidates = _variants(raw, lambda i: i >= 4 or i in (2, 3))
            else:
                candidates = [raw, raw[:2] + raw[2:].translate(_DIGIT_LOOKALIKES)]
            for candidate in candidates:
                if eu_vat.is_valid(candidate) and (cc != "FR" or fr_tva.is_valid(candidate)):
                    found = (candidate, candidate != raw)
                    break
            if found:
                break
        if found:
            value, repaired = found
            out.append(
                _Id(
                    "vat",
                    value,
                    _siren_of_vat(value),
                    line,
                    m.start(),
                    m.end(),
                    repaired,
                    _id_label(line, m.start()),
                )
            )
    return out


def _siren_ids(line: _Line, taken: list[tuple[int, int]]) -> list[_Id]:
    out = []
    for m in _DIGIT_RUN.finditer(line.num):
        if any(s < m.end() and m.start() < e for s, e in taken):
            continue
        groups = [(g.start() + m.start(), g.group()) for g in re.finditer(r"\d+", m.group())]
        # Any run of consecutive groups of 9 or 14 digits (a SIRET may follow a phone...).
        for i in range(len(groups)):
            digits = ""
            for j in range(i, len(groups)):
                digits += groups[j][1]
                if len(digits) > 14:
                    break
                start, end = groups[i][0], groups[j][0] + len(groups[j][1])
                repaired = line.num[start:end] != line.text[start:end]
                label = _id_label(line, start)
                if len(digits) == 14 and _siret_ok(digits):
                    out.append(_Id("siret", digits, digits[:9], line, start, end, repaired, label))
                elif len(digits) == 14 and _siren_ok(digits[:9]):
                    # A misread NIC: the SIREN still checks out on its own.
                    head_end = start + len(line.num[start:end]) - len(groups[j][1])
                    out.append(
                        _Id("siren", digits[:9], digits[:9], line, start, head_end, True, label)
                    )
                elif len(digits) == 9 and _siren_ok(digits):
                    # A SIREN standing alone, not the head of a longer number.
                    tail = j + 1 < len(groups) and len(digits + groups[j + 1][1]) == 14
                    if not tail:
                        out.append(_Id("siren", digits, digits, line, start, end, repaired, label))
    return out


_IBAN_RE = re.compile(
    r"(?<![A-Z0-9])(?P<cc>[A-Z]{2})\s?(?P<rest>[0-9OILSBZ]{2}(?:\s?[0-9A-Z]){10,30})"
)


def _iban_readings(raw: str) -> list[str]:
    """``raw`` and readings with look-alikes fixed where the IBAN must hold digits."""
    if raw.startswith("FR") and len(raw) == 27:
        # FR: check digits, bank and branch codes (5+5) and RIB key are digits.
        return _variants(raw, lambda i: 2 <= i < 14 or i >= 25)
    return [*_variants(raw, lambda i: 2 <= i < 4), raw[:2] + raw[2:].translate(_DIGIT_LOOKALIKES)]


def _ibans(line: _Line) -> list[tuple[str, int, int, bool]]:
    out = []
    upper = line.text.upper()
    for m in _IBAN_RE.finditer(upper):
        compact = m.group("cc") + re.sub(r"\s", "", m.group("rest"))
        for length in range(min(34, len(compact)), 14, -1):
            found = False
            for reading in _iban_readings(compact[:length]):
                if stdnum_iban.is_valid(reading):
                    # Map the end of the IBAN back onto the line.
                    count, end = 0, m.start()
                    while end < len(upper) and count < length:
                        if not upper[end].isspace():
                            count += 1
                        end += 1
                    out.append((reading, m.start(), end, reading != compact[:length]))
                    found = True
                    break
            if found:
                break
    return out


_BIC_RE = re.compile(
    r"(?<![A-Z0-9])([A-Z0-9]{4}[A-Z0-9]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?)(?![A-Z0-9])"
)


def _bic_reading(token: str) -> str | None:
    head = token[:6].translate(_LETTER_LOOKALIKES)
    reading = head + token[6:]
    return reading if stdnum_bic.is_valid(reading) and head.isalpha() else None


# --- labels ----------------------------------------------------------------------------------

_N = r"(?:numbers?\b|numero\b|num\b\.?|n\s?[°º*?](?![a-z])\.?|no\b\.?|nr\b\.?|#)"
_HT = r"h\.?\s?t\.?(?![a-z])"
_TVA = r"t\.?\s?v\.?\s?a\.?(?![a-z])"
_TTC = r"t\.?\s?t\.?\s?c\.?(?![a-z])"

#: field -> [(pattern on the folded line, weight)]; longer matches win over the ones inside.
_LABEL_SPECS: dict[str, list[tuple[str, float]]] = {
    "invoice_number": [
        (rf"\bfacture\s*{_N}", 1.0),
        (rf"\b{_N}\s*(?:de\s+(?:la\s+)?)?facture\b", 1.0),
        (r"\bnumero\s+de\s+facture\b", 1.0),
        (rf"\bavoir\s*{_N}", 1.0),
        (rf"\b{_N}\s*d\s?'?\s?avoir\b", 1.0),
        (rf"\binvoice\s*(?:{_N}|number\b|num\b|id\b)", 1.0),
        (rf"\bcredit\s+note\s*(?:{_N}|number\b)", 1.0),
        (r"\bref(?:erence)?\.?\s*(?:de\s+(?:la\s+)?)?facture\b", 0.9),
        (r"\bfacture\b", 0.45),
        (r"\binvoice\b", 0.45),
        (r"^\s*avoir\b", 0.45),
        (
            r"(?<![a-z])n\s?[°º]\.?(?!\s*(?:d\s?'?\s?)?(?:tva|t\.v|siret|siren|client|commande|"
            r"cde|bc|tel|fax|rcs|ape|naf|compte|intra|de\s+commande|d'?\s?identification))",
            0.5,
        ),
    ],
    "issue_date": [
        (r"\bdate\s*(?:de\s+(?:la\s+)?)?(?:facture|facturation)\b", 1.0),
        (r"\bdate\s*d\s?'?\s?emission\b", 1.0),
        (r"\bemise?\s+le\b", 0.9),
        (r"\b(?:invoice|issue)\s+date\b", 1.0),
        (r"\bdate\s+of\s+(?:issue|invoice)\b", 1.0),
        (r"\bdate\s+(?:d\s?'?\s?)?avoir\b", 1.0),
        (r"\bdate\b", 0.7),
        (r"(?:^|,)\s*le\b", 0.5),
        (r"\bdu\b", 0.45),
        (r"\bdated\b", 0.6),
    ],
    "due_date": [
        (r"\bdate\s*(?:d\s?'?\s?)?echeance\b", 1.0),
        (r"\becheance\b", 0.95),
        (r"\bdate\s+limite(?:\s+de\s+(?:paiement|reglement))?\b", 1.0),
        (r"\ba\s+regler\s+(?:avant\s+)?le\b", 1.0),
        (r"\ba\s+regler\s+avant\b", 1.0),
        (r"\bpayable\s+(?:le|avant\s+le|au|jusqu'?\s?au)\b", 1.0),
        (r"\bdate\s+de\s+(?:paiement|reglement)\b", 0.9),
        (r"\bpaiement\s+(?:le|avant\s+le|au\s+plus\s+tard\s+le)\b", 0.9),
        (r"\bdue\s+date\b", 1.0),
        (r"\bpayment\s+due(?:\s+date)?\b", 1.0),
        (r"\bdue\s+(?:on|by)\b", 0.9),
        (r"\bexigible\s+le\b", 0.9),
    ],
    "po_reference": [
        (rf"\bbon\s+de\s+commande(?:\s*{_N})?", 1.0),
        (rf"\bvotre\s+commande(?:\s*{_N})?", 1.0),
        (rf"\b(?:{_N}\s*(?:de\s+)?|ref\.?\s*(?:de\s+)?|reference\s+(?:de\s+)?)commande\b", 1.0),
        (rf"\bcommande\s*{_N}", 1.0),
        (r"\bvotre\s+ref(?:erence)?\.?(?![a-z])", 0.8),
        (rf"\bpurchase\s+order(?:\s*(?:{_N}|number\b))?", 1.0),
        (rf"\bp\.?o\.?\s*(?:{_N}|number\b|ref\b)", 1.0),
        (rf"\byour\s+(?:order|ref(?:erence)?)(?:\s*(?:{_N}|number\b))?", 1.0),
        (rf"\border\s*(?:{_N}|number\b|ref\b)", 0.8),
        (rf"\bbc\s*{_N}", 0.9),
    ],
    "total_ht": [
        (rf"\btotal\s+(?:{_HT}|hors\s+taxes?\b)", 1.0),
        (rf"\bmontant\s+(?:total\s+)?(?:{_HT}|hors\s+taxes?\b)", 1.0),
        (rf"\b(?:net|base)\s+{_HT}", 0.8),
        (rf"\bsous[\s-]?total(?:\s+{_HT})?", 0.85),
        (r"\bsub[\s-]?total\b", 0.9),
        (r"\btotal\s+(?:excl\.?|excluding|before|w/o|net\s+of)\s*(?:vat|tax(?:es)?)?\b", 1.0),
        (r"\bnet\s+(?:amount|total)\b", 0.8),
        (r"\btotal\s+net\b", 0.8),
    ],
    "total_vat": [
        (rf"\b(?:total|montant)\s+(?:de\s+(?:la\s+)?)?{_TVA}", 1.0),
        (r"\b(?:total\s+vat|vat\s+total|vat\s+amount|total\s+tax(?:es)?|tax\s+total)\b", 1.0),
        (rf"(?<![a-z])(?<!\d\s){_TVA}(?!\s*(?:intra|n\s?[°º]|no\b|:?\s*fr\b))", 0.6),
        (r"\bvat\b(?!\s*(?:no\b|number|reg|id\b|:?\s*fr\b))", 0.6),
        (r"\btax(?:es)?\b", 0.45),
    ],
    "total_ttc": [
        (rf"\btotal\s+(?:{_TTC}|toutes\s+taxes\s+comprises\b)", 1.0),
        (rf"\bmontant\s+(?:total\s+)?{_TTC}", 1.0),
        (rf"\bnet\s+{_TTC}", 0.9),
        (r"\btotal\s+(?:incl\.?|including|with)\s*(?:vat|tax(?:es)?)?\b", 1.0),
        (r"\btotal\s+(?:a|to)\s+pay(?:er)?\b", 0.9),
        (r"\bnet\s+a\s+payer\b", 0.8),
        (r"\bamount\s+due\b", 0.6),
        (r"\bbalance\s+due\b", 0.6),
        (r"\btotal\s+due\b", 0.7),
        (r"\bgrand\s+total\b", 0.8),
        (r"\btotal\s+general\b", 0.8),
        (r"\btotal\b", 0.4),
    ],
    "amount_due": [
        (r"\bnet\s+a\s+payer\b", 1.0),
        (r"\breste\s+a\s+payer\b", 1.0),
        (r"\bsolde\s+(?:du|a\s+payer)\b", 0.9),
        (r"\bmontant\s+(?:du|a\s+regler)\b", 0.9),
        (r"\b(?:amount|balance|total)\s+due\b", 1.0),
    ],
    "buyer": [
        (r"\bfactur[ee]\s+a\b", 1.0),
        (
            r"(?<!n°\s)(?<!code\s)(?<!ref\.\s)(?<!ref\s)\bclient\b(?!\s*(?:n\s?[°º]|no\b|:?\s*\d))",
            0.8,
        ),
        (r"\badresse\s+de\s+facturation\b", 1.0),
        (r"\bdestinataire\b", 0.9),
        (r"\b(?:bill(?:ed)?|invoice(?:d)?|sold)\s+to\b", 1.0),
        (r"\bcustomer\b(?!\s*(?:no\b|number|id\b|ref))", 0.8),
        (r"^\s*doit\b", 0.8),
    ],
    "iban": [(r"\biban\b", 1.0)],
    "bic": [(r"\b(?:code\s+)?(?:bic|swift)\b", 1.0)],
}
_LABELS: tuple[tuple[str, re.Pattern[str], float], ...] = tuple(
    # OCR glues words ("avantle", "Netapayer"): spaces inside a label are optional.
    (name, re.compile(pattern.replace(r"\s+", r"\s*")), weight)
    for name, specs in _LABEL_SPECS.items()
    for pattern, weight in specs
)


@dataclass(frozen=True)
class _Hit:
    field: str
    line: _Line
    start: int
    end: int
    weight: float
    #: Where the region to the label's right ends (next label on the line, or line end).
    stop: int


def _hits(line: _Line) -> list[_Hit]:
    raw = []
    for name, pattern, weight in _LABELS:
        for m in pattern.finditer(line.fold):
            if m.end() > m.start():
                raw.append((m.start(), m.end(), name, weight))
    raw.sort(key=lambda h: (-(h[1] - h[0]), h[0]))
    kept: list[tuple[int, int, str, float]] = []
    for start, end, name, weight in raw:
        clash = any(s < end and start < e and (s, e) != (start, end) for s, e, _, _ in kept)
        if not clash and not any((s, e, n) == (start, end, name) for s, e, n, _ in kept):
            kept.append((start, end, name, weight))
    hits = []
    for start, end, name, weight in kept:
        following = [s for s, _, _, _ in kept if s >= end]
        hits.append(_Hit(name, line, start, end, weight, min(following, default=len(line.text))))
    return sorted(hits, key=lambda h: h.start)


# --- the document ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    value: object
    score: float
    line: _Line
    start: int
    end: int
    label: str = ""

    @property
    def bbox(self) -> BBox:
        return self.line.box(self.start, self.end)


class _Document:
    def __init__(self, pages: Sequence[PageText]) -> None:
        self.lines: list[_Line] = []
        for page in pages:
            for line in page.lines():
                self.lines.append(_Line.build(page, len(self.lines), line))
        self.hits = {id(line): _hits(line) for line in self.lines}
        self.dates = {id(line): _dates(line) for line in self.lines}
        # A year or a day is not an amount: numbers inside a date are left out.
        self.amounts = {
            id(line): [
                a
                for a in _amounts(line)
                if not any(s < a.end and a.start < e for _, s, e in self.dates[id(line)])
            ]
            for line in self.lines
        }

    def all_hits(self, name: str) -> list[_Hit]:
        return [h for line in self.lines for h in self.hits[id(line)] if h.field == name]

    def below(self, line: _Line, count: int = 2) -> list[_Line]:
        """The next lines on the page under ``line``, at most ~3 line heights down."""
        out: list[_Line] = []
        for other in self.lines[line.order + 1 :]:
            if other.page != line.page or len(out) >= count:
                break
            if line.bbox[1] - other.bbox[3] > 3.5 * max(line.unit, other.unit):
                break
            out.append(other)
        return out

    def regions(self, hit: _Hit) -> Iterable[tuple[_Line, int, int, float]]:
        """Where a label's value may be: to its right, then in the cells just below it."""
        yield hit.line, hit.end, hit.stop, 1.0
        x0, x1 = hit.line.x_range(hit.start, hit.end)
        for rank, other in enumerate(self.below(hit.line)):
            for start, end in other.cells_under(x0 - 2, x1 + 2):
                if not any(h.start < end and start < h.end for h in self.hits[id(other)]):
                    yield other, start, end, 0.85 - 0.15 * rank


# --- fields ----------------------------------------------------------------------------------


def _date_candidates(doc: _Document, name: str) -> list[_Candidate]:
    out = []
    for hit in doc.all_hits(name):
        for line, start, end, factor in doc.regions(hit):
            found = [d for d in doc.dates[id(line)] if d[1] >= start and d[2] <= end]
            if not found:
                damaged = _dates(line, _DAMAGED_DATES)
                found = [d for d in damaged if d[1] >= start and d[2] <= end]
                factor *= 0.8
            if found:
                value, s, e = found[0]
                out.append(_Candidate(value, hit.weight * factor, line, s, e, name))
                break
    return out


def _unlabelled_issue_date(doc: _Document, taken: _Candidate | None) -> _Candidate | None:
    """The earliest date at the top of the first page, when no label survived the OCR."""
    first = doc.lines[0].page
    found = [
        _Candidate(value, 0.15, line, s, e, "unlabelled")
        for line in doc.lines
        if line.page == first and line.top < 0.45
        for value, s, e in doc.dates[id(line)]
        if taken is None or (line, s) != (taken.line, taken.start)
    ]
    return min(found, key=lambda c: c.value) if found else None  # type: ignore[arg-type,return-value]


_REF_TOKEN = re.compile(r"[^\s:]+")
_REF_SKIP = re.compile(
    r"^(?:n\s?[°º*o]?\.?|no\.?|nr\.?|num(?:ero)?\.?|#|de|du|la|d'?avoir|facture|invoice|number|"
    r"ref\.?|reference|:|-|–|—)$"
)
_REF_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_.#-]*[A-Za-z0-9]$|^\d+$")


_REF_DIGITS = str.maketrans("OoIl", "0011")


def _clean_reference(token: str) -> str | None:
    token = token.strip(".,;:()[]«»\"'")
    token = token.lstrip("#°º")
    if not token or not any(c.isdigit() for c in token) or len(token) > 30:
        return None
    if not _REF_SHAPE.match(token):
        return None
    # "F-2O26-0042": a segment of digits with an O in it is digits.
    segments = re.split(r"([/_.#-])", token)
    fixed = []
    for seg in segments:
        digits = sum(c.isdigit() for c in seg)
        if digits >= 2 and digits >= len(seg) - 1 and re.fullmatch(r"[0-9OoIl]+", seg):
            seg = seg.translate(_REF_DIGITS)
        fixed.append(seg)
    return "".join(fixed)


def _reference_candidates(doc: _Document, name: str) -> list[_Candidate]:
    out = []
    for hit in doc.all_hits(name):
        for line, start, end, factor in doc.regions(hit):
            value = None
            for m in _REF_TOKEN.finditer(line.text, start, end):
                token = m.group()
                if _REF_SKIP.match(_fold_word(token)):
                    continue
                if any(m.start() < e and s < m.end() for _, s, e in doc.dates[id(line)]):
                    break  # a date, not a number
                value = _clean_reference(token)
                if value is None or (hit.weight < 0.6 and len(value) < 4):
                    value = None
                    break
                out.append(_Candidate(value, hit.weight * factor, line, m.start(), m.end(), name))
                break
            if value is not None:
                break
    return out


def _fold_word(text: str) -> str:
    return "".join(_fold_char(c) for c in text)


def _amount_candidates(doc: _Document, name: str) -> list[_Candidate]:
    out = []
    for hit in doc.all_hits(name):
        for line, start, end, factor in doc.regions(hit):
            # "TVA 20 % 246,91" is a line of the breakdown, not the total.
            breakdown_line = any(s >= start and e <= end for _, s, e in _rates(line))
            if name == "total_vat" and factor == 1.0 and breakdown_line and hit.weight < 1:
                break
            found = [
                a
                for a in doc.amounts[id(line)]
                if a.start >= start and a.end <= end and (a.decimals or a.currency)
            ]
            if found:
                a = found[0]
                score = hit.weight * factor * (1.0 if a.decimals else 0.7)
                out.append(_Candidate(a.value, score, line, a.start, a.end, name))
                digits = re.sub(r"\D", "", line.num[a.start : a.end])
                if not a.decimals and len(digits) >= 3 and digits == str(int(a.value)):
                    # "28357 €": the OCR lost the decimal comma of 283,57.
                    alt = (a.value / 100).quantize(CENT)
                    out.append(_Candidate(alt, 0.6 * score, line, a.start, a.end, "repaired"))
                break
    return out


def _best(candidates: list[_Candidate]) -> list[_Candidate]:
    """One candidate per value, the best scored first; repeated values score a bit more."""
    by_value: dict[object, list[_Candidate]] = {}
    for c in candidates:
        by_value.setdefault(c.value, []).append(c)
    merged = []
    for group in by_value.values():
        top = max(group, key=lambda c: c.score)
        bonus = 0.05 * (len(group) - 1)
        merged.append(
            _Candidate(top.value, top.score + bonus, top.line, top.start, top.end, top.label)
        )
    return sorted(merged, key=lambda c: -c.score)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _vat_of(base: Decimal, rate: Decimal) -> Decimal:
    return _money(base * rate / 100)


@dataclass
class _Row:
    rate: Decimal
    base: Decimal | None
    amount: Decimal
    line: _Line
    start: int
    end: int
    confirmed: bool


def _breakdown_rows(doc: _Document) -> list[_Row]:
    rows: list[_Row] = []
    for line in doc.lines:
        rates = _rates(line)
        if len(rates) != 1:
            continue
        rate, r_start, r_end = rates[0]
        amounts = [
            a for a in doc.amounts[id(line)] if a.decimals and not (r_start <= a.start < r_end)
        ]
        pair = None
        for base, vat in product(amounts, amounts):
            # The base comes first ("20 % 1 000,00 200,00", "TVA 20 % sur 1 000,00 : 200,00");
            # in an invoice line "5 x 22,40 (20 %) = 112,00" the pair would be the other way.
            fits = abs(_vat_of(base.value, rate) - vat.value) <= CENT
            if base.start < vat.start and base.value > vat.value > 0 and fits:
                pair = (base, vat)
                break
        if pair:
            base, vat = pair
            start, end = min(base.start, vat.start, r_start), max(base.end, vat.end, r_end)
            rows.append(_Row(rate, base.value, vat.value, line, start, end, True))
            continue
        labelled = any(h.field == "total_vat" for h in doc.hits[id(line)])
        after = [a for a in amounts if a.start >= r_end]
        if labelled and not after:
            # "TVA 20 % 12117 €": the tax lost its decimal comma (121,17).
            bare = [a for a in doc.amounts[id(line)] if a.start >= r_end and a.currency]
            if len(bare) == 1 and not bare[0].decimals and bare[0].value >= 100:
                a = bare[0]
                rows.append(
                    _Row(rate, None, (a.value / 100).quantize(CENT), line, r_start, a.end, False)
                )
                continue
        if labelled and len(after) == 1:
            a = after[0]
            rows.append(_Row(rate, None, a.value, line, r_start, a.end, False))
        elif (labelled or _under_breakdown_head(doc, line)) and len(after) == 2:
            # A breakdown row whose tax is not rate x base: kept, so the check can fail.
            base, vat = after
            if base.value > vat.value > 0:
                rows.append(_Row(rate, base.value, vat.value, line, r_start, vat.end, False))
    # One row per rate: confirmed rows first.
    by_rate: dict[Decimal, _Row] = {}
    for row in sorted(rows, key=lambda r: not r.confirmed):
        by_rate.setdefault(row.rate, row)
    return sorted(by_rate.values(), key=lambda r: -r.rate)


_BREAKDOWN_HEAD = re.compile(r"\b(?:base|taux|rate)\b")


def _under_breakdown_head(doc: _Document, line: _Line) -> bool:
    """Whether a header naming a base or a rate stands just above ``line``."""
    above = doc.lines[max(0, line.order - 3) : line.order]
    return any(o.page == line.page and _BREAKDOWN_HEAD.search(o.fold) for o in above)


_ANY_RATE = re.compile(r"(?<![\d.,])\d{1,4}(?:[.,]\d{1,2})?\s?%")


def _item_bases(doc: _Document, hit_lines: set[int]) -> tuple[dict[Decimal, Decimal], bool]:
    """Net amounts of the invoice lines summed per rate (the last amount of a row with a rate),
    and whether every line with a rate was read (else the sums of the other rates are short)."""
    bases: dict[Decimal, Decimal] = {}
    complete = True
    for line in doc.lines:
        if id(line) in hit_lines:
            continue
        rates = _rates(line)
        amounts = [a for a in doc.amounts[id(line)] if a.decimals]
        if not amounts:
            continue
        if len(rates) != len(_ANY_RATE.findall(line.num)):
            complete = False
        elif len(rates) == 1:
            bases[rates[0][0]] = bases.get(rates[0][0], Decimal(0)) + amounts[-1].value
    return bases, complete


# --- parties -------------------------------------------------------------------------------

_LEGAL_LINE = re.compile(
    r"^(?P<before>.*?)[\s,–—-]*\b(?P<form>sas|sasu|sarl|eurl|sa|snc|sci|scop|selarl)\b"
    r"(?P<after>.*?)\bau\s+capital\b",
)


def _title_text(fold: str) -> bool:
    titles = r"facture|invoice|avoir|credit\s+note|devis|proforma|receipt|factuur|rechnung|factura"
    return bool(re.fullmatch(rf"\s*(?:{titles}|payment\s+receipt|tax\s+invoice)\W*", fold))


@dataclass
class _Parties:
    buyer_lines: set[int] = field(default_factory=set)
    buyer_name: _Candidate | None = None


def _buyer_block(doc: _Document) -> _Parties:
    parties = _Parties()
    hits = sorted(doc.all_hits("buyer"), key=lambda h: -h.weight)
    for hit in hits[:1]:
        line = hit.line
        x0 = line.x_range(hit.start, hit.end)[0] - 5
        x1 = x0 + 0.5 * line.page_width
        block: list[tuple[_Line, int, int]] = []
        rest = line.text[hit.end : line.cell_at(hit.end)[1]].strip(" :\t")
        if rest:
            start = line.text.index(rest, hit.end)
            block.append((line, start, start + len(rest)))
        previous = line
        for other in doc.lines[line.order + 1 : line.order + 9]:
            if other.page != line.page:
                break
            if previous.bbox[1] - other.bbox[3] > 2.5 * max(previous.unit, other.unit):
                break
            cells = [c for c in other.cells if x0 <= other.x_range(*c)[0] <= x1]
            if not cells:
                continue
            block.append((other, cells[0][0], cells[-1][1]))
            previous = other
        parties.buyer_lines = {id(b[0]) for b in block}
        for other, start, end in block:
            text = other.text[start:end].strip()
            if re.search(r"[A-Za-z]{2}", text) and not re.match(r"^\d", text):
                parties.buyer_name = _Candidate(text, 0.7 * hit.weight, other, start, end)
                break
    return parties


def _seller_name_candidates(
    doc: _Document, parties: _Parties, buyer_name: str | None
) -> list[_Candidate]:
    out: list[_Candidate] = []
    buyer_norm = normalise_name(buyer_name) if buyer_name else None
    label_lines = {id(h.line) for line in doc.lines for h in doc.hits[id(line)]}
    # 1. The legal mentions: "X - SAS au capital de ...", "SARL X au capital de ...".
    for line in doc.lines:
        m = _LEGAL_LINE.search(line.fold)
        if not m:
            continue
        before = line.text[: m.start("form")].strip(" ,–—-\t")
        after = line.text[m.end("form") : m.start("after") + len(m.group("after"))].strip(" ,–—-\t")
        name = before or after
        if name and re.search(r"[A-Za-z]{2}", name) and normalise_name(name) != buyer_norm:
            start = line.text.index(name)
            out.append(_Candidate(name, 0.75, line, start, start + len(name), "legal"))
    # 2. The most prominent text at the top of the first page.
    first_page = (
        [ln for ln in doc.lines if ln.page == doc.lines[0].page and ln.top < 0.3]
        if doc.lines
        else []
    )
    prominent: list[tuple[float, _Line, int, int]] = []
    for line in first_page:
        if id(line) in parties.buyer_lines:
            continue
        for start, end in line.cells:
            text = line.text[start:end].strip()
            fold = line.fold[start:end]
            if len(text) < 3 or not re.search(r"[A-Za-z]{3}", text) or _title_text(fold):
                continue
            if any(h.start < end and start < h.end for h in doc.hits[id(line)]):
                continue
            if re.match(r"^[\d#]", text) or "@" in text or ":" in text:
                continue  # an address, a number, an e-mail or a "label: value"
            if re.search(r"\d{2}[ .]\d{2}[ .]\d{2}", text):
                continue  # a phone number
            words = [
                w
                for w, (s, e) in zip(line.words, line.spans, strict=True)
                if s >= start and e <= end
            ]
            height = max(w.height for w in words)
            prominent.append((height, line, start, end))
    if prominent:
        typical = statistics.median(h for h, _, _, _ in prominent)
        prominent.sort(key=lambda p: (-p[0], p[1].order))
        height, line, start, end = prominent[0]
        text = line.text[start:end].strip()
        if height > 1.15 * typical and normalise_name(text) != buyer_norm:
            score = 0.6 if id(line) not in label_lines else 0.4
            out.append(_Candidate(text, score, line, start, end, "header"))
    return out


# --- assembling ------------------------------------------------------------------------------


class _Builder:
    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.provenance: dict[str, Provenance] = {}
        self.flags: list[tuple[str, str]] = []

    def set(
        self,
        name: str,
        value: object,
        confidence: float,
        where: _Candidate | tuple[_Line, int, int] | None,
    ) -> None:
        if value is None:
            return
        self.values[name] = value
        page = bbox = None
        if isinstance(where, _Candidate):
            page, bbox = where.line.page, where.bbox
        elif where is not None:
            line, start, end = where
            page, bbox = line.page, line.box(start, end)
        self.provenance[name] = Provenance(
            source=FieldSource.ocr,
            confidence=round(max(0.0, min(1.0, confidence)), 3),
            page=page,
            bbox=bbox,
        )

    def scale(self, names: Iterable[str], factor: float) -> None:
        for name in names:
            if name in self.provenance:
                p = self.provenance[name]
                self.provenance[name] = p.model_copy(
                    update={"confidence": round(p.confidence * factor, 3)}
                )

    def raise_to(self, name: str, confidence: float) -> None:
        if name in self.provenance:
            p = self.provenance[name]
            self.provenance[name] = p.model_copy(
                update={"confidence": max(p.confidence, confidence)}
            )

    def flag(self, code: str, message: str) -> None:
        self.flags.append((code, message))


def _confidence(score: float, ceiling: float = 0.95) -> float:
    return max(0.05, min(ceiling, 0.35 + 0.6 * score))


def _pick_totals(doc: _Document, rows: list[_Row], out: _Builder) -> None:
    """Total HT, VAT and TTC: the labelled candidates that add up, else the best ones."""
    ht = _best(_amount_candidates(doc, "total_ht"))[:5]
    vat = _best(_amount_candidates(doc, "total_vat"))[:5]
    ttc = _best(_amount_candidates(doc, "total_ttc"))[:5]
    due = _best(_amount_candidates(doc, "amount_due"))[:3]
    # Unlabelled amounts may stand in for a label the OCR garbled, if the sums confirm them.
    loose: list[_Candidate] = []
    seen: set[Decimal] = set()
    for line in doc.lines:
        for a in doc.amounts[id(line)]:
            if a.decimals and a.value > 0 and a.value not in seen:
                seen.add(a.value)
                loose.append(_Candidate(a.value, 0.3, line, a.start, a.end, "loose"))
    confirmed_rows = [r for r in rows if r.confirmed and r.base is not None]
    row_base = sum((r.base for r in confirmed_rows if r.base is not None), Decimal(0))
    row_vat = sum((r.amount for r in rows), Decimal(0))
    # The invoice lines, summed, are independent evidence for the totals.
    items, complete = _item_bases(doc, {id(r.line) for r in rows})
    items = items if complete else {}
    items_ht = sum(items.values(), Decimal(0)) if items else None
    items_vat = sum((_vat_of(b, r) for r, b in items.items()), Decimal(0)) if items else None
    if items_ht is not None and items_vat is not None:
        # "1 762,39" read "62,39": the OCR dropped the first group of digits. The lines'
        # sum ending with the same digits confirms the longer reading.
        for cands, full in ((ht, items_ht), (vat, items_vat), (ttc, items_ht + items_vat)):
            for c in list(cands):
                if _truncated(c.value, full):  # type: ignore[arg-type]
                    cands.append(
                        _Candidate(full, 0.9 * c.score, c.line, c.start, c.end, "repaired")
                    )

    if rows:
        # The breakdown's own sums stand in for a total the OCR misread.
        anchor = rows[-1]
        vat.append(_Candidate(row_vat, 0.5, anchor.line, anchor.start, anchor.end, "rows"))
        if confirmed_rows and len(confirmed_rows) == len(rows):
            ht.append(_Candidate(row_base, 0.5, anchor.line, anchor.start, anchor.end, "rows"))

    if items_ht is not None and items_vat is not None:
        # The sum of the invoice lines, and the tax it implies, stand on their own too.
        anchor_line = doc.lines[-1]
        ht.append(_Candidate(items_ht, 0.4, anchor_line, 0, 0, "items"))
        vat.append(_Candidate(items_vat, 0.35, anchor_line, 0, 0, "items"))

    by_value = {c.value: c for c in loose}

    def score_of(h: _Candidate | None, v: _Candidate | None, t: _Candidate | None) -> float:
        score = sum(c.score for c in (h, v, t) if c is not None)
        checks = 0  # independent confirmations
        if rows and v is not None and v.value == row_vat:
            score, checks = score + 0.5, checks + 1
        if h is not None and h.value == items_ht:
            score, checks = score + 1.0, checks + 1
        if v is not None and v.value == items_vat:
            score, checks = score + 0.5, checks + 1
        if confirmed_rows and len(confirmed_rows) == len(rows) and h and h.value == row_base:
            score, checks = score + 0.5, checks + 1
        if h is not None and v is not None:
            hv, vv = h.value, v.value
            assert isinstance(hv, Decimal) and isinstance(vv, Decimal)
            if h.line is v.line and h.end and v.end and _rates(h.line):
                score -= 1.0  # a base and its tax on one line: a breakdown row, not the totals
            if hv > 0 and not 0 <= vv <= hv / 4:
                score -= 1.0  # no French rate gives that much (or negative) tax
            elif any(_vat_of(hv, r) == vv for r in VAT_RATES):
                score, checks = score + 0.5, checks + 1  # one rate explains the tax exactly
        if h is not None and v is not None and t is not None and h.value + v.value == t.value:  # type: ignore[operator]
            # Adding up proves something only if all three were read, or another check agrees:
            # a total derived from the two others adds up by construction.
            derived = any(c.label == "derived" for c in (h, v, t))
            if not derived or checks:
                score += 2.0
        return score

    def completion(value: object, pair: _Candidate) -> _Candidate:
        """The third total from two others: printed somewhere, or only derived."""
        if value in by_value:
            return by_value[value]
        return _Candidate(value, 0.15, pair.line, 0, 0, "derived")

    combos: list[tuple[_Candidate | None, _Candidate | None, _Candidate | None]] = list(
        product([*ht, None], [*vat, None], [*ttc, None])
    )
    # The third total completing a pair, if the sum confirms it.
    for ch, cv, ct in product([*ht, None], [*vat, None], [*ttc, None]):
        if ch and cv:
            combos.append((ch, cv, completion(ch.value + cv.value, ch)))  # type: ignore[operator]
        if ch and ct:
            combos.append((ch, completion(ct.value - ch.value, ct), ct))  # type: ignore[operator]
        if cv and ct:
            combos.append((completion(ct.value - cv.value, ct), cv, ct))  # type: ignore[operator]
    best: tuple[float, _Candidate | None, _Candidate | None, _Candidate | None] | None = None
    for h, v, t in combos:
        score = score_of(h, v, t)
        if best is None or score > best[0]:
            best = (score, h, v, t)
    h = v = t = None
    if best is not None:
        _, h, v, t = best
    consistent = h is not None and v is not None and t is not None
    ceiling = 0.97 if consistent else 0.85
    chosen: tuple[tuple[str, _Candidate | None], ...] = (
        ("total_ht", h),
        ("total_vat", v),
        ("total_ttc", t),
    )
    read = {"total_ht": ht, "total_vat": vat, "total_ttc": ttc}
    overridden = []
    for name, pick in chosen:
        if pick is None:
            continue
        score = pick.score if pick.label != "loose" else 0.5
        confidence = _confidence(score, ceiling) + 0.1 * consistent
        printed = pick.label not in ("derived", "items")
        labelled = [c for c in read[name] if c.label == name]
        if not printed and labelled and labelled[0].value != pick.value:
            # The page (as read) disagrees with the other totals: someone should look.
            overridden.append(
                f"{name} reads {labelled[0].value}, the other totals give {pick.value}"
            )
            confidence = min(confidence, 0.5)
        out.set(name, pick.value, confidence, pick if printed else None)
    if overridden:
        out.flag("totals_inconsistent", "; ".join(overridden))
        out.scale(("total_ht", "total_vat", "total_ttc"), 0.8)
    values = out.values
    # Derive the missing total from the other two; say how sure we are by the confidence.
    ht_v, vat_v, ttc_v = values.get("total_ht"), values.get("total_vat"), values.get("total_ttc")
    if isinstance(ht_v, Decimal) and isinstance(ttc_v, Decimal) and vat_v is None and ttc_v >= ht_v:
        derived = rows and row_vat == ttc_v - ht_v
        out.set("total_vat", ttc_v - ht_v, 0.8 if derived else 0.6, None)
    elif isinstance(ht_v, Decimal) and isinstance(vat_v, Decimal) and ttc_v is None:
        out.set("total_ttc", ht_v + vat_v, 0.6, None)
    elif isinstance(vat_v, Decimal) and isinstance(ttc_v, Decimal) and ht_v is None:
        out.set("total_ht", ttc_v - vat_v, 0.6, None)
    ht_v, vat_v, ttc_v = values.get("total_ht"), values.get("total_vat"), values.get("total_ttc")
    if (
        isinstance(ht_v, Decimal)
        and isinstance(vat_v, Decimal)
        and isinstance(ttc_v, Decimal)
        and ht_v + vat_v != ttc_v
    ):
        out.flag(
            "totals_inconsistent",
            f"total HT {ht_v} + VAT {vat_v} = {ht_v + vat_v}, but the total TTC reads {ttc_v}",
        )
        out.scale(("total_ht", "total_vat", "total_ttc"), 0.5)
    if due:
        d = due[0]
        value = d.value
        if isinstance(ttc_v, Decimal) and _truncated(d.value, ttc_v):  # type: ignore[arg-type]
            value = ttc_v
        agrees = isinstance(ttc_v, Decimal) and value == ttc_v
        out.set("amount_due", value, 0.95 if agrees else _confidence(d.score, 0.8), d)


def _truncated(read: Decimal, full: Decimal) -> bool:
    """Whether ``read`` is ``full`` without its leading digits (at least 2 kept before the
    decimals, so a stray match stays unlikely)."""
    short, long = f"{read:.2f}", f"{full:.2f}"
    return full > read >= 10 and long.endswith(short)


def _complete_rows(rows: list[_Row], ht: object, vat: object) -> None:
    """Add the one row the OCR lost, when the totals leave exactly one rate that fits."""
    if not isinstance(ht, Decimal) or not isinstance(vat, Decimal):
        return
    if any(r.base is None for r in rows):
        return
    base = ht - sum((r.base for r in rows if r.base is not None), Decimal(0))
    amount = vat - sum((r.amount for r in rows), Decimal(0))
    if base <= 0 or amount <= 0:
        return
    used = {r.rate for r in rows}
    fits = [rate for rate in VAT_RATES if rate not in used and _vat_of(base, rate) == amount]
    if len(fits) == 1:
        anchor = rows[-1].line
        rows.append(_Row(fits[0], base, amount, anchor, 0, 0, False))
        rows.sort(key=lambda r: -r.rate)


def _pick_breakdown(doc: _Document, rows: list[_Row], out: _Builder) -> None:
    ht, vat = out.values.get("total_ht"), out.values.get("total_vat")
    entries: list[VatBreakdown] = []
    where: list[tuple[_Line, int, int]] = []
    confidence = 0.9
    if rows:
        missing = [r for r in rows if r.base is None]
        if missing:
            hit_lines = {id(r.line) for r in rows}
            items, _ = _item_bases(doc, hit_lines)  # each base is checked against its tax
            for r in missing:
                if r.rate not in items:
                    continue
                expected = _vat_of(items[r.rate], r.rate)
                if abs(expected - r.amount) <= CENT or _truncated(r.amount, expected):
                    r.base, r.amount = items[r.rate], expected
            still = [r for r in rows if r.base is None]
            if len(still) == 1 and isinstance(ht, Decimal):
                known = sum((r.base for r in rows if r.base is not None), Decimal(0))
                candidate = ht - known
                if abs(_vat_of(candidate, still[0].rate) - still[0].amount) <= CENT:
                    still[0].base = candidate
            confidence = 0.75
        _complete_rows(rows, ht, vat)
        for r in rows:
            if r.base is None:
                # Unknown base: approximated from the tax and marked by a low confidence.
                r.base = _money(r.amount * 100 / r.rate)
                confidence = 0.4
            entries.append(VatBreakdown(category="S", rate=r.rate, base=r.base, amount=r.amount))
            if r.end > r.start:
                where.append((r.line, r.start, r.end))
            else:
                confidence = min(confidence, 0.6)  # a row inferred, not read
    elif isinstance(ht, Decimal) and isinstance(vat, Decimal):
        # No breakdown printed: a single rate that explains the totals is the breakdown.
        fits = [r for r in VAT_RATES if abs(_vat_of(ht, r) - vat) <= CENT]
        if len(fits) == 1:
            entries.append(VatBreakdown(category="S", rate=fits[0], base=ht, amount=vat))
            confidence = 0.7
    if not entries:
        return
    bases = sum((e.base for e in entries), Decimal(0))
    taxes = sum((e.amount for e in entries), Decimal(0))
    problems = []
    for e in entries:
        if e.rate is not None and abs(_vat_of(e.base, e.rate) - e.amount) > CENT:
            problems.append(f"{e.rate} % of {e.base} is {_vat_of(e.base, e.rate)}, not {e.amount}")
    if isinstance(ht, Decimal) and bases != ht:
        problems.append(f"VAT bases add up to {bases}, total HT reads {ht}")
    if isinstance(vat, Decimal) and taxes != vat:
        problems.append(f"VAT amounts add up to {taxes}, total VAT reads {vat}")
    if problems:
        out.flag("totals_inconsistent", "; ".join(problems))
        confidence *= 0.5
        out.scale(("total_ht", "total_vat"), 0.7)
    out.values["vat_breakdown"] = tuple(entries)
    box = union([line.box(s, e) for line, s, e in where]) if where else None
    out.provenance["vat_breakdown"] = Provenance(
        source=FieldSource.ocr,
        confidence=round(confidence, 3),
        page=where[0][0].page if where else None,
        bbox=box,
    )


def _pick_ids(doc: _Document, parties: _Parties, own: set[str], out: _Builder) -> None:
    """Seller and buyer identifiers (SIREN, SIRET, VAT) and the bank details."""
    ibans = {id(line): _ibans(line) for line in doc.lines}
    seller: list[_Id] = []
    buyer: list[_Id] = []
    for line in doc.lines:
        vats = _vat_ids(line)
        taken = [(i.start, i.end) for i in vats] + [(s, e) for _, s, e, _ in ibans[id(line)]]
        for found in (*vats, *_siren_ids(line, taken)):
            in_buyer_block = id(line) in parties.buyer_lines
            if (found.siren and found.siren in own) or in_buyer_block:
                buyer.append(found)
            else:
                seller.append(found)
    # The seller: the SIREN with the most (and best labelled) evidence.
    scores: dict[str, float] = {}
    for i in seller:
        key = i.siren or i.value
        weight = 1.0 if i.label else 0.3
        if i.kind in ("siret", "vat"):
            weight += 0.3
        if i.repaired:
            weight -= 0.2
        if re.search(r"capital|rcs", i.line.fold):
            weight += 0.3
        scores[key] = scores.get(key, 0.0) + weight
    if scores:
        key = max(scores, key=lambda k: scores[k])
        group = [i for i in seller if (i.siren or i.value) == key]
        kinds = {i.kind for i in group}
        agreeing = len(kinds) > 1 or len(group) > 1
        base = 0.93 if agreeing else (0.8 if any(i.label for i in group) else 0.5)
        siret = next((i for i in group if i.kind == "siret"), None)
        vat = next((i for i in group if i.kind == "vat"), None)
        siren = next((i for i in group if i.kind == "siren"), None) or siret or vat
        if siren is not None and siren.siren:
            out.set(
                "seller_siren",
                siren.siren,
                base - (0.1 if siren.repaired else 0),
                (siren.line, siren.start, siren.end),
            )
        if siret is not None:
            out.set(
                "seller_siret",
                siret.value,
                base - (0.1 if siret.repaired else 0),
                (siret.line, siret.start, siret.end),
            )
        if vat is not None:
            out.set(
                "seller_vat",
                vat.value,
                base - (0.1 if vat.repaired else 0),
                (vat.line, vat.start, vat.end),
            )
        else:
            foreign = next((i for i in seller if i.kind == "vat" and not i.siren), None)
            if foreign is not None:
                out.set(
                    "seller_vat", foreign.value, 0.7, (foreign.line, foreign.start, foreign.end)
                )
    if buyer:
        ordered = sorted(buyer, key=lambda i: (i.siren not in own, i.kind != "siren"))
        first = next((i for i in ordered if i.siren), None)
        if first is not None:
            conf = 0.95 if first.siren in own else 0.75
            out.set("buyer_siren", first.siren, conf, (first.line, first.start, first.end))
        vat = next((i for i in ordered if i.kind == "vat"), None)
        if vat is not None:
            out.set(
                "buyer_vat",
                vat.value,
                0.9 if vat.siren in own else 0.7,
                (vat.line, vat.start, vat.end),
            )
    # Bank details.
    found_ibans = [
        (value, line, s, e, repaired)
        for line in doc.lines
        if id(line) not in parties.buyer_lines
        for value, s, e, repaired in ibans[id(line)]
    ]
    if found_ibans:
        labelled = [f for f in found_ibans if re.search(r"\biban\b", f[1].fold[: f[2] + 1])]
        value, line, s, e, repaired = (labelled or found_ibans)[0]
        out.set("iban", value, 0.9 if repaired else 0.97, (line, s, e))
    bic = _pick_bic(doc, parties)
    if bic is not None:
        value, line, s, e = bic
        iban = out.values.get("iban")
        agrees = isinstance(iban, str) and iban[:2] == value[4:6]
        out.set("bic", value, 0.95 if agrees else 0.7, (line, s, e))


def _pick_bic(doc: _Document, parties: _Parties) -> tuple[str, _Line, int, int] | None:
    for hit in doc.all_hits("bic"):
        if id(hit.line) in parties.buyer_lines:
            continue
        for line, start, end, _ in doc.regions(hit):
            upper = line.text.upper()
            for m in _BIC_RE.finditer(upper, start, end):
                reading = _bic_reading(m.group(1))
                if reading:
                    return reading, line, m.start(), m.end()
            # "AGRIFRP P839": a BIC the OCR cut in two.
            for m in _SPLIT_BIC.finditer(upper, start, end):
                joined = m.group(1) + m.group(2)
                if len(joined) in (8, 11) and (reading := _bic_reading(joined)):
                    return reading, line, m.start(), m.end()
    return None


_SPLIT_BIC = re.compile(r"(?<![A-Z0-9])([A-Z0-9]{3,9}) ([A-Z0-9]{1,8})(?![A-Z0-9])")


def _pick_type_code(doc: _Document, out: _Builder) -> None:
    """381 when the title or the number's label says credit note ("Avoir"), else 380."""
    credit = re.compile(
        r"(?<![a-z'])(?:avoir|credit\s*note|note\s*de\s*credit|facture\s*d'?\s?avoir)\b"
    )
    label = re.compile(rf"avoir\s*{_N}|{_N}\s*d\s?'?\s?avoir\b|credit\s*note\s*{_N}")
    for line in doc.lines:
        if line.page != doc.lines[0].page or line.top > 0.45:
            continue
        for m in credit.finditer(line.fold):
            # A title starts its cell; "vous pouvez avoir ..." does not count.
            cell_start = line.cell_at(m.start())[0]
            title = line.fold[cell_start : m.start()].strip() == ""
            if title or label.search(line.fold):
                out.set("type_code", "381", 0.9, (line, m.start(), m.end()))
                return
    out.set("type_code", "380", 0.7, None)


def _pick_currency(doc: _Document, out: _Builder) -> None:
    votes: dict[str, int] = {}
    for line in doc.lines:
        for a in doc.amounts[id(line)]:
            if a.currency:
                votes[a.currency] = votes.get(a.currency, 0) + 1
    if votes:
        code = max(votes, key=lambda k: votes[k])
        share = votes[code] / sum(votes.values())
        out.set("currency", code, 0.6 + 0.35 * share, None)


def _apply_directory(directory: SupplierDirectory, out: _Builder) -> None:
    values = out.values
    siren = values.get("seller_siren")
    vat = values.get("seller_vat")
    iban = values.get("iban")
    name = values.get("seller_name")
    supplier = None
    confirmed_by = None
    for key, value in (("siren", siren), ("vat", vat), ("iban", iban)):
        if isinstance(value, str) and (supplier := directory.find(**{key: value})):
            confirmed_by = key
            break
    if supplier is None and isinstance(name, str):
        supplier = directory.find(name=name)
    if supplier is None:
        out.flag(
            "unknown_supplier", "no known supplier matches the seller's SIREN, VAT, IBAN or name"
        )
        return
    if confirmed_by:
        known_siren = supplier.siren or (
            _siren_of_vat(_compact(supplier.vat)) if supplier.vat else None
        )
        if isinstance(siren, str) and known_siren and siren != known_siren:
            out.flag(
                "supplier_mismatch",
                f"the {confirmed_by} belongs to {supplier.name} (SIREN {known_siren}), "
                f"but the invoice shows SIREN {siren}",
            )
        else:
            printed = out.provenance.get("seller_name")
            names = {normalise_name(n) for n in (supplier.name, *supplier.aliases)}
            if printed is not None and isinstance(name, str) and normalise_name(name) in names:
                out.values["seller_name"] = supplier.name
                out.provenance["seller_name"] = printed.model_copy(update={"confidence": 0.99})
            else:
                out.set("seller_name", supplier.name, 0.95, None)
            if known_siren:
                if siren is None:
                    out.set("seller_siren", known_siren, 0.9, None)
                else:
                    out.raise_to("seller_siren", 0.99)
            if supplier.vat:
                if vat is None:
                    out.set("seller_vat", _compact(supplier.vat), 0.9, None)
                elif vat == _compact(supplier.vat):
                    out.raise_to("seller_vat", 0.99)
    known_ibans = {_compact(i) for i in supplier.ibans}
    if isinstance(iban, str) and known_ibans:
        if iban in known_ibans:
            out.raise_to("iban", 0.99)
        else:
            out.flag(
                "iban_changed",
                f"IBAN {iban} is not one of the accounts known for {supplier.name}: "
                "check the change of bank details with the supplier before paying",
            )


def extract(
    pages: Sequence[PageText],
    *,
    directory: SupplierDirectory | None = None,
    own_sirens: Collection[str] = (),
) -> Extraction:
    """Read the invoice fields from ``pages``.

    ``own_sirens`` are the SIRENs of the archive's own company (or group): one of them on
    the page names the buyer, never the seller. With a ``directory``, the seller is looked
    up by SIREN, VAT number or IBAN to fill and confirm its fields.
    """
    doc = _Document(pages)
    out = _Builder()
    own = {_compact(s)[:9] for s in own_sirens}
    if not doc.lines:
        return Extraction(InvoiceData(), (("no_text", "the document has no text layer"),))

    for name in ("invoice_number", "po_reference"):
        cands = _best(_reference_candidates(doc, name))
        if name == "po_reference" and "invoice_number" in out.values:
            cands = [c for c in cands if c.value != out.values["invoice_number"]]
        if cands:
            out.set(name, cands[0].value, _confidence(cands[0].score), cands[0])
    issue = _best(_date_candidates(doc, "issue_date"))
    due = _best(_date_candidates(doc, "due_date"))
    if due:
        out.set("due_date", due[0].value, _confidence(due[0].score), due[0])
    issue = [c for c in issue if not due or (c.line, c.start) != (due[0].line, due[0].start)]
    if not issue and (fallback := _unlabelled_issue_date(doc, due[0] if due else None)):
        issue = [fallback]
    if issue:
        out.set("issue_date", issue[0].value, _confidence(issue[0].score), issue[0])
    issue_v, due_v = out.values.get("issue_date"), out.values.get("due_date")
    if isinstance(issue_v, date) and isinstance(due_v, date) and due_v < issue_v:
        out.scale(("issue_date", "due_date"), 0.6)

    rows = _breakdown_rows(doc)
    _pick_totals(doc, rows, out)
    _pick_breakdown(doc, rows, out)
    _pick_currency(doc, out)
    _pick_type_code(doc, out)

    parties = _buyer_block(doc)
    _pick_ids(doc, parties, own, out)
    buyer_name = parties.buyer_name.value if parties.buyer_name else None
    if parties.buyer_name is not None:
        name = " ".join(str(parties.buyer_name.value).split())
        out.set("buyer_name", name, parties.buyer_name.score, parties.buyer_name)
    names = _seller_name_candidates(
        doc, parties, buyer_name if isinstance(buyer_name, str) else None
    )
    if names:
        agreeing = len(names) > 1 and len({normalise_name(str(c.value)) for c in names}) == 1
        # The legal mentions name the company; when the letterhead agrees, its larger print
        # is the better reading of the same name.
        chosen = max(names, key=lambda c: (c.label == "header") if agreeing else c.score)
        confidence = chosen.score + (0.25 if agreeing else 0)
        out.set("seller_name", " ".join(str(chosen.value).split()), confidence, chosen)

    if directory is not None:
        _apply_directory(directory, out)

    invoice = InvoiceData(**out.values, provenance=out.provenance)  # type: ignore[arg-type]
    return Extraction(invoice=invoice, flags=tuple(out.flags))
