"""Archival PDF/A of a scan or PDF, with an invisible OCR text layer, and proof it is lossless.

Room: the conversion step of capture. Images are wrapped losslessly by img2pdf (in this
process: it only copies or losslessly re-packs the pixels). For an image scan in a plain
mode, tesseract then reads each page in a child process, its hOCR is drawn as an invisible
text page by OCRmyPDF's own renderer in this process, grafted onto img2pdf's pages, which
pikepdf declares PDF/A-2b (:mod:`._tesseract`, :mod:`._textlayer`, :mod:`._sandwich`).
Anything else, or a result that fails validation, goes through OCRmyPDF in a child process
(see :mod:`._ocrmypdf` for the flags and why). Before anything is returned, every page
image of the result is decoded and compared with the source pixels (ARCHITECTURE
invariant 2, :mod:`capture.scan.proof`); JPEG sources must also keep their exact bytes.
It never alters an image to make a conversion work: it fails loudly, naming the page.

It must not archive, journal or touch a database; the caller stores what it returns.
"""

from __future__ import annotations

import io
import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import img2pdf
import pikepdf
from pikepdf.pdfa import Report, validate_written
from PIL import Image

from capture.errors import (
    ConversionFailed,
    ConversionTimeout,
    LosslessConversionImpossible,
)
from capture.scan import _child, _ocrmypdf, _png, _sandwich, _tesseract, _textlayer
from capture.scan.probe import IMAGE_FORMATS, ScanProbe
from capture.scan.proof import PageProof, compare_pages, ensure_verifiable

__all__ = ["Conversion", "PageProof", "compare_pages", "convert", "tool_versions"]

_SKIPPED_PAGE = re.compile(r"^\s*\[OCR skipped on page\(s\) [0-9, -]+\]\s*$")
_PDFA_FLAVOUR = _sandwich.FLAVOUR
#: Modes the fast path takes: what tesseract reads and img2pdf stores without a soft mask.
_FAST_MODES = frozenset({"1", "L", "RGB", "P"})
_SUFFIXES = {"scan-png": "png", "scan-jpeg": "jpg", "scan-tiff": "tif"}


@dataclass(frozen=True)
class Conversion:
    """The archival PDF and what was checked about it."""

    pdf: bytes
    pages: tuple[PageProof, ...]
    """One proof per page for scans (``scan-*`` formats). Empty for a born-digital PDF:
    there, each page's content stream and every image were checked unchanged instead."""
    text: tuple[str, ...]
    """Tesseract's text per page; ``""`` where OCR did not run (the page already had text,
    or ``ocr=False``)."""
    tools: dict[str, str]
    """Versions of the tools this conversion used."""
    pdfa_valid: bool
    """Whether pikepdf's PDF/A-2b validator approves ``pdf`` (checked here, not assumed)."""
    pdfa_messages: tuple[str, ...]
    """The validator's findings when it does not approve."""
    ocr_languages: str
    """Tesseract languages used (``""`` when ``ocr=False``)."""


def tool_versions() -> dict[str, str]:
    """Versions of every tool a conversion may use (read once per process, then cached)."""
    return _ocrmypdf.versions()


def convert(
    data: bytes,
    probe: ScanProbe,
    *,
    languages: str = "fra+eng",
    timeout: float = 600,
    jobs: int = 1,
    ocr: bool = True,
) -> Conversion:
    """Convert ``data`` (already checked by :func:`capture.scan.probe.probe`) to PDF/A-2b.

    ``languages`` are tesseract's (``fra+eng``); ``timeout`` bounds the OCR (and, on the
    OCRmyPDF path, the whole OCRmyPDF run) in seconds (the pixel proof comes after);
    ``jobs`` is how many pages are OCRed at once, each by a single-threaded tesseract;
    ``ocr=False`` makes the PDF/A only. Whether the result is PDF/A is measured, not
    assumed: see ``Conversion.pdfa_valid``.

    An image scan (PNG, JPEG, TIFF) in a plain mode takes the fast path: tesseract alone
    reads each page, and its text layer is grafted onto img2pdf's pages in this process
    (see :mod:`._sandwich`). When that is not possible or its result is not PDF/A-2b, the
    OCRmyPDF path runs instead; ``tools["ocr_path"]`` says which one made the result, and
    ``tools["fast_path_refused"]`` why an image did not take the fast path.

    Raises:
        LosslessConversionImpossible: the scan cannot be stored, or proven, unaltered.
        PixelMismatch: a converted page does not decode to the source pixels.
        ConversionFailed, ConversionTimeout: tesseract or OCRmyPDF failed or ran out of time.
    """
    _ocrmypdf.check_languages(languages)
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    ensure_verifiable(probe)
    refused: str | None = None
    if probe.format in IMAGE_FORMATS:
        try:
            candidate = _sandwich_conversion(
                data, probe, languages=languages, timeout=timeout, jobs=jobs, ocr=ocr
            )
        except _FastPathRefused as exc:
            refused = exc.reason
        else:
            if candidate.report.passed:
                tools = _tools_used(probe, ocr=ocr, path="sandwich")
                return _finish(data, probe, candidate, tools, languages if ocr else "")
            findings = "; ".join(str(finding) for finding in candidate.report.findings[:3])
            refused = f"its result did not pass PDF/A-2b validation ({findings})"
    candidate = _ocrmypdf_conversion(
        data, probe, languages=languages, timeout=timeout, jobs=jobs, ocr=ocr
    )
    tools = _tools_used(probe, ocr=ocr, path="ocrmypdf")
    if refused is not None:
        tools["fast_path_refused"] = refused
    return _finish(data, probe, candidate, tools, languages if ocr else "")


@dataclass(frozen=True)
class _Candidate:
    """A converted PDF and its OCR text, validated but not yet proven lossless."""

    pdf: bytes
    text: tuple[str, ...]
    report: Report


def _finish(
    data: bytes, probe: ScanProbe, candidate: _Candidate, tools: dict[str, str], languages: str
) -> Conversion:
    proofs = compare_pages(data, probe, candidate.pdf)
    return Conversion(
        pdf=candidate.pdf,
        pages=proofs,
        text=candidate.text,
        tools=tools,
        pdfa_valid=candidate.report.passed,
        pdfa_messages=tuple(str(finding) for finding in candidate.report.findings),
        ocr_languages=languages,
    )


def _validate(pdf: bytes) -> Report:
    return validate_written(io.BytesIO(pdf), _PDFA_FLAVOUR)


# --- The OCRmyPDF path -----------------------------------------------------------------


def _ocrmypdf_conversion(
    data: bytes, probe: ScanProbe, *, languages: str, timeout: float, jobs: int, ocr: bool
) -> _Candidate:
    with tempfile.TemporaryDirectory(prefix="coffre-scan-") as folder:
        work = Path(folder)
        source_pdf, output_pdf, sidecar = work / "in.pdf", work / "out.pdf", work / "text.txt"
        source_pdf.write_bytes(_input_pdf(data, probe))
        args = _ocrmypdf.command(
            source_pdf,
            output_pdf,
            sidecar=sidecar if ocr else None,
            languages=languages,
            jobs=jobs,
            ocr=ocr,
            tesseract_timeout=timeout,
        )
        try:
            _ocrmypdf.run(args, workdir=work, timeout=timeout)
        except _ocrmypdf.RunFailed as exc:
            raise _conversion_error("OCRmyPDF", exc, timeout) from exc
        pdf = output_pdf.read_bytes()
        sidecar_text = None
        if ocr:
            if not sidecar.exists():
                raise ConversionFailed(
                    "OCRmyPDF wrote no OCR text", exit_code=0, exit_name=None, stderr_tail=""
                )
            sidecar_text = sidecar.read_text("utf-8")
    return _Candidate(pdf, _page_texts(sidecar_text, probe.pages), _validate(pdf))


# --- The fast path: tesseract's text layer on img2pdf's pages ---------------------------


class _FastPathRefused(Exception):
    """The fast path cannot convert this scan faithfully; OCRmyPDF's path will."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _sandwich_conversion(
    data: bytes, probe: ScanProbe, *, languages: str, timeout: float, jobs: int, ocr: bool
) -> _Candidate:
    """img2pdf's pages, tesseract's invisible text on each, declared PDF/A-2b by pikepdf.

    Raises _FastPathRefused (before any OCR) for what it does not handle.
    """
    deadline = time.monotonic() + timeout
    _check_fast_path(data, probe, ocr=ocr)
    image_pdf = _wrap_image(data, probe)
    if ocr:
        _check_unrotated(image_pdf)
    with tempfile.TemporaryDirectory(prefix="coffre-scan-") as folder:
        work = Path(folder)
        layers: list[_tesseract.TextLayer | None] = [None] * probe.pages
        if ocr:
            layers = list(_ocr_pages(data, probe, work, languages, timeout, deadline, jobs))
        try:
            text_pdfs = [
                _textlayer.render(layer.hocr, work / f"text-{number:04d}.pdf") if layer else None
                for number, layer in enumerate(layers, 1)
            ]
            pdf = _sandwich.build(image_pdf, text_pdfs)
        except Exception as exc:  # the renderer's errors are its own; OCRmyPDF can still try
            reason = f"{type(exc).__name__}: {exc}"
            raise _FastPathRefused(f"the text layer could not be made ({reason})") from exc
    text = tuple(layer.text if layer else "" for layer in layers)
    return _Candidate(pdf, text, _validate(pdf))


def _check_fast_path(data: bytes, probe: ScanProbe, *, ocr: bool) -> None:
    if ocr and not _tesseract.available():
        raise _FastPathRefused("tesseract is not installed")
    for number, info in enumerate(probe.page_info, 1):
        if info.mode not in _FAST_MODES:
            raise _FastPathRefused(f"page {number} is in colour mode {info.mode}")
    if any(info.mode == "P" for info in probe.page_info):
        # A transparent palette entry becomes a soft mask; leave that to OCRmyPDF.
        with Image.open(io.BytesIO(data), formats=[IMAGE_FORMATS[probe.format]]) as image:
            for index in range(probe.pages):
                image.seek(index)
                if image.mode == "P" and "transparency" in image.info:
                    raise _FastPathRefused(f"page {index + 1} has a transparent palette")


def _check_unrotated(image_pdf: bytes) -> None:
    """img2pdf turns an EXIF orientation into /Rotate; tesseract reads the unrotated pixels."""
    with pikepdf.open(io.BytesIO(image_pdf)) as pdf:
        for number, page in enumerate(pdf.pages, 1):
            if int(page.obj.get("/Rotate", 0)) % 360:
                raise _FastPathRefused(f"page {number} is rotated by its EXIF orientation")


def _ocr_pages(
    data: bytes,
    probe: ScanProbe,
    work: Path,
    languages: str,
    timeout: float,
    deadline: float,
    jobs: int,
) -> list[_tesseract.TextLayer]:
    """One tesseract run per page image, up to ``jobs`` at once, all done by ``deadline``."""
    inputs = list(_ocr_inputs(data, probe, work))

    def one(number: int) -> _tesseract.TextLayer:
        try:
            return _tesseract.ocr(
                inputs[number - 1],
                work / f"ocr-{number:04d}",
                languages=languages,
                timeout=deadline - time.monotonic(),
            )
        except _tesseract.RunFailed as exc:
            raise _conversion_error("tesseract", exc, timeout, page=number) from exc

    if len(inputs) == 1 or jobs == 1:
        return [one(number) for number in range(1, len(inputs) + 1)]
    with ThreadPoolExecutor(max_workers=min(jobs, len(inputs))) as pool:
        return list(pool.map(one, range(1, len(inputs) + 1)))


def _ocr_inputs(data: bytes, probe: ScanProbe, work: Path) -> Iterator[Path]:
    """The source file itself for one page; each frame of a multi-page TIFF as a PNG.

    PNG is lossless, so tesseract reads the very pixels archived; these files are OCR
    input only and go with the work folder.
    """
    if probe.pages == 1:
        path = work / f"source.{_SUFFIXES[probe.format]}"
        path.write_bytes(data)
        yield path
        return
    with Image.open(io.BytesIO(data), formats=[IMAGE_FORMATS[probe.format]]) as image:
        for index, info in enumerate(probe.page_info):
            image.seek(index)
            path = work / f"frame-{index + 1:04d}.png"
            options = {"dpi": info.dpi} if info.dpi else {}
            image.save(path, format="PNG", compress_level=1, **options)
            yield path


# --- Input -------------------------------------------------------------------------------


def _input_pdf(data: bytes, probe: ScanProbe) -> bytes:
    if probe.format in IMAGE_FORMATS:
        return _wrap_image(data, probe)
    # A PDF goes as it is; permissions-only encryption (flag "encrypted") is dropped by
    # OCRmyPDF, as PDF/A requires (a test holds this).
    return data


def _wrap_image(data: bytes, probe: ScanProbe) -> bytes:
    """img2pdf embeds JPEG bytes as they are and PNG/TIFF pixels losslessly."""
    resolutions = {info.dpi for info in probe.page_info}
    layout = None
    only = next(iter(resolutions))
    if len(resolutions) == 1 and only is not None:
        # The resolution the probe read (JFIF, EXIF, pHYs, TIFF tags) decides the page
        # size, so that the check below compares like with like.
        layout = img2pdf.get_fixed_dpi_layout_fun(only)
    options: dict[str, object] = {"layout_fun": layout} if layout else {}
    if probe.format == "scan-png":
        if not _png.may_carry_exif(data):
            # img2pdf looks for an EXIF orientation, and Pillow decodes a whole PNG to
            # find one; with no chunk that could hold EXIF, the answer is known.
            options["rotation"] = img2pdf.Rotation.none
        data = _png.one_idat(data)
    try:
        pdf = img2pdf.convert(data, **options)
    except Exception as exc:  # img2pdf refuses what it cannot embed without altering it
        reason = f"img2pdf refused the image: {type(exc).__name__}: {exc}"
        raise LosslessConversionImpossible(
            f"the scan cannot be wrapped in a PDF losslessly ({reason})", page=None, reason=reason
        ) from exc
    if not pdf:
        raise LosslessConversionImpossible(
            "img2pdf produced nothing", page=None, reason="img2pdf produced nothing"
        )
    return bytes(pdf)


def _conversion_error(
    tool: str, exc: _child.RunFailed, timeout: float, *, page: int | None = None
) -> ConversionFailed:
    where = f" on page {page}" if page is not None else ""
    if exc.timed_out:
        return ConversionTimeout(
            f"{tool} did not finish within {timeout:g} s{where} and was stopped",
            exit_code=None,
            exit_name=None,
            stderr_tail=exc.stderr_tail,
            timeout=timeout,
        )
    last = exc.stderr_tail.strip().splitlines()[-1:] or ["no message"]
    name = f", {exc.exit_name}" if exc.exit_name else ""
    return ConversionFailed(
        f"{tool} failed{where} (exit {exc.exit_code}{name}): {last[0]}",
        exit_code=exc.exit_code,
        exit_name=exc.exit_name,
        stderr_tail=exc.stderr_tail,
    )


# --- Text and tools ------------------------------------------------------------------------


def _page_texts(sidecar: str | None, pages: int) -> tuple[str, ...]:
    """Split OCRmyPDF's sidecar (pages separated by form feeds) into one text per page."""
    if sidecar is None:
        return ("",) * pages
    parts = sidecar.split("\f")
    if len(parts) == pages + 1 and not parts[-1].strip():
        parts.pop()
    if len(parts) != pages:
        raise ConversionFailed(
            f"the OCR text has {len(parts)} pages but the PDF has {pages}",
            exit_code=None,
            exit_name=None,
            stderr_tail="",
        )
    return tuple("" if _SKIPPED_PAGE.match(part) else part for part in parts)


def _tools_used(probe: ScanProbe, *, ocr: bool, path: str) -> dict[str, str]:
    """The versions of the tools ``path`` ran, and ``ocr_path``: which path made the PDF."""
    versions = tool_versions()
    unused = set()
    if probe.format not in IMAGE_FORMATS:
        unused.add("img2pdf")
    if not ocr:
        unused.update({"tesseract", "pypdfium2", "fpdf2"})
    if path == "sandwich":
        # With OCR, OCRmyPDF's renderer (on fpdf2) draws the text layer, in this process.
        unused.update({"pypdfium2"} if ocr else {"ocrmypdf"})
        ocr_path = "tesseract-sandwich" if ocr else "pikepdf"
    else:
        ocr_path = "ocrmypdf"
    tools = {name: version for name, version in versions.items() if name not in unused}
    tools["ocr_path"] = ocr_path
    return tools
