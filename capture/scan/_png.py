"""PNG chunk walking for the wrap into PDF (private to :mod:`capture.scan.convert`).

img2pdf copies a PNG's compressed image data (its IDAT chunks, concatenated) into the PDF
as it is, but it concatenates them one chunk at a time, which costs time in the square of
the number of chunks: a 300-dpi A4 colour scan written with libpng's default 8 kB chunks
(as most scanning software does) took 3 s there, more than its OCR. :func:`one_idat` hands
img2pdf the same PNG with its IDAT chunks joined into one: the compressed stream is the
same bytes, so the pixels are, and the pixel proof checks the result anyway. The archived
original is never touched; this copy only feeds img2pdf.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Fewer IDAT chunks than this are left as they are (img2pdf copes well with them).
MANY_CHUNKS = 32
_EXIF_KEYWORD = b"Raw profile type exif\0"


def chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(kind, start of data, length)`` of each chunk up to IEND; stops at anything that
    does not fit (the probe already refused damaged files)."""
    position = len(SIGNATURE)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        body = position + 8
        if body + length + 4 > len(data):
            return
        yield kind, body, length
        if kind == b"IEND":
            return
        position = body + length + 4


def may_carry_exif(data: bytes) -> bool:
    """Whether a PNG has an ``eXIf`` chunk, or a text chunk where Pillow looks for EXIF.

    Walks the chunk headers only; anything unexpected answers ``True`` (ask Pillow).
    """
    for kind, body, _ in chunks(data):
        if kind == b"eXIf":
            return True
        if kind in (b"tEXt", b"zTXt", b"iTXt") and data.startswith(_EXIF_KEYWORD, body):
            return True
        if kind == b"IEND":
            return False
    return True


def one_idat(data: bytes) -> bytes:
    """``data`` with its IDAT chunks joined into one (``data`` itself when they are few,
    not consecutive, or the file does not end where its IEND says)."""
    found = list(chunks(data))
    idat = [(body, length) for kind, body, length in found if kind == b"IDAT"]
    if len(idat) < MANY_CHUNKS or not found or found[-1][0] != b"IEND":
        return data
    first = next(i for i, (kind, _, _) in enumerate(found) if kind == b"IDAT")
    if any(kind != b"IDAT" for kind, _, _ in found[first : first + len(idat)]):
        return data  # other chunks between image data chunks: leave it to img2pdf
    payload = b"".join(data[body : body + length] for body, length in idat)
    if len(payload) >= 2**31:  # more than one PNG chunk may hold
        return data
    start = found[first][1] - 8
    _, last_body, last_length = found[first + len(idat) - 1]
    end = last_body + last_length + 4
    crc = zlib.crc32(payload, zlib.crc32(b"IDAT"))
    merged = len(payload).to_bytes(4, "big") + b"IDAT" + payload + crc.to_bytes(4, "big")
    return data[:start] + merged + data[end:]
