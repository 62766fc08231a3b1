"""Errors of the object stores: one root, a stable ``code`` per kind, data fields for callers.

Callers branch on the class (or ``code``), never on the message. Only the composition root
turns these into HTTP problems or exit codes.
"""

from __future__ import annotations

from datetime import datetime


class StorageError(Exception):
    """Root of every error raised by an object store."""

    code: str = "storage_error"

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        version_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        """The object key concerned, when there is one."""
        self.version_id = version_id
        """The object version concerned, when known."""


class InvalidKey(StorageError):
    """The key is not a relative '/'-separated path the store accepts."""

    code = "invalid_key"

    def __init__(self, message: str, *, key: str, reason: str) -> None:
        super().__init__(message, key=key)
        self.reason = reason
        """Short machine-readable reason, e.g. ``"absolute"``, ``"dot_segment"``."""


class InvalidRetention(StorageError):
    """The retention date is naive or not in the future."""

    code = "invalid_retention"

    def __init__(
        self,
        message: str,
        *,
        key: str | None,
        retain_until: datetime,
        version_id: str | None = None,
    ) -> None:
        super().__init__(message, key=key, version_id=version_id)
        self.retain_until = retain_until


class ObjectExists(StorageError):
    """A put on a key that already holds different bytes; the existing object is untouched."""

    code = "object_exists"

    def __init__(
        self,
        message: str,
        *,
        key: str,
        version_id: str | None,
        existing_sha256: str | None,
        new_sha256: str,
    ) -> None:
        super().__init__(message, key=key, version_id=version_id)
        self.existing_sha256 = existing_sha256
        """Digest recorded for the existing object; None if the store did not write it."""
        self.new_sha256 = new_sha256
        """Digest of the bytes that were refused."""


class ObjectNotFound(StorageError):
    """No such key (or no such version of it)."""

    code = "object_not_found"


class ObjectLocked(StorageError):
    """Delete, overwrite or shortening of retention refused because the object is locked."""

    code = "object_locked"

    def __init__(
        self,
        message: str,
        *,
        key: str,
        version_id: str | None,
        retain_until: datetime | None,
    ) -> None:
        super().__init__(message, key=key, version_id=version_id)
        self.retain_until = retain_until
        """End of the current retention, when known."""


class UnmanagedObject(StorageError):
    """The version exists but was not written by this store (no digest or no COMPLIANCE lock)."""

    code = "unmanaged_object"


class SourceChanged(StorageError):
    """The source file changed while it was being stored."""

    code = "source_changed"


class StoreMisconfigured(StorageError):
    """The store's backing location cannot guarantee write-once (e.g. bucket without lock)."""

    code = "store_misconfigured"


class StoreUnavailable(StorageError):
    """The store cannot be reached or used right now (connection, server or disk problem)."""

    code = "store_unavailable"
