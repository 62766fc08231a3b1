"""Errors of the capture room.

Every error is a :class:`CaptureError` with a stable ``code`` and its data as fields
(``exc.data``). Those that mean "these bytes cannot be taken in as they are" are also
:class:`archive.errors.BadInput`: the caller quarantines the file with the message as its
reason. Only the composition root turns them into HTTP problems or exit codes; nothing
here matches on message text.
"""

from __future__ import annotations

from archive.errors import ArchiveError, BadInput, CorruptPdf, EmptyFile, EncryptedPdf


class CaptureError(ArchiveError):
    """Root of every error raised by ``capture``."""

    code = "capture_error"


class CaptureBadInput(CaptureError, BadInput):
    """Root of the capture errors that send the received bytes to quarantine."""

    code = "capture_bad_input"


class EmptyInput(CaptureBadInput, EmptyFile):
    code = "empty_input"


class UnsafeXml(CaptureBadInput):
    """The XML uses a construct we refuse to process (DTD, entities) or exceeds a limit.

    ``data["reason"]`` is one of ``doctype``, ``too_large``, ``too_deep``.
    """

    code = "unsafe_xml"


class MalformedXml(CaptureBadInput):
    """The bytes are not well-formed XML; ``data`` has ``line`` and ``column`` when known."""

    code = "malformed_xml"


class NotAnInvoice(CaptureBadInput):
    """Neither a Factur-X/ZUGFeRD PDF, nor a CII or UBL invoice or credit note.

    For a PDF without an embedded invoice XML, the caller treats the file as an ordinary
    PDF rather than quarantining it.
    """

    code = "not_an_invoice"


class NoEmbeddedInvoice(NotAnInvoice):
    """A readable PDF without an invoice attachment: an ordinary PDF, not an e-invoice."""

    code = "no_embedded_invoice"


class UnsupportedFormat(CaptureBadInput):
    """A recognised e-invoice format or version that Coffre does not read."""

    code = "unsupported_format"


class InvalidValue(CaptureBadInput):
    """A field's text cannot be read as the type EN 16931 gives it (amount, date...).

    ``data`` has ``field``, ``xpath`` and ``value``.
    """

    code = "invalid_value"


class FacturXError(CaptureBadInput):
    """The PDF side of a Factur-X/ZUGFeRD file cannot be read."""

    code = "facturx_error"


class UnreadablePdf(FacturXError, CorruptPdf):
    """The PDF is truncated or damaged beyond reading."""

    code = "unreadable_pdf"


class ProtectedPdf(FacturXError, EncryptedPdf):
    """The PDF needs a password to be opened."""

    code = "protected_pdf"


# --- Scans and PDFs taken in for conversion (capture.scan) -------------------------------


class UnsupportedMediaType(CaptureBadInput):
    """The bytes are not a TIFF, PNG, JPEG or PDF.

    ``data["media_type"]`` is what the magic bytes suggest (``image/gif``,
    ``application/zip``...) or ``None`` when nothing is recognised.
    """

    code = "unsupported_media_type"


class CorruptImage(CaptureBadInput):
    """The image is truncated or damaged: its pixels cannot all be decoded.

    ``data`` has ``format``, ``page`` (1-based, ``None`` when the header itself is
    unreadable) and ``reason``.
    """

    code = "corrupt_image"


class DecompressionBomb(CaptureBadInput):
    """An image claims more pixels than allowed; refused from its header, before decoding.

    ``data`` has ``page``, ``width``, ``height`` (``None`` when only Pillow's own guard
    knew them) and ``max_pixels``.
    """

    code = "decompression_bomb"


class PasswordProtectedPdf(CaptureBadInput, EncryptedPdf):
    """The PDF cannot be opened without a password."""

    code = "password_protected_pdf"


class DamagedPdf(CaptureBadInput, CorruptPdf):
    """The PDF cannot be read (no trailer, broken page tree...); ``data["reason"]``."""

    code = "damaged_pdf"


class ActiveContent(CaptureBadInput):
    """The PDF carries JavaScript, launch actions or an embedded executable.

    ``data["findings"]`` is a tuple of short descriptions, e.g.
    ``"JavaScript action (obj 7 0)"`` or ``"embedded executable 'setup.exe' (MZ)"``.
    """

    code = "active_content"


class LosslessConversionImpossible(CaptureError):
    """The scan cannot be wrapped into a PDF without altering or unverifiably storing it.

    Not bad input: the original is still archived as received, only no archival PDF/A is
    made. ``data`` has ``page`` (1-based, or ``None`` for the whole file) and ``reason``.
    """

    code = "lossless_conversion_impossible"


class PixelMismatch(CaptureError):
    """A page image of the converted PDF does not decode to exactly the source pixels.

    ``data`` has ``page`` (1-based, ``None`` for the page count) and ``what`` (mode, size,
    pixels, JPEG bytes, resolution...). Never retry: the conversion path is wrong.
    """

    code = "pixel_mismatch"


class ResolutionMismatch(PixelMismatch):
    """The page size in the converted PDF no longer gives the scan's resolution."""

    code = "resolution_mismatch"


class ConversionFailed(CaptureError):
    """OCRmyPDF failed, or its output cannot be read.

    ``data`` has ``exit_code`` and ``exit_name`` (``None`` when OCRmyPDF did not exit with
    an error) and ``stderr_tail`` (the end of its log). Retrying may help.
    """

    code = "conversion_failed"


class ConversionTimeout(ConversionFailed):
    """OCRmyPDF did not finish in time and was killed; ``data["timeout"]`` in seconds."""

    code = "conversion_timeout"
