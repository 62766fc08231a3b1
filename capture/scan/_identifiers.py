"""Company and bank identifiers on a line: SIREN, SIRET, VAT numbers, IBAN and BIC.

Private to :mod:`capture.scan.extract`. An identifier is kept only when its checksum holds;
look-alike letters (O for 0, I for 1...) are repaired only where the format wants a digit
and the checksum then confirms the reading, and the repair is recorded. It does not decide
whose identifier it is (seller or buyer): that is :mod:`capture.scan._parties`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.eu import vat as eu_vat
from stdnum.fr import tva as fr_tva

from capture.scan._lines import _DIGIT_LOOKALIKES, _Line


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

    @property
    def where(self) -> tuple[_Line, int, int]:
        """The line and the span on it where the identifier was read."""
        return self.line, self.start, self.end


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
