"""Cheap checks on received bytes, before anything is archived: what is it, is it whole, is it safe.

Room: pure inspection of scans (TIFF, PNG, JPEG) and PDFs. It never writes, converts or
runs a program. An image is decoded in full (to catch truncation) only after its header
proved it is of a reasonable size, and each decoded page is fingerprinted for the pixel
proof (:attr:`PageInfo.pixels`); a PDF's images are never decoded here.

Problems that make the bytes unusable raise :class:`~capture.errors.CaptureBadInput`
subclasses; problems that do not (a low resolution, a PDF that needed repair) become
``flags`` and the original is archived anyway.
"""

from __future__ import annotations

import io
import math
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

import pikepdf
from PIL import Image, ImageFile

from capture.errors import (
    ActiveContent,
    CorruptImage,
    DamagedPdf,
    DecompressionBomb,
    EmptyInput,
    PasswordProtectedPdf,
    UnsupportedMediaType,
)
from capture.scan._pdfpage import PageContent, filters, page_content
from capture.scan._pixels import PixelFingerprint, fingerprint

#: ``ScanProbe.format`` values and the media type of each.
MEDIA_TYPES: dict[str, str] = {
    "scan-tiff": "image/tiff",
    "scan-png": "image/png",
    "scan-jpeg": "image/jpeg",
    "scan-pdf": "application/pdf",
    "pdf": "application/pdf",
}
IMAGE_FORMATS: dict[str, str] = {"scan-tiff": "TIFF", "scan-png": "PNG", "scan-jpeg": "JPEG"}

# Magic bytes of formats we recognise only to name them in the refusal.
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"BM", "image/bmp"),
    (b"\x00\x00\x00\x0cjP  ", "image/jp2"),
    (b"\xff\x4f\xff\x51", "image/jp2"),
    (b"\x1f\x8b", "application/gzip"),
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"{\\rtf", "application/rtf"),
    (b"<?xml", "application/xml"),
)
_EXECUTABLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "MZ"),
    (b"\x7fELF", "ELF"),
    (b"#!", "script"),
    (b"\xca\xfe\xba\xbe", "Mach-O"),
    (b"\xfe\xed\xfa\xce", "Mach-O"),
    (b"\xfe\xed\xfa\xcf", "Mach-O"),
    (b"\xce\xfa\xed\xfe", "Mach-O"),
    (b"\xcf\xfa\xed\xfe", "Mach-O"),
)
_EXECUTABLE_SUFFIXES = frozenset(
    {
        ".exe", ".dll", ".com", ".scr", ".pif", ".cpl", ".msi", ".msp", ".bat", ".cmd",
        ".ps1", ".psm1", ".vbs", ".vbe", ".js", ".jse", ".wsf", ".wsh", ".hta", ".jar",
        ".sh", ".bash", ".py", ".pl", ".rb", ".app", ".elf", ".run", ".lnk", ".reg",
        ".apk", ".dmg", ".deb", ".rpm",
    }
)  # fmt: skip
_FILESPEC_NAME_KEYS = ("/UF", "/F", "/DOS", "/Unix", "/Mac")
_MAX_OBJECT_DEPTH = 64
_QPDF_PREFIX = re.compile(r"^(?:stream )?<[^>]*>:\s*")


@dataclass(frozen=True)
class PageInfo:
    """One page of a probed file."""

    width: int
    """Width in pixels; for a page that is not a single image, in PDF points (rounded)."""
    height: int
    """Height, in the same unit as ``width``."""
    mode: str
    """Pillow's mode (``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``I;16``...); ``RGB;16``-style
    for 16-bit colour that Pillow would reduce to 8 bits; ``pdf`` for a page that is not a
    single image."""
    dpi: tuple[float, float] | None
    """Resolution (x, y) the file claims or, in a PDF, the one its page size gives; ``None``
    when unknown or for a page that is not a single image."""
    compression: str | None
    """Pillow's name for TIFF (``group4``, ``tiff_lzw``, ``tiff_adobe_deflate``, ``raw``),
    ``deflate`` for PNG, ``jpeg``, the filter chain for a PDF image (``DCTDecode``), or
    ``None`` for a page that is not a single image."""
    pixels: PixelFingerprint | None = None
    """The fingerprint of the decoded page (an image scan probed with ``decode=True``);
    the pixel proof checks the converted page against it."""


@dataclass(frozen=True)
class ScanProbe:
    """What :func:`probe` found."""

    media_type: str
    """``image/tiff``, ``image/png``, ``image/jpeg`` or ``application/pdf``."""
    format: str
    """``scan-tiff``, ``scan-png``, ``scan-jpeg``, ``scan-pdf`` (every page one image and
    nothing else) or ``pdf`` (born-digital: text, vectors or composed pages)."""
    pages: int
    page_info: tuple[PageInfo, ...]
    flags: tuple[tuple[str, str], ...]
    """``(code, message)`` pairs for what does not stop archiving: ``low_resolution``,
    ``resolution_unknown``, ``pdf_repaired``, ``encrypted`` (permissions only)."""

    def flag_codes(self) -> frozenset[str]:
        return frozenset(code for code, _ in self.flags)


def probe(
    data: bytes, *, max_pixels: int = 200_000_000, min_dpi: int = 200, decode: bool = True
) -> ScanProbe:
    """Identify ``data`` and check it can be taken in.

    ``decode=False`` skips decoding every pixel to find truncation: for bytes that were
    already probed in full at intake and whose fingerprint still matches (a worker).

    Pillow's own guard (about 179 megapixels) also refuses an image, whichever limit is
    lower; both raise :class:`~capture.errors.DecompressionBomb`.

    Raises:
        EmptyInput, UnsupportedMediaType, CorruptImage, DecompressionBomb,
        PasswordProtectedPdf, DamagedPdf, ActiveContent.
    """
    if not data:
        raise EmptyInput("the file is empty")
    kind = _sniff(data)
    if kind in IMAGE_FORMATS:
        pages = _probe_image(data, kind, max_pixels, decode=decode)
        flags: list[tuple[str, str]] = []
    else:
        kind, pages, flags = _probe_pdf(data, max_pixels)
    if kind != "pdf":
        flags.extend(_resolution_flags(pages, min_dpi))
    return ScanProbe(
        media_type=MEDIA_TYPES[kind],
        format=kind,
        pages=len(pages),
        page_info=tuple(pages),
        flags=tuple(flags),
    )


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "scan-png"
    if data.startswith(b"\xff\xd8\xff"):
        return "scan-jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "scan-tiff"
    # The PDF header may follow some junk; readers look in the first kilobyte.
    if b"%PDF-" in data[:1024]:
        return "pdf"
    media_type = next((name for magic, name in _OTHER_MAGIC if data.startswith(magic)), None)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        media_type = "image/webp"
    if data[:4] in (b"II+\x00", b"MM\x00+"):
        media_type = "image/tiff (BigTIFF)"
    raise UnsupportedMediaType(
        f"unsupported file type ({media_type or 'unrecognised bytes'}): "
        "send a TIFF, PNG, JPEG or PDF",
        media_type=media_type,
    )


# --- Images ----------------------------------------------------------------------------


def _probe_image(data: bytes, kind: str, max_pixels: int, *, decode: bool) -> list[PageInfo]:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A process-wide Pillow switch would make truncated scans load silently.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: cannot detect truncation")
    pil_format = IMAGE_FORMATS[kind]
    header_size = _header_size(data, kind)
    if header_size is not None:
        # Refuse from the declared size before Pillow's own (lower or higher) guard does.
        _check_pixels(header_size, 1, max_pixels)
    pages: list[PageInfo] = []
    with _open_image(data, pil_format, max_pixels) as image:
        if kind == "scan-png" and getattr(image, "n_frames", 1) > 1:
            raise UnsupportedMediaType("animated PNG is not a scan", media_type="image/apng")
        # A JPEG may carry extra pictures (MPO); the first is the scan, stored byte for byte.
        count = 1 if kind != "scan-tiff" else _frame_count(image, pil_format)
        for index in range(count):
            page = index + 1
            try:
                image.seek(index)
            except (EOFError, OSError, ValueError) as exc:
                raise _corrupt(pil_format, page, exc) from exc
            _check_pixels(image.size, page, max_pixels)
            coding = _compression(image, kind)
            pixels = None
            mode = _stored_mode(image)
            if decode:
                _decode(image, pil_format, page)
                if not mode.endswith(";16"):
                    pixels = fingerprint(image, coding)
            pages.append(
                PageInfo(
                    width=image.size[0],
                    height=image.size[1],
                    mode=mode,
                    dpi=_dpi(image.info.get("dpi")),
                    compression=coding,
                    pixels=pixels,
                )
            )
    if kind == "scan-png" and decode:
        _verify_png(data)
    return pages


# Start-of-frame markers of every JPEG coding process (not DHT C4, JPG C8 or DAC CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """Width and height declared by a PNG's IHDR or a JPEG's SOF, without Pillow."""
    if kind == "scan-png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if kind != "scan-jpeg":
        return None
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
            continue
        if marker in _JPEG_SOF:
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            width = int.from_bytes(data[position + 7 : position + 9], "big")
            return width, height
        if marker == 0xDA:  # image data before any frame header
            return None
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


def _open_image(data: bytes, pil_format: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Opening reads the header only: no pixel is decoded here.
            return Image.open(io.BytesIO(data), formats=[pil_format])
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(
            f"the image is too large to decode safely ({exc})",
            page=1,
            width=None,
            height=None,
            max_pixels=max_pixels,
        ) from exc
    except Exception as exc:  # untrusted bytes: any decoder failure means a bad header
        raise _corrupt(pil_format, None, exc) from exc


def _frame_count(image: Image.Image, pil_format: str) -> int:
    try:
        return int(getattr(image, "n_frames", 1))
    except Exception as exc:  # walking the IFD chain of a damaged TIFF
        raise _corrupt(pil_format, None, exc) from exc


def _check_pixels(size: tuple[int, int], page: int, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptImage(
            f"page {page} has an empty size {width}×{height}",
            format=None,
            page=page,
            reason="empty size",
        )
    if width * height > max_pixels:
        raise DecompressionBomb(
            f"page {page} is {width}×{height} pixels, more than the {max_pixels:,} allowed",
            page=page,
            width=width,
            height=height,
            max_pixels=max_pixels,
        )


def _decode(image: Image.Image, pil_format: str, page: int) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Exception as exc:  # truncated or damaged pixel data
        raise _corrupt(pil_format, page, exc) from exc


def _verify_png(data: bytes) -> None:
    """Check every chunk's CRC up to IEND (``load`` stops at the image data)."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.verify()
    except Exception as exc:
        raise _corrupt("PNG", 1, exc) from exc


def _corrupt(pil_format: str | None, page: int | None, exc: Exception) -> CorruptImage:
    where = f"page {page}" if page is not None else "the header"
    reason = f"{type(exc).__name__}: {exc}"
    return CorruptImage(
        f"the {pil_format or 'image'} is truncated or damaged ({where}): {reason}",
        format=pil_format,
        page=page,
        reason=reason,
    )


def _stored_mode(image: Image.Image) -> str:
    """Pillow's mode, marked ``;16`` when Pillow would reduce 16-bit colour to 8 bits."""
    mode = image.mode
    tile = getattr(image, "tile", None)
    if mode in ("RGB", "RGBA", "LA", "CMYK", "P") and tile:
        args = tile[0].args
        rawmode = args if isinstance(args, str) else (args[0] if args else "")
        if isinstance(rawmode, str) and ";16" in rawmode:
            return f"{mode};16"
    return mode


def _compression(image: Image.Image, kind: str) -> str:
    if kind == "scan-tiff":
        return str(image.info.get("compression", "raw"))
    return "deflate" if kind == "scan-png" else "jpeg"


def _dpi(value: object) -> tuple[float, float] | None:
    if not isinstance(value, tuple) or len(value) != 2:
        return None
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(x) and math.isfinite(y)) or x <= 1 or y <= 1:
        return None
    return (x, y)


def _resolution_flags(pages: list[PageInfo], min_dpi: int) -> list[tuple[str, str]]:
    flags: list[tuple[str, str]] = []
    for number, info in enumerate(pages, 1):
        if info.dpi is None:
            flags.append(("resolution_unknown", f"page {number} has no resolution information"))
        elif min(info.dpi) < min_dpi:
            flags.append(
                (
                    "low_resolution",
                    f"page {number} is {_dpi_text(info.dpi)} dpi, below {min_dpi} dpi",
                )
            )
    return flags


def _dpi_text(dpi: tuple[float, float]) -> str:
    x, y = (round(value) for value in dpi)
    return str(x) if x == y else f"{x}×{y}"


# --- PDFs ------------------------------------------------------------------------------


def _probe_pdf(data: bytes, max_pixels: int) -> tuple[str, list[PageInfo], list[tuple[str, str]]]:
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError as exc:
        raise PasswordProtectedPdf("the PDF needs a password to be opened") from exc
    except Exception as exc:  # qpdf could not even reconstruct it
        raise _damaged(exc) from exc
    with pdf:
        flags: list[tuple[str, str]] = []
        repairs = [_qpdf_message(text) for text in pdf.get_warnings()]
        if repairs:
            message = "the PDF is damaged and was reconstructed: " + repairs[0]
            flags.append(("pdf_repaired", message))
        if pdf.is_encrypted:
            flags.append(
                ("encrypted", "the PDF is encrypted without an open password (permissions only)")
            )
        findings = _active_content(pdf)
        if findings:
            raise ActiveContent(
                "the PDF contains active content: " + "; ".join(findings),
                findings=tuple(findings),
            )
        try:
            pdf_pages = list(pdf.pages)
        except Exception as exc:
            raise _damaged(exc) from exc
        if not pdf_pages:
            raise DamagedPdf("the PDF has no pages", reason="no pages")
        pages: list[PageInfo] = []
        all_scans = True
        for number, page in enumerate(pdf_pages, 1):
            try:
                content = page_content(page)
                for drawn in content.images:
                    size = (int(drawn.image.get("/Width", 0)), int(drawn.image.get("/Height", 0)))
                    _check_pixels(size, number, max_pixels)
                pages.append(_pdf_page_info(page, content))
            except DecompressionBomb:
                raise
            except Exception as exc:
                raise _damaged(exc, page=number) from exc
            all_scans = all_scans and content.is_scan
    return ("scan-pdf" if all_scans else "pdf"), pages, flags


def _pdf_page_info(page: pikepdf.Page, content: PageContent) -> PageInfo:
    unit = float(page.obj.get("/UserUnit", 1))
    if not content.is_scan:
        box = page.mediabox
        return PageInfo(
            width=round(abs(float(box[2]) - float(box[0])) * unit),
            height=round(abs(float(box[3]) - float(box[1])) * unit),
            mode="pdf",
            dpi=None,
            compression=None,
        )
    drawn = content.images[0]
    width, height = int(drawn.image["/Width"]), int(drawn.image["/Height"])
    dpi = None
    if drawn.width_pt > 0 and drawn.height_pt > 0:
        dpi = (width * 72 / (drawn.width_pt * unit), height * 72 / (drawn.height_pt * unit))
    return PageInfo(
        width=width,
        height=height,
        mode=pdf_image_mode(drawn.image),
        dpi=dpi,
        compression="+".join(filters(drawn.image)) or "none",
    )


def pdf_image_mode(image: pikepdf.Stream) -> str:
    """Pillow's mode for a PDF image, or its colour space when Pillow has none."""
    try:
        return str(pikepdf.PdfImage(image).mode)
    except Exception:  # an exotic colour space (Separation, DeviceN, Lab...)
        return str(image.get("/ColorSpace", "unknown"))


def _damaged(exc: Exception, *, page: int | None = None) -> DamagedPdf:
    reason = _qpdf_message(str(exc)) or type(exc).__name__
    where = f" (page {page})" if page is not None else ""
    return DamagedPdf(f"the PDF cannot be read{where}: {reason}", reason=reason, page=page)


def _qpdf_message(text: str) -> str:
    return _QPDF_PREFIX.sub("", text.strip())


def _active_content(pdf: pikepdf.Pdf) -> list[str]:
    """JavaScript, launch actions and embedded executables, wherever they are nested."""
    findings: list[str] = []
    for obj in pdf.objects:
        if isinstance(obj, pikepdf.Dictionary | pikepdf.Stream | pikepdf.Array):
            where = f"obj {obj.objgen[0]} {obj.objgen[1]}"
            _scan_object(obj, where, findings, 0)
    return list(dict.fromkeys(findings))


def _scan_object(obj: pikepdf.Object, where: str, findings: list[str], depth: int) -> None:
    if depth > _MAX_OBJECT_DEPTH:
        return
    if isinstance(obj, pikepdf.Array):
        children = list(obj)
    elif isinstance(obj, pikepdf.Dictionary | pikepdf.Stream):
        _check_dictionary(obj, where, findings)
        children = [value for _, value in obj.items()]
    else:
        return
    for child in children:
        # Indirect objects are visited on their own by the caller's loop.
        if isinstance(child, pikepdf.Dictionary | pikepdf.Array) and not child.is_indirect:
            _scan_object(child, where, findings, depth + 1)


def _check_dictionary(obj: pikepdf.Object, where: str, findings: list[str]) -> None:
    action = obj.get("/S")
    if "/JS" in obj or action == pikepdf.Name.JavaScript:
        findings.append(f"JavaScript action ({where})")
    if "/JavaScript" in obj:
        findings.append(f"document-level JavaScript ({where})")
    if action == pikepdf.Name.Launch:
        findings.append(f"launch action ({where})")
    if obj.get("/Type") == pikepdf.Name.Filespec or "/EF" in obj:
        names = [
            str(value)
            for value in (obj.get(key) for key in _FILESPEC_NAME_KEYS)
            if isinstance(value, pikepdf.String | str)
        ]
        label = names[0] if names else "unnamed"
        for name in names:
            suffix = PureWindowsPath(PurePosixPath(name).name).suffix.lower()
            if suffix in _EXECUTABLE_SUFFIXES:
                findings.append(f"embedded executable {label!r} ({suffix} file)")
        streams = obj.get("/EF")
        if isinstance(streams, pikepdf.Dictionary):
            for _, stream in streams.items():
                if isinstance(stream, pikepdf.Stream):
                    kind = _executable_magic(stream)
                    if kind:
                        findings.append(f"embedded executable {label!r} ({kind})")
    elif isinstance(obj, pikepdf.Stream) and obj.get("/Type") == pikepdf.Name.EmbeddedFile:
        kind = _executable_magic(obj)
        if kind:
            findings.append(f"embedded executable ({kind}, {where})")


def _executable_magic(stream: pikepdf.Stream) -> str | None:
    head = _stream_head(stream, 8)
    return next((kind for magic, kind in _EXECUTABLE_MAGIC if head.startswith(magic)), None)


def _stream_head(stream: pikepdf.Stream, size: int) -> bytes:
    """The first decoded bytes, without inflating a possibly huge attachment."""
    chain = filters(stream)
    try:
        raw = bytes(stream.read_raw_bytes())
        if not chain:
            return raw[:size]
        if chain == ("FlateDecode",):
            return zlib.decompressobj().decompress(raw, size)
    except (pikepdf.PdfError, zlib.error):
        return b""
    # Other filter chains are rare for attachments; their names were still checked.
    return b""
