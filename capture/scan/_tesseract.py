"""Tesseract as an external program: is it installed, and one OCR run of one page image.

Private plumbing of :mod:`capture.scan.convert`'s fast path for image scans. One run reads
one image file and writes, in that single pass, the hOCR (words, boxes, baselines) that
:mod:`._textlayer` draws as the invisible text layer, and the plain text. Tesseract runs
single-threaded (``OMP_THREAD_LIMIT=1``): on shared cores, OpenMP threads make it several
times slower. A timeout kills its process group.

At most one tesseract per core runs from this process at a time (the rest wait for a
slot, within their timeout): more jobs in flight than cores keep the cores busy with the
other jobs' work (conversion, proof, seal), but more tesseracts than cores only make each
of them slower, as they evict each other's models from the caches.

The image given is OCR input only; it never becomes part of the archived PDF.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from capture.scan import _child
from capture.scan._child import RunFailed

__all__ = ["RunFailed", "TextLayer", "available", "ocr"]


def _cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_SLOTS = threading.BoundedSemaphore(_cores())


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
    started = time.monotonic()
    if not _SLOTS.acquire(timeout=max(timeout, 0.0)):
        raise RunFailed(None, None, "no OCR slot became free in time", timed_out=True)
    try:
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise RunFailed(None, None, "no time left once an OCR slot was free", timed_out=True)
        _child.run(args, workdir=outbase.parent, timeout=left, env=env)
    finally:
        _SLOTS.release()
    hocr, txt = (outbase.parent / (outbase.name + suffix) for suffix in (".hocr", ".txt"))
    if not hocr.exists() or not txt.exists():
        raise RunFailed(0, None, f"tesseract wrote no {'hOCR' if not hocr.exists() else 'text'}")
    text = txt.read_text("utf-8")
    # The text renderer ends each page with the page separator (a form feed).
    if text.endswith("\f"):
        text = text[:-1]
    return TextLayer(hocr=hocr, text=text)
