"""Scans and PDFs through probe and convert: lossless PDF/A with OCR, proven pixel by pixel.

Inputs are drawn on the fly with Pillow: small pages at 300 dpi with a few words in a
TrueType font, so that tesseract has something to read. Tests that run OCRmyPDF or
tesseract (child processes, a fraction of a second to a few seconds each) are marked slow
and grouped on one xdist worker; the pixel checks themselves are also tested without OCR,
on hand-made result PDFs.

Image scans in plain modes take the fast path (tesseract's text layer grafted by pikepdf,
``tools["ocr_path"] == "tesseract-sandwich"``, or ``"pikepdf"`` without OCR); the rest
goes through OCRmyPDF (``"ocrmypdf"``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
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

from archive.errors import BadInput, CorruptPdf, EmptyFile, EncryptedPdf
from capture.errors import (
    ActiveContent,
    CaptureError,
    ConversionFailed,
    ConversionTimeout,
    CorruptImage,
    DamagedPdf,
    DecompressionBomb,
    EmptyInput,
    LosslessConversionImpossible,
    PasswordProtectedPdf,
    PixelMismatch,
    ResolutionMismatch,
    UnsupportedMediaType,
)
from capture.scan import _sandwich, _tesseract
from capture.scan.convert import Conversion, convert, tool_versions
from capture.scan.probe import ScanProbe, probe
from capture.scan.proof import compare_pages
from capture.scan.text import words_from_pdf

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


# --- probe: what the bytes are ------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected_format", "media_type", "mode", "compression"),
    [
        (lambda: png(draw_page()), "scan-png", "image/png", "RGB", "deflate"),
        (lambda: jpeg(draw_page(mode="L")), "scan-jpeg", "image/jpeg", "L", "jpeg"),
        (
            lambda: multipage_tiff([(draw_page(mode="1"), "group4")]),
            "scan-tiff",
            "image/tiff",
            "1",
            "group4",
        ),
        (lambda: wrap(jpeg(draw_page())), "scan-pdf", "application/pdf", "RGB", "DCTDecode"),
    ],
    ids=["png", "jpeg", "tiff-g4", "scan-pdf"],
)
def test_probe_identifies_scans_and_reads_their_resolution(
    make: Callable[[], bytes], expected_format: str, media_type: str, mode: str, compression: str
) -> None:
    found = probe(make())

    assert (found.format, found.media_type, found.pages) == (expected_format, media_type, 1)
    info = found.page_info[0]
    assert (info.width, info.height, info.mode, info.compression) == (600, 800, mode, compression)
    assert info.dpi is not None
    assert info.dpi == pytest.approx((300, 300), rel=1e-3)
    assert found.flags == ()


def test_probe_reads_every_page_of_a_multipage_tiff() -> None:
    data = multipage_tiff(
        [
            (draw_page(seed=1), "tiff_lzw"),
            (draw_page(mode="L", seed=2), "tiff_adobe_deflate"),
            (draw_page(seed=3), "raw"),
            (draw_page(mode="1", seed=4), "group4"),
        ]
    )

    found = probe(data)

    assert (found.format, found.pages) == ("scan-tiff", 4)
    assert [(p.mode, p.compression) for p in found.page_info] == [
        ("RGB", "tiff_lzw"),
        ("L", "tiff_adobe_deflate"),
        ("RGB", "raw"),
        ("1", "group4"),
    ]


def test_probe_calls_a_pdf_with_text_born_digital() -> None:
    found = probe(born_digital_pdf())

    assert (found.format, found.media_type, found.pages) == ("pdf", "application/pdf", 1)
    assert found.page_info[0].mode == "pdf"


def test_low_resolution_is_flagged_not_refused() -> None:
    found = probe(png(draw_page(), dpi=(150, 150)))

    assert found.format == "scan-png"
    assert found.flags == (("low_resolution", "page 1 is 150 dpi, below 200 dpi"),)
    assert probe(png(draw_page(), dpi=(150, 150)), min_dpi=150).flags == ()


def test_a_damaged_pdf_that_can_be_reconstructed_is_flagged() -> None:
    data = wrap(png(draw_page(size=(300, 400))))

    found = probe(data[:-200])  # no startxref: qpdf rebuilds the cross-reference table

    assert found.format == "scan-pdf"
    assert found.flag_codes() == {"pdf_repaired"}


def test_permissions_only_encryption_is_flagged() -> None:
    found = probe(owner_only_encrypted_pdf())

    assert found.flag_codes() == {"encrypted"}


def test_missing_resolution_is_flagged() -> None:
    found = probe(png(draw_page(), dpi=None))

    assert found.page_info[0].dpi is None
    assert found.flag_codes() == {"resolution_unknown"}


# --- probe: what is refused -------------------------------------------------------------


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


BAD_INPUTS: list[tuple[str, Callable[[], bytes], type[Exception], str]] = [
    ("empty", lambda: b"", EmptyInput, "empty_input"),
    ("truncated-png", lambda: truncated(png(draw_page())), CorruptImage, "corrupt_image"),
    ("truncated-jpeg", lambda: truncated(jpeg(draw_page())), CorruptImage, "corrupt_image"),
    (
        "truncated-tiff",
        lambda: truncated(multipage_tiff([(draw_page(), "raw"), (draw_page(), "raw")])),
        CorruptImage,
        "corrupt_image",
    ),
    ("corrupt-pdf", lambda: b"%PDF-1.7\n" + bytes(range(256)) * 8, DamagedPdf, "damaged_pdf"),
    ("encrypted-pdf", encrypted_pdf, PasswordProtectedPdf, "password_protected_pdf"),
    ("javascript", lambda: pdf_with(javascript_open_action), ActiveContent, "active_content"),
    ("launch", lambda: pdf_with(launch_annotation), ActiveContent, "active_content"),
    (
        "embedded-exe",
        lambda: pdf_with(attach("setup.exe", b"MZ\x90\x00" + bytes(60))),
        ActiveContent,
        "active_content",
    ),
    (
        "executable-with-innocent-name",
        lambda: pdf_with(attach("annexe.pdf", b"\x7fELF\x02\x01\x01" + bytes(60))),
        ActiveContent,
        "active_content",
    ),
    (
        "png-bomb",
        lambda: png_header_only(100_000, 100_000),
        DecompressionBomb,
        "decompression_bomb",
    ),
    (
        "gif",
        lambda: encode(draw_page(mode="P"), "GIF"),
        UnsupportedMediaType,
        "unsupported_media_type",
    ),
    (
        "docx",
        lambda: b"PK\x03\x04" + b"[Content_Types].xml" + bytes(100),
        UnsupportedMediaType,
        "unsupported_media_type",
    ),
    (
        "random-bytes",
        lambda: random.Random(7).randbytes(4096),
        UnsupportedMediaType,
        "unsupported_media_type",
    ),
]


@pytest.mark.parametrize(
    ("make", "error", "code"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_refused_for_quarantine(
    make: Callable[[], bytes], error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as caught:
        probe(make())

    assert isinstance(caught.value, BadInput)  # the caller quarantines it
    assert caught.value.code == code


def test_errors_are_also_the_archive_kinds() -> None:
    with pytest.raises(EmptyFile):
        probe(b"")
    with pytest.raises(EncryptedPdf):
        probe(encrypted_pdf())
    with pytest.raises(CorruptPdf):
        probe(b"%PDF-1.4\nnot a pdf at all")


def test_active_content_names_what_it_found() -> None:
    with pytest.raises(ActiveContent) as caught:
        probe(pdf_with(attach("setup.exe", b"MZ" + bytes(62))))

    findings = caught.value.data["findings"]
    assert any("setup.exe" in finding and "MZ" in finding for finding in findings)


def test_a_harmless_attachment_is_not_active_content() -> None:
    xml = b"<?xml version='1.0'?><Invoice>FA-2026-0042</Invoice>"

    found = probe(pdf_with(attach("factur-x.xml", xml)))

    assert found.format == "scan-pdf"


def test_bomb_is_refused_from_the_header() -> None:
    with pytest.raises(DecompressionBomb) as caught:
        probe(png_header_only(100_000, 100_000))

    data = caught.value.data
    assert (data["width"], data["height"], data["page"]) == (100_000, 100_000, 1)


@pytest.mark.parametrize("make", [png, jpeg], ids=["png", "jpeg"])
def test_the_pixel_limit_is_ours(make: Callable[[Image.Image], bytes]) -> None:
    data = make(draw_page(size=(600, 800)))

    with pytest.raises(DecompressionBomb) as caught:
        probe(data, max_pixels=100_000)
    assert (caught.value.data["width"], caught.value.data["height"]) == (600, 800)
    assert probe(data, max_pixels=480_000).pages == 1


def test_each_tiff_page_is_checked_against_the_limit() -> None:
    data = multipage_tiff([(draw_page(size=(100, 100)), "raw"), (draw_page(), "tiff_lzw")])

    with pytest.raises(DecompressionBomb) as caught:
        probe(data, max_pixels=50_000)
    assert caught.value.data["page"] == 2


# --- compare_pages: the pixel proof, on hand-made results ----------------------------------


def test_a_lossless_wrap_is_proven_page_by_page() -> None:
    frames = [draw_page(seed=1), draw_page(mode="L", seed=2)]
    source = multipage_tiff([(frames[0], "tiff_lzw"), (frames[1], "tiff_adobe_deflate")])

    proofs = compare_pages(source, probe(source), wrap(png(frames[0]), png(frames[1])))

    assert [(p.page, p.mode, p.width, p.height) for p in proofs] == [
        (1, "RGB", 600, 800),
        (2, "L", 600, 800),
    ]
    assert [p.pixel_sha256 for p in proofs] == [sha256(frame) for frame in frames]
    assert all(p.dpi == (300, 300) and p.encoding == "FlateDecode" for p in proofs)


def test_a_page_recompressed_lossy_is_a_pixel_mismatch() -> None:
    frames = [draw_page(seed=1), draw_page(seed=2)]
    source = multipage_tiff([(frames[0], "tiff_lzw"), (frames[1], "tiff_lzw")])
    lossy = wrap(png(frames[0]), jpeg(frames[1], quality=95))

    with pytest.raises(PixelMismatch) as caught:
        compare_pages(source, probe(source), lossy)

    assert caught.value.data == {"page": 2, "what": "pixels"}
    assert "page 2" in str(caught.value)
    assert not isinstance(caught.value, BadInput)
    assert isinstance(caught.value, CaptureError)


def test_bitonal_stored_as_grey_is_a_mismatch_even_with_the_same_looks() -> None:
    page = draw_page(mode="1")
    source = multipage_tiff([(page, "group4")])
    # The same black and white pixels, as 8-bit grey: no normalisation may hide that.
    grey = wrap(png(page.convert("L")))

    with pytest.raises(PixelMismatch) as caught:
        compare_pages(source, probe(source), grey)

    assert caught.value.data == {"page": 1, "what": "mode"}


def test_a_jpeg_must_keep_its_bytes_not_only_its_pixels() -> None:
    source = jpeg(draw_page())
    with Image.open(io.BytesIO(source)) as decoded:
        same_pixels_as_png = wrap(png(decoded.convert("RGB")))

    with pytest.raises(PixelMismatch) as caught:
        compare_pages(source, probe(source), same_pixels_as_png)

    assert caught.value.data == {"page": 1, "what": "jpeg bytes"}


def test_a_changed_resolution_is_refused() -> None:
    source = png(draw_page())

    with pytest.raises(ResolutionMismatch) as caught:
        compare_pages(source, probe(source), wrap(source, dpi=(150, 150)))

    assert caught.value.data == {"page": 1, "what": "resolution"}
    assert isinstance(caught.value, PixelMismatch)


def test_a_missing_page_is_refused() -> None:
    frames = [draw_page(seed=1), draw_page(seed=2)]
    source = multipage_tiff([(frames[0], "raw"), (frames[1], "raw")])

    with pytest.raises(PixelMismatch) as caught:
        compare_pages(source, probe(source), wrap(png(frames[0])))

    assert caught.value.data == {"page": None, "what": "page count"}


def test_a_rasterised_born_digital_pdf_is_refused() -> None:
    source = born_digital_pdf()
    document = pdfium.PdfDocument(source)
    try:
        rendering = document[0].render(scale=2).to_pil()
    finally:
        document.close()

    with pytest.raises(PixelMismatch) as caught:
        compare_pages(source, probe(source), wrap(png(rendering), dpi=(144, 144)))

    assert caught.value.data == {"page": 1, "what": "content"}


def test_sixteen_bit_colour_is_refused_before_any_work() -> None:
    data = rgb48_png()
    found = probe(data)
    assert found.page_info[0].mode == "RGB;16"

    with pytest.raises(LosslessConversionImpossible) as caught:
        convert(data, found, ocr=False)

    assert caught.value.data["page"] == 1
    assert "16-bit" in caught.value.data["reason"]


# --- convert: real OCRmyPDF runs ---------------------------------------------------------


def assert_pdfa(result: Conversion) -> None:
    assert result.pdfa_valid, result.pdfa_messages
    assert result.pdfa_messages == ()
    assert pdfa_claim(result.pdf) == "2B"


@runs_ocrmypdf
def test_rgb_png_stays_rgb_pixel_identical_and_searchable() -> None:
    page = draw_page()
    data = png(page)

    result = convert(data, probe(data))

    assert_same_pixels(page, decoded_page(result.pdf, 1))
    (proof,) = result.pages
    assert (proof.page, proof.mode, proof.width, proof.height) == (1, "RGB", 600, 800)
    assert proof.pixel_sha256 == sha256(page)
    assert proof.encoding == "FlateDecode"
    assert proof.dpi == pytest.approx((300, 300), rel=1e-3)
    with pikepdf.open(io.BytesIO(result.pdf)) as pdf:
        box = pdf.pages[0].mediabox  # 600 × 800 px at 300 dpi
        assert (float(box[2]), float(box[3])) == pytest.approx((144, 192), abs=0.01)
    assert_pdfa(result)
    assert "FACTURE" in result.text[0] and "ACME" in result.text[0]
    assert "ACME" in pdf_text(result.pdf)  # the invisible text layer is in the PDF
    assert result.ocr_languages == "fra+eng"
    assert result.tools["ocr_path"] == "tesseract-sandwich"
    assert "pypdfium2" not in result.tools  # OCRmyPDF did not run, only its text renderer
    assert result.tools["ocrmypdf"] == importlib.metadata.version("ocrmypdf")
    assert result.tools["fpdf2"] == importlib.metadata.version("fpdf2")
    assert result.tools["tesseract"][0].isdigit()
    assert result.tools["img2pdf"] == importlib.metadata.version("img2pdf")


@runs_ocrmypdf
def test_multipage_tiff_keeps_every_page_and_reads_each() -> None:
    frames = [
        draw_page(("Page un", "FACTURE"), seed=1),
        draw_page(("Page deux", "AVOIR"), mode="L", seed=2),
        draw_page(("Page trois", "RELANCE"), seed=3),
    ]
    data = multipage_tiff(
        [(frames[0], "tiff_lzw"), (frames[1], "tiff_adobe_deflate"), (frames[2], "raw")]
    )

    result = convert(data, probe(data))

    for number, frame in enumerate(frames, 1):
        assert_same_pixels(frame, decoded_page(result.pdf, number))
    assert [p.pixel_sha256 for p in result.pages] == [sha256(f) for f in frames]
    assert [p.mode for p in result.pages] == ["RGB", "L", "RGB"]
    assert len(result.text) == 3
    for text, word in zip(result.text, ("FACTURE", "AVOIR", "RELANCE"), strict=True):
        assert word in text
    assert_pdfa(result)


LOSSLESS_CASES: list[tuple[str, Callable[[], bytes], str, str]] = [
    (
        "grey-png-150-dpi",
        lambda: png(draw_page(mode="L"), dpi=(150, 150)),
        "FlateDecode",
        "pikepdf",
    ),
    (
        "bitonal-g4-tiff",
        lambda: multipage_tiff([(draw_page(mode="1"), "group4")]),
        "CCITTFaxDecode",
        "pikepdf",
    ),
    ("palette-png", lambda: png(draw_page(mode="P")), "FlateDecode", "pikepdf"),
    (
        "palette-png-with-transparency",
        lambda: png(draw_page(mode="P"), transparency=0),
        "FlateDecode",
        "ocrmypdf",
    ),
    ("rgba-png", lambda: png(draw_page(mode="RGBA")), "FlateDecode", "ocrmypdf"),
]


@runs_ocrmypdf
@pytest.mark.parametrize(
    ("make", "encoding", "path"),
    [case[1:] for case in LOSSLESS_CASES],
    ids=[case[0] for case in LOSSLESS_CASES],
)
def test_other_modes_are_kept_exactly(make: Callable[[], bytes], encoding: str, path: str) -> None:
    data = make()
    (source,) = open_frames(data)
    found = probe(data)

    result = convert(data, found, ocr=False)

    assert result.tools["ocr_path"] == path
    (proof,) = result.pages
    assert (proof.mode, proof.encoding) == (source.mode, encoding)
    assert proof.dpi == found.page_info[0].dpi  # checked against the page size
    converted = decoded_page(result.pdf, 1)
    if source.mode == "P":  # compared through the palette: same colour at every pixel
        expanded = "RGBA" if "transparency" in source.info else "RGB"
        source, converted = source.convert(expanded), converted.convert(expanded)
    assert_same_pixels(source, converted)
    assert proof.pixel_sha256 == sha256(source)
    assert result.text == ("",)
    assert result.ocr_languages == ""
    assert_pdfa(result)


@runs_ocrmypdf
def test_jpeg_keeps_its_exact_bytes() -> None:
    data = jpeg(draw_page())

    result = convert(data, probe(data), ocr=False)

    raw, image_filter = raw_image_bytes(result.pdf, 1)
    assert raw == data
    assert image_filter == pikepdf.Name.DCTDecode
    assert result.pages[0].encoding == "DCTDecode passthrough"
    assert result.tools["ocr_path"] == "pikepdf"
    assert "ocrmypdf" not in result.tools and "tesseract" not in result.tools
    assert_pdfa(result)


@runs_ocrmypdf
def test_cmyk_jpeg_is_kept_and_recorded_as_not_pdfa() -> None:
    # PDF/A needs a CMYK output intent for DeviceCMYK; converting colours is not allowed.
    data = jpeg(draw_page(mode="CMYK"))

    result = convert(data, probe(data), ocr=False)

    assert raw_image_bytes(result.pdf, 1)[0] == data
    assert result.pages[0].mode == "CMYK"
    assert result.tools["ocr_path"] == "ocrmypdf"
    assert "CMYK" in result.tools["fast_path_refused"]
    assert not result.pdfa_valid
    assert any("DeviceCMYK" in message for message in result.pdfa_messages)


@runs_ocrmypdf
def test_scan_pdf_images_pass_through_untouched() -> None:
    pages = [draw_page(seed=1), draw_page(mode="1", seed=2)]
    data = wrap(png(pages[0]), multipage_tiff([(pages[1], "group4")]))
    found = probe(data)
    assert found.format == "scan-pdf"

    result = convert(data, found, ocr=False)

    assert [p.encoding for p in result.pages] == [
        "FlateDecode passthrough",
        "CCITTFaxDecode passthrough",
    ]
    assert [p.pixel_sha256 for p in result.pages] == [sha256(p) for p in pages]
    for number, page in enumerate(pages, 1):
        assert_same_pixels(page, decoded_page(result.pdf, number))
        assert raw_image_bytes(result.pdf, number)[0] == raw_image_bytes(data, number)[0]
    assert_pdfa(result)


@runs_ocrmypdf
def test_permissions_only_encryption_is_removed_from_the_copy() -> None:
    data = owner_only_encrypted_pdf()

    result = convert(data, probe(data), ocr=False)

    with pikepdf.open(io.BytesIO(result.pdf)) as pdf:
        assert not pdf.is_encrypted
    assert result.pages[0].encoding == "FlateDecode passthrough"
    assert_pdfa(result)


@runs_ocrmypdf
def test_born_digital_pdf_keeps_its_text_unrasterised() -> None:
    data = born_digital_pdf()

    result = convert(data, probe(data))

    assert result.pages == ()
    assert result.text == ("",)  # OCR skipped: the page already has text
    assert image_counts(result.pdf) == [0]  # nothing was rasterised
    assert contents(data, 1) in contents(result.pdf, 1)
    assert "Facture FA-2026-0042 ACME SAS" in pdf_text(result.pdf)
    assert_pdfa(result)


@runs_ocrmypdf
def test_born_digital_pdf_that_cannot_be_pdfa_is_recorded_not_raised() -> None:
    data = helvetica_pdf()

    result = convert(data, probe(data), ocr=False)

    assert not result.pdfa_valid
    assert any("not embedded" in message for message in result.pdfa_messages)
    assert "Facture FA-2026-0042" in pdf_text(result.pdf)


@runs_ocrmypdf
@pytest.mark.parametrize(
    ("make", "tool"),
    [
        (lambda: png(draw_page(size=(300, 400))), "tesseract"),
        (lambda: jpeg(draw_page(mode="CMYK", size=(300, 400))), "OCRmyPDF"),
    ],
    ids=["fast-path", "ocrmypdf"],
)
def test_an_ocr_failure_is_reported_with_its_log(make: Callable[[], bytes], tool: str) -> None:
    data = make()

    with pytest.raises(ConversionFailed) as caught:
        convert(data, probe(data), languages="zzz")

    assert caught.value.code == "conversion_failed"
    assert str(caught.value).startswith(f"{tool} failed")
    assert caught.value.data["exit_code"] not in (None, 0)
    assert "zzz" in caught.value.data["stderr_tail"]


@runs_ocrmypdf
def test_a_conversion_out_of_time_is_stopped() -> None:
    data = png(draw_page(size=(300, 400)))

    with pytest.raises(ConversionTimeout) as caught:
        convert(data, probe(data), timeout=0.05)

    assert caught.value.code == "conversion_timeout"
    assert caught.value.data["timeout"] == 0.05


def test_a_tesseract_out_of_time_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "pid"
    stuck = tmp_path / "tesseract"
    stuck.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 300\n")
    stuck.chmod(0o755)
    monkeypatch.setattr(_tesseract, "_program", lambda: str(stuck))
    data = png(draw_page(size=(300, 400)))

    with pytest.raises(ConversionTimeout) as caught:
        convert(data, probe(data), timeout=2)

    assert str(caught.value).startswith("tesseract did not finish within 2 s")
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(pid, 0)


# --- convert: the fast path and when it is not taken ---------------------------------------


FAST_CASES: list[tuple[str, Callable[[], bytes], str]] = [
    ("png", lambda: png(draw_page()), "FlateDecode"),
    ("jpeg", lambda: jpeg(draw_page()), "DCTDecode passthrough"),
    ("tiff-lzw", lambda: multipage_tiff([(draw_page(), "tiff_lzw")]), "FlateDecode"),
    ("grey-png", lambda: png(draw_page(mode="L")), "FlateDecode"),
    ("bitonal-png", lambda: png(draw_page(mode="1")), "FlateDecode"),
    ("palette-png", lambda: png(draw_page(mode="P")), "FlateDecode"),
]


@runs_ocrmypdf
@pytest.mark.parametrize(
    ("make", "encoding"),
    [case[1:] for case in FAST_CASES],
    ids=[case[0] for case in FAST_CASES],
)
def test_image_scans_take_the_fast_path(make: Callable[[], bytes], encoding: str) -> None:
    data = make()
    (source,) = open_frames(data)

    result = convert(data, probe(data))

    assert result.tools["ocr_path"] == "tesseract-sandwich"
    assert "fast_path_refused" not in result.tools
    assert "pypdfium2" not in result.tools
    assert_pdfa(result)
    (proof,) = result.pages
    assert proof.encoding == encoding
    converted = decoded_page(result.pdf, 1)
    if source.mode == "P":
        source, converted = source.convert("RGB"), converted.convert("RGB")
    assert_same_pixels(source, converted)
    assert "FACTURE" in result.text[0] and "ACME" in result.text[0]
    assert "ACME" in pdf_text(result.pdf)
    assert image_counts(result.pdf) == [1]  # the text layer draws no image
    if encoding.startswith("DCTDecode"):
        assert raw_image_bytes(result.pdf, 1)[0] == data


@runs_ocrmypdf
@pytest.mark.parametrize("dpi", [(300, 300), (150, 150), None], ids=["300", "150", "none"])
def test_the_text_layer_lies_on_the_words(dpi: tuple[int, int] | None) -> None:
    # Without a resolution, tesseract guesses one and img2pdf assumes another: the text
    # page is scaled onto the image page, so the words still land where they are drawn.
    data = png(draw_page(), dpi=dpi)
    result = convert(data, probe(data))
    with pikepdf.open(io.BytesIO(result.pdf)) as pdf:
        box = pdf.pages[0].mediabox
        width, height = float(box[2]), float(box[3])
    scale = width / 600  # points per pixel

    (page,) = words_from_pdf(result.pdf)

    acme = next(word for word in page.words if word.text == "ACME")
    # Drawn at x = 40 px, the second line's top at y = 120 px from the top of the page.
    assert acme.bbox[0] == pytest.approx(40 * scale, abs=6 * scale)
    assert height - acme.bbox[3] == pytest.approx(128 * scale, abs=14 * scale)
    assert result.tools["ocr_path"] == "tesseract-sandwich"


@runs_ocrmypdf
def test_a_multipage_tiff_is_read_page_by_page_in_parallel() -> None:
    frames = [
        draw_page(("Page un", "FACTURE"), seed=1),
        draw_page(("Page deux", "AVOIR"), mode="1", seed=2),
        draw_page(("Page trois", "RELANCE"), mode="L", seed=3),
    ]
    data = multipage_tiff([(frames[0], "tiff_lzw"), (frames[1], "group4"), (frames[2], "raw")])

    result = convert(data, probe(data), jobs=2)

    assert result.tools["ocr_path"] == "tesseract-sandwich"
    for text, word in zip(result.text, ("FACTURE", "AVOIR", "RELANCE"), strict=True):
        assert word in text
    assert [p.encoding for p in result.pages] == ["FlateDecode", "CCITTFaxDecode", "FlateDecode"]
    for number, frame in enumerate(frames, 1):
        assert_same_pixels(frame, decoded_page(result.pdf, number))
    assert_pdfa(result)


@runs_ocrmypdf
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: jpeg(draw_page(mode="CMYK")), "colour mode CMYK"),
        (lambda: png(draw_page(mode="P"), transparency=0), "transparent palette"),
    ],
    ids=["cmyk-jpeg", "palette-with-transparency"],
)
def test_unusual_modes_go_through_ocrmypdf(make: Callable[[], bytes], reason: str) -> None:
    data = make()

    result = convert(data, probe(data))

    assert result.tools["ocr_path"] == "ocrmypdf"
    assert reason in result.tools["fast_path_refused"]
    assert result.tools["ocrmypdf"] == importlib.metadata.version("ocrmypdf")
    assert "ACME" in result.text[0]
    assert len(result.pages) == 1  # and the pixel proof ran on OCRmyPDF's result


@runs_ocrmypdf
def test_an_exif_rotated_image_goes_through_ocrmypdf() -> None:
    # img2pdf turns the orientation into /Rotate; tesseract would read the pixels unrotated.
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    data = png(draw_page(size=(300, 400)), exif=exif)

    result = convert(data, probe(data))

    assert result.tools["ocr_path"] == "ocrmypdf"
    assert "EXIF orientation" in result.tools["fast_path_refused"]
    with pikepdf.open(io.BytesIO(result.pdf)) as pdf:
        assert int(pdf.pages[0].obj.get("/Rotate", 0)) == 90
    assert_same_pixels(draw_page(size=(300, 400)), decoded_page(result.pdf, 1))


@runs_ocrmypdf
def test_a_fast_result_that_is_not_pdfa_goes_through_ocrmypdf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_sandwich, "prepare", lambda *args, **kwargs: None)  # no declarations
    data = png(draw_page())

    result = convert(data, probe(data))

    assert result.tools["ocr_path"] == "ocrmypdf"
    assert "PDF/A-2b validation" in result.tools["fast_path_refused"]
    assert_pdfa(result)
    assert_same_pixels(draw_page(), decoded_page(result.pdf, 1))


@runs_ocrmypdf
def test_without_tesseract_the_fast_path_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tesseract, "_program", lambda: None)
    data = png(draw_page(size=(300, 400)))

    result = convert(data, probe(data))

    assert result.tools["ocr_path"] == "ocrmypdf"
    assert result.tools["fast_path_refused"] == "tesseract is not installed"


def test_tool_versions_names_every_tool() -> None:
    versions = tool_versions()

    assert set(versions) == {
        "ocrmypdf",
        "tesseract",
        "img2pdf",
        "pikepdf",
        "qpdf",
        "pypdfium2",
        "fpdf2",
        "pillow",
    }
    assert versions["img2pdf"] == importlib.metadata.version("img2pdf")
    assert "missing" not in versions.values()


def test_probe_result_is_immutable() -> None:
    found: ScanProbe = probe(png(draw_page(size=(100, 100))))

    with pytest.raises(AttributeError):
        found.pages = 2


def test_a_worker_may_skip_the_full_decode_but_intake_may_not() -> None:
    damaged = truncated(png(draw_page()))
    with pytest.raises(CorruptImage):
        probe(damaged)
    found = probe(damaged, decode=False)  # header facts only: for bytes already probed
    assert found.format == "scan-png" and found.pages == 1
