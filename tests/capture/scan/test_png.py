"""PNG scans written in small chunks, as libpng writes them by default."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from capture.scan import _png
from capture.scan.convert import convert
from capture.scan.probe import probe
from tests.capture.scan.images import draw_page, png


def rechunk(data: bytes, size: int) -> bytes:
    """The same PNG with its image data split into ``size``-byte IDAT chunks."""
    out, idat, written = [data[:8]], b"", False

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    parts = [(kind, data[body : body + length]) for kind, body, length in _png.chunks(data)]
    idat = b"".join(body for kind, body in parts if kind == b"IDAT")
    for kind, body in parts:
        if kind != b"IDAT":
            out.append(chunk(kind, body))
        elif not written:
            out += [chunk(b"IDAT", idat[i : i + size]) for i in range(0, len(idat), size)]
            written = True
    return b"".join(out)


def test_many_idat_chunks_are_joined_into_one_with_the_same_pixels() -> None:
    page = draw_page(size=(1200, 1600), seed=5)
    small = rechunk(png(page), 512)  # a drawn page compresses far better than a scan
    assert sum(kind == b"IDAT" for kind, _, _ in _png.chunks(small)) >= _png.MANY_CHUNKS

    joined = _png.one_idat(small)

    assert [kind for kind, _, _ in _png.chunks(joined)].count(b"IDAT") == 1
    with Image.open(io.BytesIO(joined)) as a, Image.open(io.BytesIO(small)) as b:
        a.verify()  # every chunk's CRC is right
    with Image.open(io.BytesIO(joined)) as a, Image.open(io.BytesIO(small)) as b:
        assert a.tobytes() == b.tobytes() and a.info.get("dpi") == b.info.get("dpi")


def test_few_chunks_are_left_alone() -> None:
    data = png(draw_page(size=(300, 200)))
    assert _png.one_idat(data) is data


def test_a_chunked_scan_converts_on_the_fast_path_pixel_for_pixel() -> None:
    page = draw_page(size=(1240, 1754), seed=6)
    small = rechunk(png(page), 512)
    assert _png.one_idat(small) != small

    result = convert(small, probe(small), ocr=False)

    (proof,) = result.pages
    assert proof.mode == "RGB" and (proof.width, proof.height) == page.size
    assert result.tools["ocr_path"] == "pikepdf"
