"""probe: what received bytes are, what is refused for quarantine and why."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from PIL import Image

from archive.errors import BadInput, CorruptPdf, EmptyFile, EncryptedPdf
from capture.errors import (
    ActiveContent,
    CorruptImage,
    DamagedPdf,
    DecompressionBomb,
    EmptyInput,
    PasswordProtectedPdf,
    UnsupportedMediaType,
)
from capture.scan.probe import ScanProbe, probe
from tests.capture.scan.images import (
    attach,
    born_digital_pdf,
    draw_page,
    encode,
    encrypted_pdf,
    javascript_open_action,
    jpeg,
    launch_annotation,
    multipage_tiff,
    owner_only_encrypted_pdf,
    pdf_with,
    png,
    png_header_only,
    truncated,
    wrap,
)

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
