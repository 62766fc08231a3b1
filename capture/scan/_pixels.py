"""The decoded pixels of a page, in a form that can be compared exactly, and their fingerprint.

Private to :mod:`capture.scan`. :func:`comparable` is the form the pixel proof compares (a
palette image expanded through its palette, every other exact mode as decoded);
:func:`fingerprint` hashes it. The probe fingerprints each page when it decodes the scan
at intake, so a worker proves its PDF/A against that fingerprint instead of decoding the
source a second time.

A fingerprint says which decoder made it. Lossless codings (Deflate, LZW, CCITT, PackBits,
raw) decode to the same pixels with any correct decoder, so their fingerprint holds
anywhere; a JPEG's pixels depend on the decoder's inverse DCT, so its fingerprint is only
used where the same Pillow and libjpeg would decode it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import PIL
from PIL import Image, features

#: Modes whose ``tobytes()`` is the exact decoded samples (``P`` is compared expanded).
EXACT_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA", "CMYK", "I;16", "I;16B", "I;16L", "I"})
VERIFIABLE_MODES = EXACT_MODES | {"P"}
#: Codings whose decoded samples do not depend on the decoder (Pillow's names).
LOSSLESS_CODINGS = frozenset(
    {
        "deflate",
        "raw",
        "tiff_lzw",
        "tiff_adobe_deflate",
        "tiff_deflate",
        "packbits",
        "group3",
        "group4",
        "tiff_ccitt",
        "tiff_raw_16",
    }
)
LOSSLESS = "lossless"


@dataclass(frozen=True)
class PixelFingerprint:
    """SHA-256 of a page's decoded pixels in :func:`comparable` form."""

    mode: str
    """The compared mode (a palette image's is ``RGB`` or ``RGBA``)."""
    sha256: str
    decoder: str
    """``lossless``, or the decoder that made the pixels (see :func:`decoder_for`)."""

    def usable_here(self) -> bool:
        """Whether pixels decoded in this process can be checked against this fingerprint."""
        return self.decoder in (LOSSLESS, jpeg_decoder())


@functools.cache
def jpeg_decoder() -> str:
    return f"Pillow {PIL.__version__}, libjpeg {features.version('jpg')}"


def decoder_for(coding: str | None) -> str:
    return LOSSLESS if coding in LOSSLESS_CODINGS else jpeg_decoder()


def comparable(image: Image.Image) -> Image.Image | None:
    """The image in a mode whose bytes are its exact samples; ``None`` when there is none.

    A palette image is expanded through its palette (an exact lookup), so that a reordered
    palette is not a difference but a changed colour is; every other mode is kept as
    decoded, so "1" against "L" or "RGB" against "CMYK" is a mismatch, never normalised away.
    """
    if image.mode in ("P", "PA"):
        transparent = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "RGB")
    return image if image.mode in EXACT_MODES else None


def fingerprint(image: Image.Image, coding: str | None) -> PixelFingerprint | None:
    """The fingerprint of a decoded image coded as ``coding`` (``None``: not comparable)."""
    exact = comparable(image)
    if exact is None:
        return None
    return PixelFingerprint(
        mode=exact.mode,
        sha256=hashlib.sha256(exact.tobytes()).hexdigest(),
        decoder=decoder_for(coding),
    )
