"""The pixel proof (capture.scan.proof), on hand-made results and against the fingerprint
the probe took at intake.

Intake decodes every scan in full (to catch truncation) and fingerprints each page; the
worker then proves its PDF/A against that fingerprint instead of decoding the source again.
These tests hold that the fingerprint is what is checked (a wrong one fails the proof),
that both ways prove the same thing, and that a JPEG fingerprint from another decoder is
not trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

import pypdfium2 as pdfium
import pytest
from PIL import Image

from archive.errors import BadInput
from capture.errors import (
    CaptureError,
    LosslessConversionImpossible,
    PixelMismatch,
    ResolutionMismatch,
)
from capture.scan._pixels import LOSSLESS, PixelFingerprint, jpeg_decoder
from capture.scan.convert import convert
from capture.scan.probe import ScanProbe, probe
from capture.scan.proof import compare_pages
from tests.capture.scan.images import (
    born_digital_pdf,
    draw_page,
    jpeg,
    multipage_tiff,
    png,
    rgb48_png,
    sha256,
    wrap,
)


def _forged(found: ScanProbe, page: int, **changes: str) -> ScanProbe:
    pages = list(found.page_info)
    info = pages[page - 1]
    assert info.pixels is not None
    pages[page - 1] = dataclasses.replace(info, pixels=dataclasses.replace(info.pixels, **changes))
    return dataclasses.replace(found, page_info=tuple(pages))


def test_the_probe_fingerprints_each_decoded_page() -> None:
    frames = [draw_page(seed=1), draw_page(mode="L", seed=2), draw_page(mode="1", seed=3)]
    source = multipage_tiff(
        [(frames[0], "tiff_lzw"), (frames[1], "tiff_adobe_deflate"), (frames[2], "group4")]
    )

    found = probe(source)

    assert [info.pixels for info in found.page_info] == [
        PixelFingerprint(frame.mode, hashlib.sha256(frame.tobytes()).hexdigest(), LOSSLESS)
        for frame in frames
    ]
    # Header facts only: nothing decoded, nothing fingerprinted.
    assert all(info.pixels is None for info in probe(source, decode=False).page_info)


def test_a_palette_is_fingerprinted_expanded_and_a_jpeg_with_its_decoder() -> None:
    palette = draw_page().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    encoded = jpeg(draw_page())
    with Image.open(io.BytesIO(encoded)) as decoded:
        jpeg_pixels = hashlib.sha256(decoded.tobytes()).hexdigest()

    (palette_page,) = probe(png(palette)).page_info
    (jpeg_page,) = probe(encoded).page_info

    assert palette_page.mode == "P"
    assert palette_page.pixels == PixelFingerprint(
        "RGB", hashlib.sha256(palette.convert("RGB").tobytes()).hexdigest(), LOSSLESS
    )
    assert jpeg_page.pixels == PixelFingerprint("RGB", jpeg_pixels, jpeg_decoder())


@pytest.mark.parametrize("fingerprinted", [True, False], ids=["fingerprint", "decode-source"])
def test_both_ways_prove_the_same_pages(fingerprinted: bool) -> None:
    frames = [draw_page(seed=1), draw_page(mode="L", seed=2)]
    source = multipage_tiff([(frames[0], "tiff_lzw"), (frames[1], "tiff_adobe_deflate")])
    found = probe(source, decode=fingerprinted)

    proofs = compare_pages(source, found, wrap(png(frames[0]), png(frames[1])))

    assert [p.pixel_sha256 for p in proofs] == [
        hashlib.sha256(frame.tobytes()).hexdigest() for frame in frames
    ]


@pytest.mark.parametrize("fingerprinted", [True, False], ids=["fingerprint", "decode-source"])
def test_a_changed_pixel_fails_either_way(fingerprinted: bool) -> None:
    page = draw_page(seed=4)
    source = png(page)
    changed = page.copy()
    changed.putpixel((10, 10), (0, 0, 0) if page.getpixel((10, 10)) != (0, 0, 0) else (1, 1, 1))

    with pytest.raises(PixelMismatch) as caught:
        compare_pages(source, probe(source, decode=fingerprinted), wrap(png(changed)))

    assert caught.value.data == {"page": 1, "what": "pixels"}


def test_the_fingerprint_is_what_the_proof_checks() -> None:
    frames = [draw_page(seed=1), draw_page(seed=2)]
    source = multipage_tiff([(frames[0], "tiff_lzw"), (frames[1], "tiff_lzw")])
    # A faithful result, checked against a fingerprint that does not match page 2.
    forged = _forged(probe(source), 2, sha256="0" * 64)

    with pytest.raises(PixelMismatch) as caught:
        compare_pages(source, forged, wrap(png(frames[0]), png(frames[1])))

    assert caught.value.data == {"page": 2, "what": "pixels"}


def test_the_fingerprint_mode_is_checked_before_the_pixels() -> None:
    source = png(draw_page())
    forged = _forged(probe(source), 1, mode="L")

    with pytest.raises(PixelMismatch) as caught:
        compare_pages(source, forged, wrap(source))

    assert caught.value.data == {"page": 1, "what": "mode"}


def test_a_jpeg_fingerprint_from_another_decoder_is_not_trusted() -> None:
    source = jpeg(draw_page())
    # Another libjpeg may decode the same bytes to other pixels: this fingerprint is set
    # aside and the source decoded here instead, so its (wrong) hash does not matter.
    elsewhere = _forged(probe(source), 1, decoder="Pillow 0.0, libjpeg 0", sha256="0" * 64)

    (proof,) = compare_pages(source, elsewhere, wrap(source))

    assert proof.encoding == "DCTDecode passthrough"
    with Image.open(io.BytesIO(source)) as decoded:
        assert proof.pixel_sha256 == hashlib.sha256(decoded.tobytes()).hexdigest()
    # The same forged hash with this process's decoder is checked, and fails.
    with pytest.raises(PixelMismatch):
        compare_pages(source, _forged(probe(source), 1, sha256="0" * 64), wrap(source))


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
