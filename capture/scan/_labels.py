"""The label vocabulary: what names each field on a French or English invoice.

Private to :mod:`capture.scan.extract`. Patterns on the folded line, each with a weight
saying how surely it names the field, for the invoice number, the dates, the order
reference, the totals, the buyer and the bank details; ``_hits`` finds them on a line, a
longer label winning over the ones inside it. It reads no values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from capture.scan._lines import _Line

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
