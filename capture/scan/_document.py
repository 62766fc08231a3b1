"""The invoice being read, and the extraction being written.

Private to :mod:`capture.scan.extract`. ``_Document`` holds the lines of all pages with
their label hits, dates and amounts, and says where a label's value may be: on the label's
line to its right, or in the cells just below it. ``_Candidate`` is a value found there,
with a score; ``_best`` merges candidates of the same value. ``_Builder`` collects the
chosen values with their provenance (page, box, confidence) and the flags. It chooses no
value itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from archive.invoice import FieldSource, Provenance
from capture.scan._labels import _Hit, _hits
from capture.scan._lines import _Line
from capture.scan._values import _amounts, _dates
from capture.scan.text import BBox, PageText


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
