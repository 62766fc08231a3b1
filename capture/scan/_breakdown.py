"""The VAT breakdown: one row per rate (base and tax), read, completed and checked.

Private to :mod:`capture.scan.extract`. A row is read where a French rate stands with
amounts (the base before its tax); a base or a row the OCR lost is recovered from the
invoice lines or from the totals, when the tax confirms it. The rows are then checked (each
tax is its rate of its base, and the rows add up to the totals) and a failure is flagged
``totals_inconsistent``. It does not choose the totals: :mod:`capture.scan._totals` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from itertools import product

from archive.invoice import FieldSource, Provenance, VatBreakdown
from capture.scan._document import _Builder, _Document
from capture.scan._lines import _Line
from capture.scan._values import CENT, VAT_RATES, _money, _rates, _truncated, _vat_of
from capture.scan.text import union


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
