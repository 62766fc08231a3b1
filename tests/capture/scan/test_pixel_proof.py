"""The pixel proof against the fingerprint the probe took at intake.

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

import pytest
from PIL import Image

from capture.errors import PixelMismatch
from capture.scan._pixels import LOSSLESS, PixelFingerprint, jpeg_decoder
from capture.scan.probe import ScanProbe, probe
from capture.scan.proof import compare_pages
from tests.capture.scan.test_convert import draw_page, jpeg, multipage_tiff, png, wrap


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
