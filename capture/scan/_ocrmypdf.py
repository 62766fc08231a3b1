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

import contextlib
import functools
import importlib.metadata
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pikepdf
import PIL

_LANGUAGES = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\+[A-Za-z][A-Za-z0-9_]*)*$")
_STDERR_TAIL = 4000


class RunFailed(Exception):
    """OCRmyPDF exited with an error (``exit_code``) or was killed (``timed_out``)."""

    def __init__(
        self,
        exit_code: int | None,
        exit_name: str | None,
        stderr_tail: str,
        *,
        timed_out: bool = False,
    ) -> None:
        super().__init__(exit_code, exit_name)
        self.exit_code = exit_code
        self.exit_name = exit_name
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out


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
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=env,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        _, stderr = process.communicate()
        raise RunFailed(None, None, _tail(stderr), timed_out=True) from None
    finally:
        if process.poll() is None:  # interrupted while waiting
            _kill_group(process)
            process.wait()
    if process.returncode != 0:
        raise RunFailed(process.returncode, _exit_name(process.returncode), _tail(stderr))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(stderr: bytes) -> str:
    return stderr.decode("utf-8", "replace")[-_STDERR_TAIL:]


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
