"""Test inputs drawn on the fly (pages with a few words, images, PDFs), and ways to read
results independently of the code under test; shared by the capture.scan tests."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import img2pdf
import pikepdf
import pypdfium2 as pdfium
import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont, TiffImagePlugin

F = TypeVar("F", bound=Callable[..., Any])

FONT_PATH = next(
    iter(sorted(Path("/usr/share/fonts").rglob("LiberationSans-Regular.ttf"))),
    next(iter(sorted(Path("/usr/share/fonts").rglob("*.ttf"))), None),
)
WORDS = ("FACTURE FA-2026-0042", "ACME SAS Lyon", "Total 1234,56 EUR")


def runs_ocrmypdf(test: F) -> F:
    """Runs OCRmyPDF in a child process: slow, and kept on one worker."""
    return pytest.mark.slow(pytest.mark.xdist_group("ocr")(test))


# --- Making inputs -----------------------------------------------------------------------


def draw_page(
    lines: tuple[str, ...] = WORDS,
    *,
    mode: str = "RGB",
    size: tuple[int, int] = (600, 800),
    seed: int = 0,
) -> Image.Image:
    """A page of text with a few coloured boxes (so colour pages are really coloured)."""
    if FONT_PATH is None:
        pytest.fail("no TrueType font under /usr/share/fonts to draw test pages")
    rng = random.Random(seed)
    image = Image.new("RGB", size, (252, 250, 243))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0 = rng.randrange(0, max(1, size[0] // 2))
        y0 = rng.randrange(size[1] // 2, max(size[1] // 2 + 1, size[1] - 120))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x0, y0, x0 + rng.randrange(40, 200), y0 + 60), outline=colour, width=4)
    font = ImageFont.truetype(str(FONT_PATH), 38)
    for index, line in enumerate(lines):
        draw.text((40, 50 + 70 * index), line, font=font, fill=(20, 20, 110))
    return image if mode == "RGB" else image.convert(mode)


def encode(image: Image.Image, image_format: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def png(image: Image.Image, dpi: tuple[int, int] | None = (300, 300), **params: Any) -> bytes:
    return encode(image, "PNG", **({"dpi": dpi} if dpi else {}), **params)


def jpeg(image: Image.Image, *, quality: int = 85) -> bytes:
    return encode(image, "JPEG", quality=quality, dpi=(300, 300))


def multipage_tiff(frames: list[tuple[Image.Image, str]]) -> bytes:
    """A TIFF whose pages each use their own compression."""
    buffer = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(buffer, new=True) as writer:
        for image, compression in frames:
            image.save(writer, format="TIFF", compression=compression, dpi=(300, 300))
            writer.newFrame()
    return buffer.getvalue()


def wrap(*images: bytes, dpi: tuple[float, float] = (300, 300)) -> bytes:
    """A PDF with img2pdf, as a stand-in for a converted result (no OCR, no PDF/A)."""
    layout = img2pdf.get_fixed_dpi_layout_fun(dpi)
    return bytes(img2pdf.convert(list(images), layout_fun=layout))


def save(pdf: pikepdf.Pdf, **options: Any) -> bytes:
    buffer = io.BytesIO()
    pdf.save(buffer, **options)
    return buffer.getvalue()


def born_digital_pdf() -> bytes:
    """Text in an embedded TrueType font, the way invoicing software writes it."""
    document = FPDF()
    document.add_page()
    document.add_font("Liberation", fname=str(FONT_PATH))
    document.set_font("Liberation", size=16)
    document.cell(text="Facture FA-2026-0042 ACME SAS")
    document.ln()
    document.cell(text="Total TTC 1234,56 EUR")
    with pikepdf.open(io.BytesIO(bytes(document.output()))) as pdf:
        # fpdf2 sets a zoom /OpenAction, which pikepdf's PDF/A validator does not check.
        del pdf.Root["/OpenAction"]
        return save(pdf)


def helvetica_pdf() -> bytes:
    """Text in a standard font that is not embedded: cannot be PDF/A without changes."""
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(595, 842))
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.Contents = pdf.make_stream(b"BT /F1 18 Tf 72 760 Td (Facture FA-2026-0042) Tj ET")
    return save(pdf)


def pdf_with(edit: Callable[[pikepdf.Pdf], None]) -> bytes:
    """A one-page scan PDF, edited by ``edit``."""
    with pikepdf.open(io.BytesIO(wrap(png(draw_page(size=(300, 400)))))) as pdf:
        edit(pdf)
        return save(pdf)


def attach(name: str, data: bytes) -> Callable[[pikepdf.Pdf], None]:
    def edit(pdf: pikepdf.Pdf) -> None:
        pdf.attachments[name] = pikepdf.AttachedFileSpec(pdf, data, filename=name)

    return edit


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG that declares ``width × height`` but carries a few bytes of image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def rgb48_png(width: int = 64, height: int = 48) -> bytes:
    """16 bits per channel RGB, which Pillow can only decode to 8 bits."""
    rows = b"".join(
        b"\x00" + bytes((x * 7 + y * 3) % 256 for x in range(width * 6)) for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1))
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


# --- Reading results independently of the code under test ---------------------------------


def image_counts(pdf_bytes: bytes) -> list[int]:
    """How many images each page holds directly (the OCR layer is a form, not an image)."""
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        return [
            sum(
                1
                for _, x in page.Resources.get("/XObject", pikepdf.Dictionary()).items()
                if x.get("/Subtype") == pikepdf.Name.Image
            )
            for page in pdf.pages
        ]


def contents(pdf_bytes: bytes, number: int) -> bytes:
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        streams = pdf.pages[number - 1].obj.Contents
        if isinstance(streams, pikepdf.Array):
            return b"\n".join(bytes(stream.read_bytes()) for stream in streams)
        return bytes(streams.read_bytes())


def decoded_page(pdf_bytes: bytes, number: int) -> Image.Image:
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        xobjects = pdf.pages[number - 1].Resources.XObject
        (image,) = [x for _, x in xobjects.items() if x.get("/Subtype") == pikepdf.Name.Image]
        decoded = pikepdf.PdfImage(image).as_pil_image()
        decoded.load()
        return decoded


def raw_image_bytes(pdf_bytes: bytes, number: int) -> tuple[bytes, object]:
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        xobjects = pdf.pages[number - 1].Resources.XObject
        (image,) = [x for _, x in xobjects.items() if x.get("/Subtype") == pikepdf.Name.Image]
        return bytes(image.read_raw_bytes()), image.get("/Filter")


def pdf_text(pdf_bytes: bytes) -> str:
    document = pdfium.PdfDocument(pdf_bytes)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


def pdfa_claim(pdf_bytes: bytes) -> str:
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        return str(pdf.open_metadata().pdfa_status)


def assert_same_pixels(source: Image.Image, converted: Image.Image) -> None:
    assert (converted.mode, converted.size) == (source.mode, source.size)
    assert converted.tobytes() == source.tobytes()


def sha256(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def open_frames(data: bytes) -> list[Image.Image]:
    frames = []
    with Image.open(io.BytesIO(data)) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(image.copy())
    return frames


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def encrypted_pdf() -> bytes:
    with pikepdf.open(io.BytesIO(wrap(png(draw_page(size=(300, 400)))))) as pdf:
        return save(pdf, encryption=pikepdf.Encryption(owner="owner", user="secret"))


def owner_only_encrypted_pdf() -> bytes:
    """Opens without a password; only permissions are "protected"."""
    with pikepdf.open(io.BytesIO(wrap(png(draw_page(size=(300, 400)))))) as pdf:
        restrictions = pikepdf.Permissions(extract=False, modify_other=False)
        return save(pdf, encryption=pikepdf.Encryption(owner="owner", user="", allow=restrictions))


def javascript_open_action(pdf: pikepdf.Pdf) -> None:
    pdf.Root.OpenAction = pikepdf.Dictionary(
        S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert('hello');")
    )


def launch_annotation(pdf: pikepdf.Pdf) -> None:
    action = pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String("cmd.exe"))
    annotation = pikepdf.Dictionary(
        Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 0, 50, 50], A=action
    )
    pdf.pages[0].Annots = pdf.make_indirect(pikepdf.Array([annotation]))
