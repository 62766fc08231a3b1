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

import importlib.metadata
import io
import os
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from capture.errors import (
    ConversionFailed,
    ConversionTimeout,
)
from capture.scan import _sandwich, _tesseract
from capture.scan.convert import Conversion, convert, tool_versions
from capture.scan.probe import probe
from capture.scan.text import words_from_pdf
from tests.capture.scan.images import (
    assert_same_pixels,
    born_digital_pdf,
    contents,
    decoded_page,
    draw_page,
    helvetica_pdf,
    image_counts,
    jpeg,
    multipage_tiff,
    open_frames,
    owner_only_encrypted_pdf,
    pdf_text,
    pdfa_claim,
    png,
    raw_image_bytes,
    runs_ocrmypdf,
    sha256,
    wrap,
)

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
