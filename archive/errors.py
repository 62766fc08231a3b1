"""Errors of the archive room.

Every error carries a stable ``code`` (used in API problem bodies and CLI messages) and its
data as fields; only the composition root turns them into HTTP responses or exit codes.
"""

from __future__ import annotations

from typing import Any


class ArchiveError(Exception):
    """Root of every error raised by ``archive``."""

    code: str = "archive_error"
    #: HTTP-ish category the composition root maps to a status (400 bad input, 404, 409...).
    status: int = 500

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return self.message


class BadInput(ArchiveError):
    """The bytes received cannot be archived as they are; they go to quarantine."""

    code = "bad_input"
    status = 422


class EmptyFile(BadInput):
    code = "empty_file"


class NotAPdf(BadInput):
    code = "not_a_pdf"


class EncryptedPdf(BadInput):
    code = "encrypted_pdf"


class CorruptPdf(BadInput):
    code = "corrupt_pdf"


class UnknownCompany(ArchiveError):
    code = "unknown_company"
    status = 404


class DocumentNotFound(ArchiveError):
    code = "document_not_found"
    status = 404


class ArtifactNotFound(ArchiveError):
    code = "artifact_not_found"
    status = 404


class AccessDenied(ArchiveError):
    code = "access_denied"
    status = 403


class NotAuthenticated(ArchiveError):
    code = "not_authenticated"
    status = 401


class JournalError(ArchiveError):
    code = "journal_error"


class IntegrityFailure(ArchiveError):
    """Verification found that something does not hold (the report says what)."""

    code = "integrity_failure"
    status = 409
