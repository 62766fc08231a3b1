"""Archive room: the document registry, fingerprints, seals, RFC 3161 timestamps and the
built-in timestamp service, evidence, retention, the hash-chained journal, verification.

It knows nothing of OCR, workflow or accounting. Other rooms use the names below.
"""

from archive.access import Principal, authenticate, create_token
from archive.context import Archive, retention_until
from archive.deposit import (
    Completion,
    DepositOutcome,
    Derived,
    Flag,
    Submission,
    complete,
    deposit,
    fail,
    receive,
)
from archive.errors import ArchiveError, BadInput
from archive.journal import Journal
from archive.models import Company, Document, DocumentKind, DocumentState, Role
from archive.service import describe, read_artifact
from archive.verify import VerificationReport, verify_document, verify_file

__all__ = [
    "Archive",
    "ArchiveError",
    "BadInput",
    "Company",
    "Completion",
    "DepositOutcome",
    "Derived",
    "Document",
    "DocumentKind",
    "DocumentState",
    "Flag",
    "Journal",
    "Principal",
    "Role",
    "Submission",
    "VerificationReport",
    "authenticate",
    "complete",
    "create_token",
    "deposit",
    "describe",
    "fail",
    "read_artifact",
    "receive",
    "retention_until",
    "verify_document",
    "verify_file",
]
