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
