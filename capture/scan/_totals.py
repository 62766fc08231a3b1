"""Total HT, VAT and TTC, and the amount due: the readings that add up.

Private to :mod:`capture.scan.extract`. Candidates come from the labels, from the VAT
breakdown's sums, from the sum of the invoice lines and from unlabelled amounts; the
combination of the three totals with the most independent confirmations wins, a missing
total is derived from the two others, and totals that do not add up are flagged
``totals_inconsistent``. A confidence says how sure each total is; nothing is rejected.
"""

from __future__ import annotations

import re
from decimal import Decimal
from itertools import product

from capture.scan._breakdown import _item_bases, _Row
from capture.scan._document import _best, _Builder, _Candidate, _confidence, _Document
from capture.scan._values import CENT, VAT_RATES, _rates, _truncated, _vat_of


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
