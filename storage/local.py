"""Write-once directory store: the embedded default when no S3 Object Lock endpoint is configured.

Layout under ``root``: each object is a read-only file at its key's path, with a read-only
JSON sidecar ``.<name>.meta.json`` beside it (digest, size, retention, content type, version
id). Dot-names are reserved (keys may not use them) for sidecars, temporary files and the
store's lock file.

Publishing is link-based so that concurrent writers of one key (threads or processes) cannot
overwrite each other: the sidecar is claimed first with ``link()`` (which fails if the name
exists), then the data is linked into place. The data file's presence is what makes an object
exist; a sidecar without data (a crash between the two links) is finished by the next put of
identical bytes and still refuses different ones.

Durability: nothing is published before its data and sidecar are flushed (``fsync``), and
``put``/``put_many`` return only after every directory that gained an entry is flushed too.
A batch (``put_many``) flushes its files concurrently and each directory once, which is what
makes storing a document's several objects cheap; ``put`` is a batch of one.

This store protects against mistakes through its own API, not against someone with write
access to the directory: the archive layer re-hashes bytes to detect that. It must not know
what the bytes mean.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from storage.errors import (
    InvalidKey,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    StorageError,
    StoreUnavailable,
)
from storage.objects import (
    CHUNK_SIZE,
    PutItem,
    StoredObject,
    require_future,
    retention_instant,
    sha256_of_file,
    validate_batch,
    validate_key,
)

READ_ONLY = 0o444
_SIDECAR_FORMAT = 1
_LOCK_NAME = ".coffre-store.lock"
SYNC_WORKERS = 4
"""Flushes a batch runs at once (threads): enough to share journal commits, few threads."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Pending:
    """One item of a batch between staging (temporary files written) and publishing."""

    key: str
    data_path: Path
    meta_path: Path
    tmp_data: Path
    tmp_meta: Path | None = None
    sha256: str = ""
    #: What the key already held (same bytes) when staged: nothing new is claimed.
    existing: StoredObject | None = None
    #: The record to claim, when the key was free.
    record: StoredObject | None = None

    def temporaries(self) -> list[Path]:
        return [self.tmp_data] if self.tmp_meta is None else [self.tmp_data, self.tmp_meta]


class LocalWormStore:
    """Objects as read-only files under ``root``; see the module docstring for the layout.

    ``clock`` gives the current instant (timezone-aware); tests inject one to move past a
    retention date without waiting. ``sync_workers`` bounds the concurrent flushes of a
    batch (1: one after the other).
    """

    backend = "local"

    def __init__(
        self,
        root: Path,
        *,
        clock: Callable[[], datetime] = _utcnow,
        sync_workers: int = SYNC_WORKERS,
    ) -> None:
        self.root = Path(root)
        self._clock = clock
        self._sync_workers = sync_workers
        self._sync_pool: ThreadPoolExecutor | None = None
        self._sync_pool_pid = 0
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create store root {self.root}: {exc}") from exc

    # -- writing -------------------------------------------------------------------------

    def put(
        self,
        key: str,
        source: bytes | Path,
        *,
        retain_until: datetime,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        return self.put_many([PutItem(key, source, content_type)], retain_until=retain_until)[0]

    def put_many(self, items: Sequence[PutItem], *, retain_until: datetime) -> list[StoredObject]:
        """Store a batch; see :meth:`ObjectStore.put_many`.

        Every file is written to a temporary name first; then all of them, and the
        directories that gained a subdirectory, are flushed together; then each object is
        published (claim, link); then each directory holding one is flushed once. A
        document's objects cost one flush per file and per directory, not four per object,
        and nothing is published before its bytes, its sidecar and the directory entries
        leading to it are on disk.
        """
        validate_batch(items)
        now = self._now()
        retains = [retention_instant(retain_until, key=item.key) for item in items]
        for item, retain in zip(items, retains, strict=True):
            require_future(retain, now, key=item.key)
        # Directories that gained a subdirectory (flushed before anything is published in
        # it), and those the objects are published in (flushed before returning); once each.
        grown: dict[Path, None] = {}
        homes: dict[Path, None] = {}
        pending: list[_Pending] = []
        published = False
        try:
            for item, retain in zip(items, retains, strict=True):
                data_path, meta_path = self._paths(item.key)
                staged = _Pending(item.key, data_path, meta_path, self._tmp_path(data_path))
                pending.append(staged)
                self._stage(staged, item, retain, grown)
                homes[data_path.parent] = None
            self._fsync_all(
                [(path, False) for p in pending for path in p.temporaries()]
                + [(directory, True) for directory in grown]
            )
            published = True
            return [self._publish(p) for p in pending]
        finally:
            try:
                if published:
                    self._fsync_all([(directory, True) for directory in homes])
            finally:
                for p in pending:
                    for tmp in p.temporaries():  # some may never have been created
                        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                            tmp.unlink()

    def _stage(
        self, pending: _Pending, item: PutItem, retain: datetime, grown: dict[Path, None]
    ) -> None:
        """Write an item's data and sidecar under temporary names (flushed by the caller)."""
        key, data_path = item.key, pending.data_path
        for directory in self._make_parents(data_path.parent, key):
            grown[directory] = None
        if data_path.is_dir():
            raise InvalidKey(
                f"object key {key!r} is already a directory of other objects in this store",
                key=key,
                reason="path_conflict",
            )
        pending.sha256, size = self._write_temp_data(pending.tmp_data, item.source, key)
        sidecar = self._read_sidecar(pending.meta_path)
        if sidecar is not None:
            # Refuse different bytes before anything of the batch is published.
            pending.existing = self._record_if_same(key, sidecar, pending.sha256)
            return
        pending.record = StoredObject(
            key=key,
            version_id=uuid.uuid4().hex,
            size=size,
            sha256=pending.sha256,
            retain_until=retain,
            backend=self.backend,
        )
        pending.tmp_meta = self._tmp_path(data_path)
        content = _sidecar_bytes(pending.record, item.content_type, created_at=self._now())
        self._write_temp_file(pending.tmp_meta, content, key)

    def _publish(self, pending: _Pending) -> StoredObject:
        """Claim the key with the sidecar, then link the data (both already on disk)."""
        key, record, tmp_meta = pending.key, pending.record, pending.tmp_meta
        if pending.existing is not None:
            return self._settle_existing(pending.existing, pending)
        if record is None or tmp_meta is None:
            raise StorageError(f"{key!r} was not staged", key=key)
        try:
            self._link(tmp_meta, pending.meta_path, key)
        except FileExistsError:
            # Another writer claimed the key between our check and our link.
            winner = self._read_sidecar(pending.meta_path)
            if winner is None:
                raise StorageError(
                    f"sidecar of {key!r} vanished while publishing", key=key
                ) from None
            existing = self._record_if_same(key, winner, pending.sha256)
            return self._settle_existing(existing, pending)
        self._publish_data(key, record, pending.tmp_data, pending.data_path, pending.meta_path)
        return record

    def extend_retention(
        self, key: str, version_id: str | None, retain_until: datetime
    ) -> StoredObject:
        validate_key(key)
        retain = retention_instant(retain_until, key=key)
        data_path, meta_path = self._paths(key)
        with self._store_lock():
            record, content_type, created_at = self._load(key, version_id)
            if retain < record.retain_until:
                raise ObjectLocked(
                    f"retention of {key!r} ends {record.retain_until.isoformat()}; "
                    f"it cannot be shortened to {retain.isoformat()}",
                    key=key,
                    version_id=record.version_id,
                    retain_until=record.retain_until,
                )
            if retain == record.retain_until:
                return record
            extended = StoredObject(
                key=record.key,
                version_id=record.version_id,
                size=record.size,
                sha256=record.sha256,
                retain_until=retain,
                backend=self.backend,
            )
            tmp_meta = self._tmp_path(data_path)
            try:
                self._write_temp_file(
                    tmp_meta, _sidecar_bytes(extended, content_type, created_at), key
                )
                self._fsync_path(tmp_meta, directory=False)
                try:
                    os.replace(tmp_meta, meta_path)
                except OSError as exc:
                    raise self._unavailable(exc, key) from exc
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp_meta.unlink()
            self._fsync_dir(meta_path.parent)
            return extended

    def delete(self, key: str, version_id: str | None = None) -> None:
        validate_key(key)
        data_path, meta_path = self._paths(key)
        with self._store_lock():
            sidecar = self._read_sidecar(meta_path)
            if sidecar is None:
                raise ObjectNotFound(f"no object {key!r}", key=key, version_id=version_id)
            record = self._record(key, sidecar)
            if version_id is not None and version_id != record.version_id:
                raise ObjectNotFound(
                    f"no version {version_id!r} of {key!r}", key=key, version_id=version_id
                )
            now = self._now()
            if now < record.retain_until:
                raise ObjectLocked(
                    f"{key!r} is locked until {record.retain_until.isoformat()}",
                    key=key,
                    version_id=record.version_id,
                    retain_until=record.retain_until,
                )
            # Data first: the object stops existing; the sidecar (the claim) goes last.
            for path in (data_path, meta_path):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise self._unavailable(exc, key) from exc
            self._fsync_dir(data_path.parent)

    # -- reading -------------------------------------------------------------------------

    def get(self, key: str, version_id: str | None = None) -> bytes:
        with self.open(key, version_id) as handle:
            return handle.read()

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        validate_key(key)
        self._load(key, version_id)
        data_path, _ = self._paths(key)
        try:
            return data_path.open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {key!r}", key=key, version_id=version_id) from None
        except OSError as exc:
            raise self._unavailable(exc, key) from exc

    def stat(self, key: str, version_id: str | None = None) -> StoredObject:
        validate_key(key)
        record, _, _ = self._load(key, version_id)
        return record

    def content_type(self, key: str, version_id: str | None = None) -> str:
        """The content type recorded at write time."""
        validate_key(key)
        _, content_type, _ = self._load(key, version_id)
        return content_type

    def exists(self, key: str) -> bool:
        validate_key(key)
        data_path, meta_path = self._paths(key)
        return data_path.is_file() and meta_path.is_file()

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        directory, _, _ = prefix.rpartition("/")
        if directory:
            try:
                validate_key(directory)
            except InvalidKey:
                return  # no stored key can live there
        start = self.root / directory if directory else self.root
        base = f"{directory}/" if directory else ""
        for key in self._walk(start, base):
            if key.startswith(prefix):
                yield key

    def check(self) -> None:
        if not self.root.is_dir():
            raise StoreUnavailable(f"store root {self.root} is not a directory")
        probe = self.root / f".check-{secrets.token_hex(8)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"ok")
                os.fsync(fd)
            finally:
                os.close(fd)
            probe.unlink()
        except OSError as exc:
            raise StoreUnavailable(f"store root {self.root} is not writable: {exc}") from exc

    # -- plumbing ------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise StorageError("the store clock returned a naive datetime")
        return now.astimezone(UTC)

    def _paths(self, key: str) -> tuple[Path, Path]:
        data_path = self.root.joinpath(*key.split("/"))
        return data_path, data_path.with_name(f".{data_path.name}.meta.json")

    @staticmethod
    def _tmp_path(data_path: Path) -> Path:
        return data_path.with_name(f".{data_path.name}.tmp-{secrets.token_hex(8)}")

    def _walk(self, directory: Path, base: str) -> Iterator[str]:
        """Keys under ``directory`` in lexicographic order, without listing everything first."""
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StoreUnavailable(f"cannot list {directory}: {exc}") from exc
        # A directory's keys all start with "name/", so sorting it as "name/" keeps the merge
        # in the same order as comparing whole keys (and as S3 listings).
        ordered: list[tuple[str, os.DirEntry[str]]] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                ordered.append((entry.name + "/", entry))
            elif entry.is_file(follow_symlinks=False):
                ordered.append((entry.name, entry))
        ordered.sort(key=lambda item: item[0])
        for _, entry in ordered:
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), f"{base}{entry.name}/")
            elif (directory / f".{entry.name}.meta.json").is_file():
                yield f"{base}{entry.name}"

    def _make_parents(self, directory: Path, key: str) -> list[Path]:
        """Create missing parent directories; return the directories that gained an entry.

        The caller flushes those (and the new directories themselves) before it returns.
        """
        changed: list[Path] = []
        missing: list[Path] = []
        current = directory
        while current != self.root and not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir():
                    raise InvalidKey(
                        f"object key {key!r} needs directory {path.relative_to(self.root)}, "
                        "which is already an object in this store",
                        key=key,
                        reason="path_conflict",
                    ) from None
                continue
            except OSError as exc:
                raise self._unavailable(exc, key) from exc
            changed.append(path.parent)
        return changed

    def _write_temp_data(self, tmp: Path, source: bytes | Path, key: str) -> tuple[str, int]:
        """Write ``source`` to ``tmp`` (fsynced, read-only); return its SHA-256 and size."""
        digest = hashlib.sha256()
        size = 0
        fd = self._create(tmp, key)
        try:
            if isinstance(source, bytes | bytearray | memoryview):
                data = bytes(source)
                digest.update(data)
                size = len(data)
                self._write_all(fd, data, key)
            elif isinstance(source, Path):
                with source.open("rb") as handle:
                    while chunk := handle.read(CHUNK_SIZE):
                        digest.update(chunk)
                        size += len(chunk)
                        self._write_all(fd, chunk, key)
            else:
                raise TypeError(f"source must be bytes or Path, not {type(source).__name__}")
            self._seal(fd, key)
        finally:
            os.close(fd)
        return digest.hexdigest(), size

    def _write_temp_file(self, tmp: Path, data: bytes, key: str) -> None:
        fd = self._create(tmp, key)
        try:
            self._write_all(fd, data, key)
            self._seal(fd, key)
        finally:
            os.close(fd)

    def _create(self, path: Path, key: str) -> int:
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise self._unavailable(exc, key) from exc

    def _write_all(self, fd: int, data: bytes, key: str) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as exc:
            raise self._unavailable(exc, key) from exc

    def _seal(self, fd: int, key: str) -> None:
        """Make a temporary file read-only; it is flushed later, with its batch."""
        try:
            os.fchmod(fd, READ_ONLY)
        except OSError as exc:
            raise self._unavailable(exc, key) from exc

    def _fsync_all(self, paths: list[tuple[Path, bool]]) -> None:
        """Flush files and directories (``(path, is_directory)``), several at a time:
        concurrent flushes share the file system's journal commits and the device's cache
        flushes, so a batch waits for about one of them instead of one per file."""
        if self._sync_workers <= 1 or len(paths) <= 1:
            for path, directory in paths:
                self._fsync_path(path, directory)
            return
        pool = self._pool()
        futures = [pool.submit(self._fsync_path, path, directory) for path, directory in paths]
        wait(futures)  # all of them, even when one fails
        for future in futures:
            future.result()

    def _pool(self) -> ThreadPoolExecutor:
        """The flushing threads, started on first use, and again in a forked child (which
        inherits the executor but not its threads). No lock, so a fork cannot inherit one
        held: two threads racing here at worst start two executors, and one is dropped."""
        pool = self._sync_pool
        if pool is None or self._sync_pool_pid != os.getpid():
            pool = ThreadPoolExecutor(
                max_workers=self._sync_workers, thread_name_prefix="coffre-fsync"
            )
            self._sync_pool, self._sync_pool_pid = pool, os.getpid()
        return pool

    def _fsync_path(self, path: Path, directory: bool) -> None:
        if directory:
            self._fsync_dir(path)
            return
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {path} to flush it: {exc}") from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise StoreUnavailable(f"cannot fsync {path}: {exc}") from exc
        finally:
            os.close(fd)

    def _link(self, source: Path, target: Path, key: str) -> None:
        """Hard-link ``source`` at ``target``; FileExistsError if ``target`` exists."""
        try:
            os.link(source, target)
        except FileExistsError:
            raise
        except OSError as exc:
            raise self._unavailable(exc, key) from exc

    def _publish_data(
        self, key: str, record: StoredObject, tmp_data: Path, data_path: Path, meta_path: Path
    ) -> None:
        try:
            self._link(tmp_data, data_path, key)
        except FileExistsError:
            # Only possible if someone wrote the file behind the store's back, or a concurrent
            # identical put already finished our claim: accept identical bytes only.
            if data_path.is_dir():
                found = None
            else:
                found, _ = sha256_of_file(data_path)
            if found != record.sha256:
                with contextlib.suppress(FileNotFoundError):
                    meta_path.unlink()
                raise StorageError(
                    f"{data_path} exists without a matching sidecar; refusing to publish {key!r}",
                    key=key,
                ) from None

    def _record_if_same(self, key: str, sidecar: dict[str, Any], sha256: str) -> StoredObject:
        """The existing record of ``key`` if it holds ``sha256``; ``ObjectExists`` if not."""
        existing = self._record(key, sidecar)
        if existing.sha256 != sha256:
            raise ObjectExists(
                f"{key!r} already holds different bytes (sha256 {existing.sha256})",
                key=key,
                version_id=existing.version_id,
                existing_sha256=existing.sha256,
                new_sha256=sha256,
            )
        return existing

    def _settle_existing(self, existing: StoredObject, pending: _Pending) -> StoredObject:
        """A put found its key claimed with identical bytes: idempotent, return the claim.

        Its directory is flushed before the put returns, like that of a new object, even
        though another writer (perhaps one that crashed before flushing) made the entries.
        """
        if not pending.data_path.exists():
            # The claimant crashed (or is still writing): our bytes are identical, finish it.
            with contextlib.suppress(FileExistsError):
                self._link(pending.tmp_data, pending.data_path, pending.key)
        return existing

    def _load(self, key: str, version_id: str | None) -> tuple[StoredObject, str, datetime]:
        data_path, meta_path = self._paths(key)
        sidecar = self._read_sidecar(meta_path)
        if sidecar is None or not data_path.is_file():
            raise ObjectNotFound(f"no object {key!r}", key=key, version_id=version_id)
        record = self._record(key, sidecar)
        if version_id is not None and version_id != record.version_id:
            raise ObjectNotFound(
                f"no version {version_id!r} of {key!r}", key=key, version_id=version_id
            )
        return (
            record,
            str(sidecar["content_type"]),
            datetime.fromisoformat(sidecar["created_at"]),
        )

    def _read_sidecar(self, meta_path: Path) -> dict[str, Any] | None:
        try:
            raw = meta_path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {meta_path}: {exc}") from exc
        try:
            sidecar = json.loads(raw)
        except ValueError as exc:
            raise StorageError(f"sidecar {meta_path} is not valid JSON: {exc}") from exc
        if not isinstance(sidecar, dict):
            raise StorageError(f"sidecar {meta_path} is not a JSON object")
        return sidecar

    def _record(self, key: str, sidecar: dict[str, Any]) -> StoredObject:
        try:
            if sidecar["format"] != _SIDECAR_FORMAT or sidecar["key"] != key:
                raise ValueError("format or key mismatch")
            return StoredObject(
                key=key,
                version_id=str(sidecar["version_id"]),
                size=int(sidecar["size"]),
                sha256=str(sidecar["sha256"]),
                retain_until=datetime.fromisoformat(sidecar["retain_until"]).astimezone(UTC),
                backend=self.backend,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"sidecar of {key!r} is malformed: {exc}", key=key) from exc

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        """Serialise sidecar rewrites and deletes across threads and processes (flock)."""
        try:
            fd = os.open(self.root / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the store lock in {self.root}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _fsync_dir(self, directory: Path) -> None:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open directory {directory}: {exc}") from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise StoreUnavailable(f"cannot fsync directory {directory}: {exc}") from exc
        finally:
            os.close(fd)

    @staticmethod
    def _unavailable(exc: OSError, key: str) -> StorageError:
        if exc.errno == errno.ENAMETOOLONG:
            return InvalidKey(
                f"object key {key!r} is too long for this file system",
                key=key,
                reason="too_long",
            )
        return StoreUnavailable(f"storage I/O failed for {key!r}: {exc}", key=key)


def _sidecar_bytes(record: StoredObject, content_type: str, created_at: datetime) -> bytes:
    sidecar = {
        "format": _SIDECAR_FORMAT,
        "key": record.key,
        "version_id": record.version_id,
        "size": record.size,
        "sha256": record.sha256,
        "retain_until": record.retain_until.isoformat(),
        "content_type": content_type,
        "created_at": created_at.isoformat(),
    }
    return json.dumps(sidecar, sort_keys=True, indent=1).encode() + b"\n"
