"""Amounts, VAT rates and dates read from a line, and the money arithmetic of the totals.

Private to :mod:`capture.scan.extract`. It parses French and English number formats
("1 234,56", "1.234,56", "1,234.56") with their currency, the French VAT rates (mending a
rate whose decimal comma the OCR lost), dates with digits or month names (and, on demand,
dates whose separators the OCR damaged), rounds tax to the cent, and tells an amount read
without its leading digits. It knows no labels: which amount is which total is decided by
the field readers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from capture.scan._lines import _Line

CENT = Decimal("0.01")
#: French VAT rates (percent) a breakdown may use.
VAT_RATES = (Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("2.1"))


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


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _vat_of(base: Decimal, rate: Decimal) -> Decimal:
    return _money(base * rate / 100)


def _truncated(read: Decimal, full: Decimal) -> bool:
    """Whether ``read`` is ``full`` without its leading digits (at least 2 kept before the
    decimals, so a stray match stays unlikely)."""
    short, long = f"{read:.2f}", f"{full:.2f}"
    return full > read >= 10 and long.endswith(short)
