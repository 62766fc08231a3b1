"""The seller and the buyer: their names, identifiers and bank details.

Private to :mod:`capture.scan.extract`. The buyer is the block under a "Facturé à" or
"Bill to" label; the seller's name comes from the legal mentions ("X SAS au capital de
...") or from the letterhead's largest print; the seller's identifiers are those of the
SIREN with the most evidence (a SIREN of the archive's own company names the buyer); the
IBAN and BIC are read outside the buyer's block. :func:`normalise_name` is how company
names are compared. It does not consult the supplier directory: :mod:`capture.scan.extract`
does.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from dataclasses import dataclass, field

from capture.scan._document import _Builder, _Candidate, _Document
from capture.scan._identifiers import _BIC_RE, _bic_reading, _ibans, _Id, _siren_ids, _vat_ids
from capture.scan._lines import _Line

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
        # A checksum repair costs the field some confidence.
        if siren is not None and siren.siren:
            out.set("seller_siren", siren.siren, base - 0.1 * siren.repaired, siren.where)
        if siret is not None:
            out.set("seller_siret", siret.value, base - 0.1 * siret.repaired, siret.where)
        if vat is not None:
            out.set("seller_vat", vat.value, base - 0.1 * vat.repaired, vat.where)
        else:
            foreign = next((i for i in seller if i.kind == "vat" and not i.siren), None)
            if foreign is not None:
                out.set("seller_vat", foreign.value, 0.7, foreign.where)
    if buyer:
        ordered = sorted(buyer, key=lambda i: (i.siren not in own, i.kind != "siren"))
        first = next((i for i in ordered if i.siren), None)
        if first is not None:
            conf = 0.95 if first.siren in own else 0.75
            out.set("buyer_siren", first.siren, conf, first.where)
        vat = next((i for i in ordered if i.kind == "vat"), None)
        if vat is not None:
            out.set("buyer_vat", vat.value, 0.9 if vat.siren in own else 0.7, vat.where)
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
