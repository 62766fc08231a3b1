"""OCRmyPDF as an external program: which versions are installed, and one run in a child process.

Private plumbing of :mod:`capture.scan.convert`. OCRmyPDF keeps process-global state (one
``ocr()`` at a time per process), so it always runs as ``python -m ocrmypdf`` in its own
process group, which a timeout kills whole (tesseract and worker processes included).

The flags are chosen so that no image is ever re-encoded (measured with OCRmyPDF 17.13):

- ``--pdfa-backend internal``: pikepdf adds the PDF/A declarations and validates them;
  Ghostscript never rewrites the file (Ghostscript's PDF/A conversion may transcode images
  and re-writes JPEG streams even at ``-O0``; Debian's 10.00 is also known to damage text).
- ``-O0``: no optimizer. At ``-O1`` (the default) it wraps JPEG streams in an extra
  ``/FlateDecode`` (the JPEG bytes are no longer the stream) and re-deflates lossless images.
- ``--output-type auto``: PDF/A-2b when pikepdf's validator approves it, else a regular PDF
  (``pdfa-2`` would fail instead, e.g. for a CMYK scan, since the internal backend never
  converts colours); the caller validates the result itself.
- ``--mode skip``: pages that already have text are not OCRed nor rasterised.
- ``--rasterizer pypdfium``: the page image given to tesseract is rendered by PDFium, so
  Ghostscript is not needed at all. It is used for OCR input only, never for output.
- never ``--deskew``, ``--clean-final``, ``--remove-background``, ``--rotate-pages``,
  ``--force-ocr`` or ``--oversample``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pikepdf
import PIL

from capture.scan import _child
from capture.scan._child import RunFailed

_LANGUAGES = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\+[A-Za-z][A-Za-z0-9_]*)*$")


def check_languages(languages: str) -> None:
    if not _LANGUAGES.match(languages):
        raise ValueError(f"invalid OCR languages {languages!r}: expected e.g. 'fra+eng'")


def command(
    input_pdf: Path,
    output_pdf: Path,
    *,
    sidecar: Path | None,
    languages: str,
    jobs: int,
    ocr: bool,
    tesseract_timeout: float,
) -> list[str]:
    """The command line; see the module docstring for why each flag is there."""
    check_languages(languages)
    args = [
        sys.executable,
        "-m",
        "ocrmypdf",
        "--output-type",
        "auto",
        "--pdfa-backend",
        "internal",
        "--optimize",
        "0",
        "--mode",
        "skip",
        "--rasterizer",
        "pypdfium",
        "--jobs",
        str(jobs),
    ]
    if ocr:
        args += ["--language", languages, "--tesseract-timeout", f"{tesseract_timeout:g}"]
        if sidecar is not None:
            args += ["--sidecar", str(sidecar)]
    else:
        args += ["--ocr-engine", "none"]
    return [*args, str(input_pdf), str(output_pdf)]


def run(args: list[str], *, workdir: Path, timeout: float) -> None:
    """Run OCRmyPDF in a new process group; raise :class:`RunFailed` on error or timeout."""
    env = dict(os.environ)
    # One single-threaded tesseract per job: OpenMP threads on shared cores make it slower.
    env["OMP_THREAD_LIMIT"] = "1"
    # Its temporary files live in our work folder, so they go when the folder goes.
    env["TMPDIR"] = str(workdir)
    try:
        _child.run(args, workdir=workdir, timeout=timeout, env=env)
    except RunFailed as exc:
        if exc.exit_code is not None:
            exc.exit_name = _exit_name(exc.exit_code)
        raise


def _exit_name(code: int) -> str | None:
    try:
        from ocrmypdf.exceptions import ExitCode  # only needed on failure

        return ExitCode(code).name
    except (ImportError, ValueError):
        return None


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    found = {
        "ocrmypdf": _distribution_version("ocrmypdf"),
        "tesseract": _program_version(["tesseract", "--version"]),
        "img2pdf": _distribution_version("img2pdf"),
        "pikepdf": str(pikepdf.__version__),
        "qpdf": str(pikepdf.__libqpdf_version__),
        "pypdfium2": _distribution_version("pypdfium2"),
        "fpdf2": _distribution_version("fpdf2"),
        "pillow": str(PIL.__version__),
    }
    return tuple(found.items())


def versions() -> dict[str, str]:
    """Versions of every tool a conversion may use, read once per process."""
    return dict(_versions())


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _program_version(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    words = (done.stdout or done.stderr).split()
    # "tesseract 5.3.0\n leptonica-1.82.0 ..." -> "5.3.0"
    return words[1] if len(words) > 1 else "unknown"
