"""Tesseract as an external program: is it installed, and one OCR run of one page image.

Private plumbing of :mod:`capture.scan.convert`'s fast path for image scans. One run reads
one image file and writes, in that single pass, the hOCR (words, boxes, baselines) that
:mod:`._textlayer` draws as the invisible text layer, and the plain text. Tesseract runs
single-threaded (``OMP_THREAD_LIMIT=1``): on shared cores, OpenMP threads make it several
times slower. A timeout kills its process group.

The image given is OCR input only; it never becomes part of the archived PDF.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from capture.scan import _child
from capture.scan._child import RunFailed

__all__ = ["RunFailed", "TextLayer", "available", "ocr"]


@dataclass(frozen=True)
class TextLayer:
    """What tesseract wrote for one page image."""

    hocr: Path
    """The page's hOCR."""
    text: str
    """The plain text of the page (its trailing page separator removed)."""


@functools.cache
def _program() -> str | None:
    return shutil.which("tesseract")


def available() -> bool:
    """Whether a ``tesseract`` program is on the PATH (looked up once per process)."""
    return _program() is not None


def ocr(image: Path, outbase: Path, *, languages: str, timeout: float) -> TextLayer:
    """OCR ``image``; writes ``outbase.hocr`` and ``outbase.txt``.

    Raises:
        RunFailed: tesseract failed (``exit_code``, ``stderr_tail``) or ran out of time.
    """
    program = _program()
    if program is None:
        raise RunFailed(None, None, "tesseract is not installed")
    args = [
        program,
        str(image),
        str(outbase),
        "-l",
        languages,
        "hocr",
        "txt",
    ]
    env = dict(os.environ)
    env["OMP_THREAD_LIMIT"] = "1"
    env["TMPDIR"] = str(outbase.parent)
    _child.run(args, workdir=outbase.parent, timeout=timeout, env=env)
    hocr, txt = (outbase.parent / (outbase.name + suffix) for suffix in (".hocr", ".txt"))
    if not hocr.exists() or not txt.exists():
        raise RunFailed(0, None, f"tesseract wrote no {'hOCR' if not hocr.exists() else 'text'}")
    text = txt.read_text("utf-8")
    # The text renderer ends each page with the page separator (a form feed).
    if text.endswith("\f"):
        text = text[:-1]
    return TextLayer(hocr=hocr, text=text)
