"""Archival PDF/A of a scan or PDF, with an invisible OCR text layer, and proof it is lossless.

Room: the conversion step of capture. Images are wrapped losslessly by img2pdf (in this
process: it only copies or losslessly re-packs the pixels). For an image scan in a plain
mode, tesseract then reads each page in a child process, its hOCR is drawn as an invisible
text page by OCRmyPDF's own renderer in this process, grafted onto img2pdf's pages, which
pikepdf declares PDF/A-2b (:mod:`._tesseract`, :mod:`._textlayer`, :mod:`._sandwich`).
Anything else, or a result that fails validation, goes through OCRmyPDF in a child process
(see :mod:`._ocrmypdf` for the flags and why). Before anything is returned, every page
image of the result is decoded and compared with the source pixels (ARCHITECTURE
invariant 2); JPEG sources must also keep their exact bytes. It never alters an image to
make a conversion work: it fails loudly, naming the page.

It must not archive, journal or touch a database; the caller stores what it returns.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import img2pdf
import pikepdf
from pikepdf.pdfa import Report, validate_written
from PIL import Image

from capture.errors import (
    CaptureError,
    ConversionFailed,
    ConversionTimeout,
    LosslessConversionImpossible,
    PixelMismatch,
    ResolutionMismatch,
)
from capture.scan import _child, _ocrmypdf, _png, _sandwich, _tesseract, _textlayer
from capture.scan._pdfpage import (
    content_bytes,
    encoded_fingerprint,
    filters,
    page_content,
)
from capture.scan._pixels import VERIFIABLE_MODES, PixelFingerprint, comparable
from capture.scan.probe import IMAGE_FORMATS, ScanProbe

# Float rounding in page sizes (img2pdf writes 4 decimals) stays far below this.
_DPI_TOLERANCE = 1e-3
_PAGE_SIZE_TOLERANCE_PT = 0.01
_SKIPPED_PAGE = re.compile(r"^\s*\[OCR skipped on page\(s\) [0-9, -]+\]\s*$")
_PDFA_FLAVOUR = _sandwich.FLAVOUR
#: Modes the fast path takes: what tesseract reads and img2pdf stores without a soft mask.
_FAST_MODES = frozenset({"1", "L", "RGB", "P"})
_SUFFIXES = {"scan-png": "png", "scan-jpeg": "jpg", "scan-tiff": "tif"}


@dataclass(frozen=True)
class PageProof:
    """What was proven about one page of a converted scan."""

    page: int
    """1-based page number."""
    width: int
    """Pixels."""
    height: int
    mode: str
    """The source's Pillow mode (``1``, ``L``, ``P``, ``RGB``, ``CMYK``...)."""
    dpi: tuple[float, float] | None
    """The scan's resolution, which the converted page size was checked to keep; ``None``
    when the source claims none (the page size is then img2pdf's assumption)."""
    pixel_sha256: str
    """SHA-256 of the decoded pixels as Pillow lays them out for ``mode`` (a palette image
    is hashed expanded to RGB, or RGBA when it has transparency)."""
    encoding: str
    """How the image is stored in the PDF: ``DCTDecode passthrough``, ``FlateDecode``,
    ``CCITTFaxDecode``..."""


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


def ensure_verifiable(probe: ScanProbe) -> None:
    """Refuse, before any work, a scan whose pixels could not be proven identical."""
    if probe.format == "pdf":
        return
    for number, info in enumerate(probe.page_info, 1):
        if info.mode.endswith(";16"):
            reason = (
                f"16-bit colour ({info.mode}): Pillow decodes it to 8 bits, "
                "so its pixels cannot be proven identical"
            )
        elif info.mode not in VERIFIABLE_MODES:
            reason = f"its colour mode {info.mode} cannot be decoded exactly here"
        elif "JBIG2Decode" in (info.compression or "") and not shutil.which("jbig2dec"):
            reason = "it is JBIG2-compressed and jbig2dec is not installed to decode it"
        else:
            continue
        raise LosslessConversionImpossible(
            f"page {number} cannot be converted verifiably: {reason}", page=number, reason=reason
        )


def compare_pages(source: bytes, probe: ScanProbe, result_pdf: bytes) -> tuple[PageProof, ...]:
    """Prove that ``result_pdf`` holds exactly the source's page images.

    For a scan, each page of the result must draw one image that decodes to the source
    pixels (same mode, size and bytes), at the source's resolution; a JPEG must also be
    the source's JPEG bytes. For a born-digital PDF, each page's content stream must be
    kept and its images must be the same encoded streams; no proof is returned.

    When every page of ``probe`` carries a pixel fingerprint this process can trust (the
    probe decoded ``source`` in full: see :attr:`PageInfo.pixels`), the decoded result is
    checked against those fingerprints and ``source`` is not decoded again; otherwise it
    is decoded here and compared sample for sample.

    Raises:
        PixelMismatch (or ResolutionMismatch), naming the page and what differs.
        LosslessConversionImpossible: the source cannot be decoded exactly.
    """
    ensure_verifiable(probe)
    try:
        result = pikepdf.open(io.BytesIO(result_pdf))
    except pikepdf.PdfError as exc:
        raise ConversionFailed(
            f"the converted PDF cannot be read: {exc}",
            exit_code=None,
            exit_name=None,
            stderr_tail="",
        ) from exc
    with result:
        if len(result.pages) != probe.pages:
            raise PixelMismatch(
                f"the converted PDF has {len(result.pages)} pages, the source {probe.pages}",
                page=None,
                what="page count",
            )
        if probe.format == "pdf":
            _compare_born_digital(source, result)
            return ()
        return tuple(
            _prove_page(number, original, page, probe)
            for number, (original, page) in enumerate(
                zip(_source_pages(source, probe), result.pages, strict=True), 1
            )
        )


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


# --- Scans -------------------------------------------------------------------------------


@dataclass
class _SourcePage:
    #: The decoded source page; ``None`` when its fingerprint from intake stands for it.
    image: Image.Image | None
    #: The JPEG bytes the result must hold unchanged, when the source page is a JPEG.
    jpeg: bytes | None = None
    #: For a source PDF: its MediaBox and the encoded fingerprint of its image.
    mediabox: tuple[float, float, float, float] | None = None
    fingerprint: str | None = None
    #: The source pixels' fingerprint, taken when the probe decoded them at intake.
    pixels: PixelFingerprint | None = None


def _source_pages(source: bytes, probe: ScanProbe) -> Iterator[_SourcePage]:
    if probe.format == "scan-pdf":
        yield from _source_pdf_pages(source)
        return
    jpeg = source if probe.format == "scan-jpeg" else None
    fingerprints = [info.pixels for info in probe.page_info]
    if all(fp is not None and fp.usable_here() for fp in fingerprints):
        # Decoded in full at intake, fingerprinted then, and the caller checked the bytes
        # are still those: prove the result against the fingerprint, decode nothing here.
        for fp in fingerprints:
            yield _SourcePage(None, jpeg=jpeg, pixels=fp)
        return
    with Image.open(io.BytesIO(source), formats=[IMAGE_FORMATS[probe.format]]) as image:
        for index in range(probe.pages):
            image.seek(index)
            image.load()
            yield _SourcePage(image, jpeg=jpeg)


def _source_pdf_pages(source: bytes) -> Iterator[_SourcePage]:
    with pikepdf.open(io.BytesIO(source)) as pdf:
        for number, page in enumerate(pdf.pages, 1):
            drawn = page_content(page).images
            if len(drawn) != 1:
                raise LosslessConversionImpossible(
                    f"page {number} of the source is not a single image",
                    page=number,
                    reason="not a single image",
                )
            image = drawn[0].image
            decoded = _decode_pdf_image(image, number, "source")
            jpeg = bytes(image.read_raw_bytes()) if filters(image) == ("DCTDecode",) else None
            box = page.mediabox
            yield _SourcePage(
                decoded,
                jpeg=jpeg,
                mediabox=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                fingerprint=encoded_fingerprint(image),
            )


def _prove_page(
    number: int, original: _SourcePage, page: pikepdf.Page, probe: ScanProbe
) -> PageProof:
    info = probe.page_info[number - 1]
    drawn_images = page_content(page).images
    if len(drawn_images) != 1:
        raise PixelMismatch(
            f"page {number}: the converted page draws {len(drawn_images)} images instead of 1",
            page=number,
            what="image count",
        )
    drawn = drawn_images[0]
    image = drawn.image
    if original.jpeg is not None and (
        filters(image) != ("DCTDecode",) or bytes(image.read_raw_bytes()) != original.jpeg
    ):
        raise PixelMismatch(
            f"page {number}: the JPEG is not stored with its original bytes",
            page=number,
            what="jpeg bytes",
        )
    actual_mode, actual_size, actual = _decoded_samples(image, number)
    if original.image is not None:
        source = _comparable(original.image, number, "source")
        expected_mode, expected_size = source.mode, source.size
        expected: bytes | None = source.tobytes()
        source_mode = original.image.mode
    else:
        assert original.pixels is not None  # _source_pages gives one or the other
        expected_mode, expected_size = original.pixels.mode, (info.width, info.height)
        expected, source_mode = None, info.mode
    if expected_mode != actual_mode:
        raise PixelMismatch(
            f"page {number}: mode {expected_mode} became {actual_mode}", page=number, what="mode"
        )
    if expected_size != actual_size:
        raise PixelMismatch(
            f"page {number}: size {expected_size} became {actual_size}", page=number, what="size"
        )
    pixel_sha256 = hashlib.sha256(actual).hexdigest()
    if expected is not None:
        same = actual == expected
    else:
        assert original.pixels is not None
        same = pixel_sha256 == original.pixels.sha256
    if not same:
        raise PixelMismatch(
            f"page {number}: the converted image's pixels differ from the source",
            page=number,
            what="pixels",
        )
    _check_geometry(number, drawn.width_pt, drawn.height_pt, page, original, info.dpi, actual_size)
    return PageProof(
        page=number,
        width=actual_size[0],
        height=actual_size[1],
        mode=source_mode,
        dpi=info.dpi,
        pixel_sha256=pixel_sha256,
        encoding=_encoding(image, original),
    )


def _decoded_samples(image: pikepdf.Stream, number: int) -> tuple[str, tuple[int, int], bytes]:
    """A converted page image's mode, size and exact samples (see :func:`_comparable`)."""
    try:
        plain = _plain_samples(image)
    except Exception as exc:  # a damaged stream qpdf cannot inflate
        raise _undecodable(number, "converted", exc) from exc
    if plain is not None:
        return plain
    decoded = _comparable(_decode_pdf_image(image, number, "converted"), number, "converted")
    return decoded.mode, decoded.size, decoded.tobytes()


def _decode_pdf_image(image: pikepdf.Stream, number: int, side: str) -> Image.Image:
    try:
        decoded = _decode_plain(image)
        if decoded is None:
            decoded = pikepdf.PdfImage(image).as_pil_image()
        decoded.load()
    except Exception as exc:  # an encoding or colour space pikepdf/Pillow cannot decode
        raise _undecodable(number, side, exc) from exc
    return decoded


def _undecodable(number: int, side: str, exc: Exception) -> CaptureError:
    reason = f"{type(exc).__name__}: {exc}"
    if side == "source":
        return LosslessConversionImpossible(
            f"page {number}: the source image cannot be decoded to verify it ({reason})",
            page=number,
            reason=reason,
        )
    return PixelMismatch(
        f"page {number}: the converted image cannot be decoded ({reason})",
        page=number,
        what="undecodable",
    )


#: Plain image streams whose decoded bytes are, as they are, Pillow's samples of a mode.
_PLAIN_IMAGES = {
    ("/DeviceRGB", 8): "RGB",
    ("/DeviceGray", 8): "L",
    ("/DeviceGray", 1): "1",
}
# Keys that would make the samples mean something else than the plain colour space says.
_NOT_PLAIN_KEYS = ("/Decode", "/ImageMask", "/Mask", "/SMask", "/SMaskInData", "/Matte")


def _decode_plain(image: pikepdf.Stream) -> Image.Image | None:
    """A plain image (see :func:`_plain_samples`) as a Pillow image; ``None`` otherwise."""
    plain = _plain_samples(image)
    if plain is None:
        return None
    mode, size, samples = plain
    return Image.frombuffer(mode, size, samples, "raw", mode, 0, 1)


def _plain_samples(image: pikepdf.Stream) -> tuple[str, tuple[int, int], bytes] | None:
    """A Flate (or unfiltered) DeviceRGB/DeviceGray image's mode, size and samples,
    decoded by qpdf alone.

    qpdf undoes Flate and its predictor; the bytes are then the image's samples, row by
    row, exactly as Pillow lays out ``RGB``, ``L`` or ``1`` (rows padded to whole bytes),
    so no second pass through pikepdf's image extraction is needed. Anything else (other
    filters or colour spaces, decode arrays, masks, a length that does not fit) returns
    ``None`` and takes the general decoder.
    """
    if filters(image) not in ((), ("FlateDecode",)) or any(k in image for k in _NOT_PLAIN_KEYS):
        return None
    space, depth = image.get("/ColorSpace"), image.get("/BitsPerComponent")
    if not isinstance(space, pikepdf.Name) or not isinstance(depth, int):
        return None
    mode = _PLAIN_IMAGES.get((str(space), depth))
    width, height = image.get("/Width"), image.get("/Height")
    if mode is None or not isinstance(width, int) or not isinstance(height, int):
        return None
    row = (width + 7) // 8 if mode == "1" else width * len(mode)
    samples = image.read_bytes()
    if width <= 0 or height <= 0 or len(samples) != row * height:
        return None
    return mode, (width, height), samples


def _comparable(image: Image.Image, number: int, side: str) -> Image.Image:
    """The image in a mode whose bytes are its exact samples (:func:`._pixels.comparable`)."""
    exact = comparable(image)
    if exact is None:
        raise PixelMismatch(
            f"page {number}: the {side} image's mode {image.mode} cannot be compared exactly",
            page=number,
            what="mode",
        )
    return exact


def _check_geometry(
    number: int,
    width_pt: float,
    height_pt: float,
    page: pikepdf.Page,
    original: _SourcePage,
    dpi: tuple[float, float] | None,
    pixels: tuple[int, int],
) -> None:
    """The page keeps the scan's size and so its resolution (pixels per inch of paper)."""
    unit = float(page.obj.get("/UserUnit", 1))
    box = page.mediabox
    mediabox = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    if original.mediabox is not None:
        same_box = all(
            math.isclose(a, b, abs_tol=_PAGE_SIZE_TOLERANCE_PT)
            for a, b in zip(mediabox, original.mediabox, strict=True)
        )
        if not same_box:
            raise ResolutionMismatch(
                f"page {number}: the page box {original.mediabox} became {mediabox}",
                page=number,
                what="page size",
            )
    else:
        # img2pdf makes the page exactly the image: the MediaBox gives the resolution.
        page_size = (abs(mediabox[2] - mediabox[0]), abs(mediabox[3] - mediabox[1]))
        if not all(
            math.isclose(a, b, rel_tol=_DPI_TOLERANCE)
            for a, b in zip(page_size, (width_pt, height_pt), strict=True)
        ):
            raise ResolutionMismatch(
                f"page {number}: the image ({width_pt:.2f}×{height_pt:.2f} pt) does not fill "
                f"the page ({page_size[0]:.2f}×{page_size[1]:.2f} pt)",
                page=number,
                what="page size",
            )
    if dpi is None:
        return
    if width_pt <= 0 or height_pt <= 0:
        raise ResolutionMismatch(
            f"page {number}: the image is drawn with no size", page=number, what="resolution"
        )
    got = (pixels[0] * 72 / (width_pt * unit), pixels[1] * 72 / (height_pt * unit))
    if not all(math.isclose(a, b, rel_tol=_DPI_TOLERANCE) for a, b in zip(got, dpi, strict=True)):
        raise ResolutionMismatch(
            f"page {number}: resolution {dpi[0]:.1f}×{dpi[1]:.1f} dpi "
            f"became {got[0]:.1f}×{got[1]:.1f} dpi",
            page=number,
            what="resolution",
        )


def _encoding(image: pikepdf.Stream, original: _SourcePage) -> str:
    chain = "+".join(filters(image)) or "uncompressed"
    if original.jpeg is not None:
        return "DCTDecode passthrough"
    if original.fingerprint is not None and original.fingerprint == encoded_fingerprint(image):
        return f"{chain} passthrough"
    return chain


# --- Born-digital PDFs -------------------------------------------------------------------


def _compare_born_digital(source: bytes, result: pikepdf.Pdf) -> None:
    with pikepdf.open(io.BytesIO(source)) as original:
        for number, (before, after) in enumerate(zip(original.pages, result.pages, strict=True), 1):
            if content_bytes(before) not in content_bytes(after):
                raise PixelMismatch(
                    f"page {number}: its content stream was rewritten "
                    "(text or drawings may have been rasterised)",
                    page=number,
                    what="content",
                )
            images_before = Counter(
                encoded_fingerprint(drawn.image) for drawn in page_content(before).images
            )
            images_after = Counter(
                encoded_fingerprint(drawn.image) for drawn in page_content(after).images
            )
            if images_before != images_after:
                raise PixelMismatch(
                    f"page {number}: its images were changed, removed or added",
                    page=number,
                    what="images",
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
