"""The simple fields: invoice and order references, issue and due dates, currency, type code.

Private to :mod:`capture.scan.extract`. References and dates are read where their labels
point (a reference's digit groups have O and I read as 0 and 1); an issue date with no
label left is the earliest date at the top of the first page. The currency is the one most
amounts carry, and the type code says whether the document is a credit note.
"""

from __future__ import annotations

import re

from capture.scan._document import _Builder, _Candidate, _Document
from capture.scan._labels import _N
from capture.scan._lines import _fold_char
from capture.scan._values import _DAMAGED_DATES, _dates


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
