"""The words of a PDF's text layer, with their boxes, grouped into lines.

This room reads text and geometry only: it does not OCR (the text layer comes from the
conversion step, or from the issuer for a born-digital PDF) and it does not interpret what
the words mean (that is :mod:`capture.scan.extract`).

Coordinates are PDF points with the origin at the bottom left of the page, as the PDF
itself has them: ``(x0, y0, x1, y1)`` with ``x0 <= x1`` and ``y0 <= y1``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import cached_property

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

BBox = tuple[float, float, float, float]


def union(boxes: list[BBox] | tuple[BBox, ...]) -> BBox:
    """The smallest box holding every box of ``boxes`` (which must not be empty)."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@dataclass(frozen=True)
class Word:
    """A run of non-blank characters."""

    text: str
    #: (x0, y0, x1, y1) in PDF points, origin bottom left.
    bbox: BBox

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2)


@dataclass(frozen=True)
class Line:
    """Words read as one text line, left to right."""

    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def bbox(self) -> BBox:
        return union([w.bbox for w in self.words])


@dataclass(frozen=True)
class PageText:
    """The words of one page."""

    #: 1-based page number.
    page: int
    width: float
    height: float
    #: In the order of the text layer (for OCR output, the reading order of the engine).
    words: tuple[Word, ...]

    @cached_property
    def skew(self) -> float:
        """The slope (dy/dx) of the text baselines: a scan fed slightly askew tilts them.

        Estimated from runs of words that follow each other in the text layer on one line;
        the median over runs, weighted by their length, ignores the odd misread run.
        """
        slopes: list[tuple[float, float]] = []
        run: list[Word] = []
        for word in (*self.words, None):
            if word is not None and run and _continues(run[-1], word):
                run.append(word)
                continue
            if len(run) >= 2:
                span = run[-1].center[0] - run[0].center[0]
                if span > 3 * statistics.median(w.height for w in run):
                    slopes.append((_fit_slope(run), span))
            run = [word] if word is not None else []
        if not slopes:
            return 0.0
        slopes.sort()
        half = sum(weight for _, weight in slopes) / 2
        acc = 0.0
        for slope, weight in slopes:
            acc += weight
            if acc >= half:
                return max(-0.05, min(0.05, slope))  # beyond ~3°, distrust the estimate
        return 0.0  # pragma: no cover - the loop always reaches half

    @cached_property
    def _lines(self) -> tuple[Line, ...]:
        if not self.words:
            return ()
        theta = math.atan(self.skew)
        cos, sin = math.cos(theta), math.sin(theta)
        floor = 0.4 * statistics.median(w.height for w in self.words)

        def deskewed(word: Word) -> tuple[float, float, float, float]:
            """(u0, u1, v, half-height) along and across the baselines."""
            cx, cy = word.center
            v = -cx * sin + cy * cos
            half_w = (word.bbox[2] - word.bbox[0]) / 2
            u = cx * cos + cy * sin
            return (u - half_w, u + half_w, v, max(word.height, floor) / 2)

        placed = sorted(((deskewed(w), w) for w in self.words), key=lambda p: -p[0][2])
        lines: list[list[tuple[tuple[float, float, float, float], Word]]] = []
        for geometry, word in placed:
            u0, u1, v, half = geometry
            best: int | None = None
            best_distance = math.inf
            # Lines are opened top to bottom: only the last few can still take a word.
            for index in range(max(0, len(lines) - 6), len(lines)):
                members = lines[index]
                line_v = statistics.median(g[2] for g, _ in members)
                line_half = max(g[3] for g, _ in members)
                distance = abs(v - line_v)
                if distance > 0.6 * max(line_half, half) or distance >= best_distance:
                    continue
                if any(g[0] < u1 - 0.5 and u0 + 0.5 < g[1] for g, _ in members):
                    continue  # two words of one line never overlap
                best, best_distance = index, distance
            if best is None:
                lines.append([(geometry, word)])
            else:
                lines[best].append((geometry, word))
        ordered = sorted(lines, key=lambda m: -statistics.median(g[2] for g, _ in m))
        return tuple(
            Line(tuple(w for _, w in sorted(members, key=lambda p: p[0][0]))) for members in ordered
        )

    def lines(self) -> tuple[Line, ...]:
        """The words grouped into text lines (top to bottom), each read left to right.

        Words belong to one line when their centres lie on one baseline, once the page's
        skew is taken out; words of one line never overlap, so close lines stay apart.
        """
        return self._lines

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines())


def _continues(previous: Word, word: Word) -> bool:
    """Whether ``word`` follows ``previous`` on the same line, just to its right."""
    height = max(previous.height, word.height, 1e-6)
    gap = word.bbox[0] - previous.bbox[2]
    dy = abs(word.center[1] - previous.center[1])
    similar = 0.6 < word.height / max(previous.height, 1e-6) < 1.7
    return -0.5 < gap < 3 * height and dy < 0.5 * height and similar


def _fit_slope(run: list[Word]) -> float:
    xs = [w.center[0] for w in run]
    ys = [(w.bbox[1] + w.bbox[3]) / 2 for w in run]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def _page_words(textpage: pdfium.PdfTextPage) -> tuple[Word, ...]:
    words: list[Word] = []
    chars: list[str] = []
    boxes: list[BBox] = []

    def flush() -> None:
        if chars:
            words.append(Word("".join(chars), union(boxes)))
            chars.clear()
            boxes.clear()

    for index in range(textpage.count_chars()):
        code = pdfium_c.FPDFText_GetUnicode(textpage.raw, index)
        char = chr(code) if 0 < code < 0x110000 else ""
        if not char or char.isspace() or char == "\ufffe":
            flush()
            continue
        box: BBox = textpage.get_charbox(index)
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            box = textpage.get_charbox(index, loose=True)
        if boxes:
            last = boxes[-1]
            height = max(last[3] - last[1], box[3] - box[1])
            backwards = box[0] < last[0] - 0.5 * height
            far = box[0] - last[2] > 0.9 * height
            other_line = abs((box[1] + box[3]) / 2 - (last[1] + last[3]) / 2) > 0.8 * height
            if backwards or far or other_line:
                flush()  # a new word without a space character in between
        chars.append(char)
        boxes.append(box)
    flush()
    return tuple(words)


def words_from_pdf(pdf: bytes) -> tuple[PageText, ...]:
    """The words of every page of ``pdf``'s text layer (visible or invisible text alike)."""
    document = pdfium.PdfDocument(pdf)
    try:
        pages = []
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            try:
                width, height = page.get_size()
                pages.append(PageText(index + 1, width, height, _page_words(textpage)))
            finally:
                textpage.close()
                page.close()
        return tuple(pages)
    finally:
        document.close()
