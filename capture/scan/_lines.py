"""A text line of an invoice page, with its geometry and the text views the readers match on.

Private to :mod:`capture.scan.extract`. ``_Line`` joins the OCR words of one line into text
(a wide gap between words becomes a tab, so table cells are kept), with a folded view (no
case, no accents) for labels and a numeric view in which look-alike letters inside a number
are read as digits; every view keeps the offsets of the text, so a match maps back to the
boxes of its words. It parses no values and knows no labels.
"""

from __future__ import annotations

import statistics
import unicodedata
from dataclasses import dataclass
from functools import cached_property

from capture.scan.text import BBox, Line, PageText, Word, union


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
