"""The pixel proof: a converted PDF holds exactly the source's page images.

Room: the check of capture's conversion (ARCHITECTURE invariant 2). For a scan, every page
image of the result is decoded and compared with the source pixels — either the source
decoded here, or the fingerprint the probe took when it decoded the source at intake —
at the source's resolution; a JPEG must also keep its exact bytes. For a born-digital PDF,
each page's content stream and every image must be kept as they were. It never alters
anything: it names the page and what differs.
"""

from __future__ import annotations

import hashlib
import io
import math
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pikepdf
from PIL import Image

from capture.errors import (
    CaptureError,
    ConversionFailed,
    LosslessConversionImpossible,
    PixelMismatch,
    ResolutionMismatch,
)
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
