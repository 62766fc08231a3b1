"""Write-once object stores: the record of a stored object and the protocol every backend keeps.

This room knows bytes, keys, digests and retention dates; it must not know what the bytes
mean (no invoices, no documents). Backends live in ``local.py`` and ``s3.py``; the rules they
share (key syntax, retention instants, streaming digests) are here so both apply them alike.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from storage.errors import InvalidKey, InvalidRetention

CHUNK_SIZE = 1024 * 1024
"""Bytes read at a time when streaming a source or an object."""

MAX_KEY_BYTES = 1024
"""The S3 limit on key length, applied by every backend so keys stay portable."""

MAX_SEGMENT_BYTES = 200
"""Leaves room under the usual 255-byte file name limit for the local store's sidecar names."""

_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class StoredObject:
    """One stored, locked version of an object, as the store recorded it."""

    key: str
    """'/'-separated relative path of the object."""
    version_id: str
    """Identifier of this version: the S3 VersionId, or an id the local store recorded."""
    size: int
    """Length in bytes."""
    sha256: str
    """Lowercase hex SHA-256 of the bytes, computed while they were written (never recomputed)."""
    retain_until: datetime
    """End of the retention lock, timezone-aware UTC, whole seconds."""
    backend: str
    """``"local"`` or ``"s3"``."""


@dataclass(frozen=True)
class PutItem:
    """One object of a batch given to :meth:`ObjectStore.put_many`."""

    key: str
    """Where to store it (see :func:`validate_key`)."""
    source: bytes | Path
    """The bytes, or a file to stream."""
    content_type: str = "application/octet-stream"
    """Recorded with the object and returned by readers."""


@runtime_checkable
class ObjectStore(Protocol):
    """A write-once store: objects are locked until ``retain_until`` and never overwritten."""

    backend: str

    def put(
        self,
        key: str,
        source: bytes | Path,
        *,
        retain_until: datetime,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        """Store ``source`` under ``key``, locked until ``retain_until`` (must be in the future).

        Idempotent: if ``key`` already holds the same bytes, the existing object is returned
        unchanged (its retention included); different bytes raise ``ObjectExists``. A ``Path``
        is streamed, so memory does not grow with its size.
        """
        ...

    def put_many(self, items: Sequence[PutItem], *, retain_until: datetime) -> list[StoredObject]:
        """Store each item as :meth:`put` would, all locked until ``retain_until``.

        Returns the records in the order of ``items``; when it returns, every object is as
        durable as after :meth:`put`. Backends use the batch to save round trips or disk
        flushes. Not atomic: when it raises, some items may be stored (write-once, so a
        retry with identical bytes is idempotent). Keys must be distinct (``InvalidKey``).
        """
        ...

    def get(self, key: str, version_id: str | None = None) -> bytes:
        """The whole object in memory; prefer :meth:`open` for large objects."""
        ...

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """A streaming reader, to be used as a context manager."""
        ...

    def stat(self, key: str, version_id: str | None = None) -> StoredObject:
        """The record of a version: digest as recorded at write time, retention from the lock."""
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` currently holds an object."""
        ...

    def delete(self, key: str, version_id: str | None = None) -> None:
        """Delete a version whose retention has passed; ``ObjectLocked`` before that."""
        ...

    def extend_retention(
        self, key: str, version_id: str | None, retain_until: datetime
    ) -> StoredObject:
        """Move the lock's end later (same date is a no-op); earlier raises ``ObjectLocked``."""
        ...

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (plain string prefix), in lexicographic order."""
        ...

    def check(self) -> None:
        """Raise ``StoreUnavailable`` (or ``StoreMisconfigured``) if the store cannot be used."""
        ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a portable relative path, else raise :class:`InvalidKey`.

    Segments may not be empty, ``.``/``..`` nor start with a dot: dot-names are reserved for
    the local store's sidecars and temporary files, and every backend applies the same rule so
    an archive can move between them.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey("object key is empty", key=str(key), reason="empty")
    if key.startswith("/"):
        raise InvalidKey(f"object key {key!r} is absolute", key=key, reason="absolute")
    if _FORBIDDEN_CHARS.search(key):
        raise InvalidKey(
            f"object key {key!r} contains a control character or backslash",
            key=key,
            reason="forbidden_character",
        )
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(
            f"object key is longer than {MAX_KEY_BYTES} bytes", key=key, reason="too_long"
        )
    for segment in key.split("/"):
        if not segment:
            raise InvalidKey(
                f"object key {key!r} has an empty segment", key=key, reason="empty_segment"
            )
        if segment in (".", ".."):
            raise InvalidKey(
                f"object key {key!r} has a '{segment}' segment", key=key, reason="dot_segment"
            )
        if segment.startswith("."):
            raise InvalidKey(
                f"object key {key!r} has a segment starting with '.' (reserved)",
                key=key,
                reason="hidden_segment",
            )
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidKey(
                f"object key {key!r} has a segment longer than {MAX_SEGMENT_BYTES} bytes",
                key=key,
                reason="segment_too_long",
            )
    return key


def validate_batch(items: Sequence[PutItem]) -> None:
    """Check every key of a ``put_many`` batch, and that no key appears twice."""
    seen: set[str] = set()
    for item in items:
        validate_key(item.key)
        if item.key in seen:
            raise InvalidKey(
                f"object key {item.key!r} appears twice in one batch",
                key=item.key,
                reason="duplicate_in_batch",
            )
        seen.add(item.key)


def retention_instant(retain_until: datetime, *, key: str | None) -> datetime:
    """``retain_until`` in UTC, rounded *up* to the whole second.

    S3 servers keep whole seconds (SeaweedFS truncates), so rounding up is the only way to
    store exactly what we report without ever shortening the requested lock.
    """
    if not isinstance(retain_until, datetime) or retain_until.tzinfo is None:
        raise InvalidRetention(
            "retain_until must be a timezone-aware datetime",
            key=key,
            retain_until=retain_until,
        )
    instant = retain_until.astimezone(UTC)
    if instant.microsecond:
        instant = instant.replace(microsecond=0) + timedelta(seconds=1)
    return instant


def require_future(retain_until: datetime, now: datetime, *, key: str) -> None:
    """Refuse a lock that would already be over: S3 rejects it, so the local store does too."""
    if retain_until <= now:
        raise InvalidRetention(
            f"retain_until {retain_until.isoformat()} is not in the future",
            key=key,
            retain_until=retain_until,
        )


class HashingReader:
    """Wraps a binary stream and computes SHA-256 and length of everything read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)
        self.size += len(data)
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def sha256_of_file(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
