"""S3 Object Lock store: every object version is written under a COMPLIANCE retention.

The lock is the server's promise, so this module asks the server and reports what it says:
``stat`` reads the retention back with GetObjectRetention, ``put`` checks that the lock was
applied, and refusals (403 AccessDenied on delete or on a retention change) become
``ObjectLocked``. Deletes always name a version, so this store never writes delete markers
that would hide a locked version.

Known race: ``put`` checks the latest version and then writes; two writers of *different*
bytes to one key at the same instant both get a locked version, each reported to its own
writer (minio-py cannot send ``If-None-Match: *`` on PUT). Nothing is lost or overwritten;
callers that need the winner should record the returned ``version_id``.

This module must not know what the bytes mean.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, NoReturn

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.datatypes import Object
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.retention import Retention

from storage.errors import (
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    SourceChanged,
    StorageError,
    StoreMisconfigured,
    StoreUnavailable,
    UnmanagedObject,
)
from storage.objects import (
    CHUNK_SIZE,
    HashingReader,
    PutItem,
    StoredObject,
    require_future,
    retention_instant,
    sha256_of_file,
    validate_batch,
    validate_key,
)

PART_SIZE = 16 * 1024 * 1024
"""Multipart part size; minio holds one part in memory at a time (uploads are sequential)."""

PUT_WORKERS = 1
"""Objects of one ``put_many`` batch uploaded at once (each put is four requests). One by
default: against SeaweedFS on the same 2-core machine, four at once were slower (65-78 ms
against 51-64 ms for five small objects) and drew HTTP 500s from the gateway under load. A
remote endpoint, where round trips dominate, is where more pays."""

SHA256_HEADER = "x-amz-meta-sha256"
"""User metadata holding the digest computed while writing."""

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject"})
_NO_LOCK_CODES = frozenset(
    {"ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"}
)
_CREDENTIAL_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationHeaderMalformed"}
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class S3ObjectLockStore:
    """Objects in one S3 bucket with Object Lock, through the ``minio`` client.

    The bucket is checked (and created with Object Lock if missing and ``create_bucket``) on
    first use; :meth:`check` re-checks it every time it is called. ``put_workers`` bounds
    the concurrent uploads of a ``put_many`` batch (1: one after the other).
    """

    backend = "s3"

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str | None = None,
        create_bucket: bool = True,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        http_client: urllib3.PoolManager | None = None,
        clock: Callable[[], datetime] = _utcnow,
        put_workers: int = PUT_WORKERS,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.create_bucket = create_bucket
        self._clock = clock
        self._put_workers = put_workers
        self._ready = False
        if http_client is None:
            # minio's default waits 5 minutes to connect and retries 5 times: too long to
            # report a store as unavailable.
            http_client = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                maxsize=10,
                cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
                ca_certs=certifi.where() if secure else None,
                retries=urllib3.Retry(
                    total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
                ),
            )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http_client,
        )

    # -- writing -------------------------------------------------------------------------

    def put(
        self,
        key: str,
        source: bytes | Path,
        *,
        retain_until: datetime,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        validate_key(key)
        retain = retention_instant(retain_until, key=key)
        require_future(retain, self._now(), key=key)
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            sha256, size = hashlib.sha256(data).hexdigest(), len(data)
        elif isinstance(source, Path):
            # The digest goes in a header, so it is needed before the upload starts.
            sha256, size = sha256_of_file(source)
        else:
            raise TypeError(f"source must be bytes or Path, not {type(source).__name__}")
        self._ensure_ready()

        existing = self._head(key, None)
        if existing is not None:
            existing_sha256 = existing.metadata.get(SHA256_HEADER) if existing.metadata else None
            if existing_sha256 != sha256:
                raise ObjectExists(
                    f"{key!r} already holds different bytes (sha256 {existing_sha256})",
                    key=key,
                    version_id=existing.version_id,
                    existing_sha256=existing_sha256,
                    new_sha256=sha256,
                )
            return self.stat(key, existing.version_id)

        if isinstance(source, Path):
            with source.open("rb") as handle:
                reader = HashingReader(handle)
                version_id = self._upload(key, reader, size, sha256, retain, content_type)
            if reader.hexdigest() != sha256 or reader.size != size:
                raise SourceChanged(
                    f"{source} changed while it was stored as {key!r}: version "
                    f"{version_id} is locked with a digest that does not match its bytes",
                    key=key,
                    version_id=version_id,
                )
        else:
            version_id = self._upload(key, io.BytesIO(data), size, sha256, retain, content_type)
        # Trust the server's word, not our request: read the lock back.
        stored = self.stat(key, version_id)
        if stored.retain_until < retain or stored.sha256 != sha256:
            raise StoreMisconfigured(
                f"the server did not keep the lock or digest of {key!r} "
                f"(retain_until {stored.retain_until.isoformat()}, wanted {retain.isoformat()})",
                key=key,
                version_id=version_id,
            )
        return stored

    def put_many(self, items: Sequence[PutItem], *, retain_until: datetime) -> list[StoredObject]:
        """Store a batch; see :meth:`ObjectStore.put_many`. Each item is a :meth:`put` (the
        same checks and read-back), up to ``put_workers`` of them at once."""
        validate_batch(items)
        now = self._now()
        for item in items:
            require_future(retention_instant(retain_until, key=item.key), now, key=item.key)
        if len(items) <= 1 or self._put_workers <= 1:
            return [self._put_item(item, retain_until) for item in items]
        self._ensure_ready()  # once, not racing in every thread
        workers = min(self._put_workers, len(items))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coffre-s3") as pool:
            futures = [pool.submit(self._put_item, item, retain_until) for item in items]
        # Every upload has ended here; the first failure (in batch order) is raised.
        return [future.result() for future in futures]

    def _put_item(self, item: PutItem, retain_until: datetime) -> StoredObject:
        return self.put(
            item.key, item.source, retain_until=retain_until, content_type=item.content_type
        )

    def extend_retention(
        self, key: str, version_id: str | None, retain_until: datetime
    ) -> StoredObject:
        validate_key(key)
        retain = retention_instant(retain_until, key=key)
        current = self.stat(key, version_id)
        if retain < current.retain_until:
            raise ObjectLocked(
                f"retention of {key!r} ends {current.retain_until.isoformat()}; "
                f"it cannot be shortened to {retain.isoformat()}",
                key=key,
                version_id=current.version_id,
                retain_until=current.retain_until,
            )
        if retain == current.retain_until:
            return current
        with self._translate(key, current.version_id, "retention", current.retain_until):
            self._client.set_object_retention(
                self.bucket, key, Retention(COMPLIANCE, retain), version_id=current.version_id
            )
        return self.stat(key, current.version_id)

    def delete(self, key: str, version_id: str | None = None) -> None:
        validate_key(key)
        self._ensure_ready()
        # Resolve the version first: DELETE without one would only add a delete marker, and
        # DELETE of a missing version succeeds silently.
        found = self._head(key, version_id)
        if found is None or not found.version_id:
            raise ObjectNotFound(f"no object {key!r}", key=key, version_id=version_id)
        with self._translate(key, found.version_id, "delete", _lock_date(found)):
            self._client.remove_object(self.bucket, key, version_id=found.version_id)

    # -- reading -------------------------------------------------------------------------

    def get(self, key: str, version_id: str | None = None) -> bytes:
        with self.open(key, version_id) as handle:
            return handle.read()

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        validate_key(key)
        self._ensure_ready()
        with self._translate(key, version_id, "get"):
            response = self._client.get_object(self.bucket, key, version_id=version_id)
        return io.BufferedReader(_ResponseReader(response, key, version_id), CHUNK_SIZE)

    def stat(self, key: str, version_id: str | None = None) -> StoredObject:
        validate_key(key)
        self._ensure_ready()
        found = self._head(key, version_id)
        if found is None or not found.version_id:
            raise ObjectNotFound(f"no object {key!r}", key=key, version_id=version_id)
        sha256 = found.metadata.get(SHA256_HEADER) if found.metadata else None
        if not sha256:
            raise UnmanagedObject(
                f"version {found.version_id} of {key!r} has no {SHA256_HEADER} metadata",
                key=key,
                version_id=found.version_id,
            )
        retention: Retention | None = None
        with self._translate(key, found.version_id, "stat"):
            try:
                retention = self._client.get_object_retention(
                    self.bucket, key, version_id=found.version_id
                )
            except S3Error as exc:
                if exc.code not in _NO_LOCK_CODES:
                    raise
        if retention is None or retention.mode != COMPLIANCE or retention.retain_until_date is None:
            raise UnmanagedObject(
                f"version {found.version_id} of {key!r} has no COMPLIANCE retention",
                key=key,
                version_id=found.version_id,
            )
        return StoredObject(
            key=key,
            version_id=found.version_id,
            size=int(found.size or 0),
            sha256=str(sha256),
            retain_until=retention.retain_until_date.astimezone(UTC),
            backend=self.backend,
        )

    def exists(self, key: str) -> bool:
        validate_key(key)
        self._ensure_ready()
        return self._head(key, None) is not None

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        self._ensure_ready()
        with self._translate(None, None, "list"):
            for item in self._client.list_objects(self.bucket, prefix=prefix, recursive=True):
                if item.object_name is not None and not item.is_dir:
                    yield item.object_name

    def check(self) -> None:
        self._verify_bucket(create=self.create_bucket)
        self._ready = True

    # -- plumbing ------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def _ensure_ready(self) -> None:
        if not self._ready:
            self._verify_bucket(create=self.create_bucket)
            self._ready = True

    def _verify_bucket(self, *, create: bool) -> None:
        with self._translate(None, None, "bucket"):
            exists = self._client.bucket_exists(self.bucket)
            if not exists and not create:
                raise StoreMisconfigured(f"bucket {self.bucket!r} does not exist")
            if not exists:
                try:
                    self._client.make_bucket(self.bucket, location=self.region, object_lock=True)
                except S3Error as exc:
                    # Another instance of this store won the race: its bucket is checked below.
                    if exc.code != "BucketAlreadyOwnedByYou":
                        raise
            try:
                self._client.get_object_lock_config(self.bucket)
            except S3Error as exc:
                if exc.code in _NO_LOCK_CODES:
                    raise StoreMisconfigured(
                        f"bucket {self.bucket!r} on {self.endpoint} has no Object Lock: it "
                        "cannot hold write-once objects (Object Lock can only be enabled when "
                        "a bucket is created; use a new bucket)"
                    ) from exc
                raise

    def _upload(
        self,
        key: str,
        stream: HashingReader | io.BytesIO,
        size: int,
        sha256: str,
        retain: datetime,
        content_type: str,
    ) -> str:
        """PUT (multipart above PART_SIZE) under a COMPLIANCE lock; returns the version id."""
        metadata: dict[str, str | list[str] | tuple[str]] = {SHA256_HEADER: sha256}
        try:
            with self._translate(key, None, "put"):
                result = self._client.put_object(
                    self.bucket,
                    key,
                    stream,  # type: ignore[arg-type]  # minio only calls read()
                    size,
                    content_type=content_type,
                    metadata=metadata,
                    part_size=PART_SIZE,
                    # Sequential parts keep memory at one part (the pool's queue is unbounded).
                    num_parallel_uploads=1,
                    retention=Retention(COMPLIANCE, retain),
                )
        except OSError as exc:  # minio raises IOError when the source ends early
            raise SourceChanged(
                f"could not read the source completely while storing {key!r}: {exc}", key=key
            ) from exc
        if not result.version_id:
            raise StoreMisconfigured(
                f"bucket {self.bucket!r} returned no version id: versioning is off", key=key
            )
        return result.version_id

    def _head(self, key: str, version_id: str | None) -> Object | None:
        """HEAD of a version (latest if None), or None if there is none."""
        try:
            with self._translate(key, version_id, "stat"):
                return self._client.stat_object(self.bucket, key, version_id=version_id)
        except ObjectNotFound:
            return None

    def _retain_until(self, key: str, version_id: str) -> datetime | None:
        """Best-effort lock date, to enrich an error; None if it cannot be read."""
        with contextlib.suppress(MinioException, urllib3.exceptions.HTTPError):
            retention = self._client.get_object_retention(self.bucket, key, version_id=version_id)
            if retention is not None and retention.retain_until_date is not None:
                return retention.retain_until_date.astimezone(UTC)
        return None

    @contextlib.contextmanager
    def _translate(
        self,
        key: str | None,
        version_id: str | None,
        operation: str,
        retain_until: datetime | None = None,
    ) -> Iterator[None]:
        """Turn minio and urllib3 failures into storage errors (the cause stays chained)."""
        try:
            yield
        except S3Error as exc:
            self._raise_for_s3(exc, key, version_id, operation, retain_until)
        except (ServerError, InvalidResponseError) as exc:
            raise StoreUnavailable(
                f"S3 server {self.endpoint} failed during {operation}: {exc}",
                key=key,
                version_id=version_id,
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(
                f"cannot reach S3 server {self.endpoint} during {operation}: {exc}",
                key=key,
                version_id=version_id,
            ) from exc

    def _raise_for_s3(
        self,
        exc: S3Error,
        key: str | None,
        version_id: str | None,
        operation: str,
        retain_until: datetime | None,
    ) -> NoReturn:
        code = exc.code or ""
        if code in _NOT_FOUND_CODES:
            raise ObjectNotFound(
                f"no object {key!r}" + (f" version {version_id!r}" if version_id else ""),
                key=key,
                version_id=version_id,
            ) from exc
        if code == "AccessDenied" and operation in ("delete", "retention") and key:
            if retain_until is None and version_id:
                retain_until = self._retain_until(key, version_id)
            when = f" until {retain_until.isoformat()}" if retain_until else ""
            raise ObjectLocked(
                f"S3 refused to {operation} {key!r} (version {version_id}): locked{when}",
                key=key,
                version_id=version_id,
                retain_until=retain_until,
            ) from exc
        if code in _CREDENTIAL_CODES or code == "NoSuchBucket":
            raise StoreMisconfigured(
                f"S3 refused {operation} on bucket {self.bucket!r}: {code} {exc.message}",
                key=key,
                version_id=version_id,
            ) from exc
        if code in ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"):
            raise StoreUnavailable(
                f"S3 server {self.endpoint} busy during {operation}: {code}",
                key=key,
                version_id=version_id,
            ) from exc
        raise StorageError(
            f"S3 {operation} failed for {key!r}: {code} {exc.message}",
            key=key,
            version_id=version_id,
        ) from exc


def _lock_date(found: Object) -> datetime | None:
    """The retain-until date a HEAD response announced, if any (used only to enrich errors)."""
    if not found.metadata:
        return None
    raw = found.metadata.get("x-amz-object-lock-retain-until-date")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


class _ResponseReader(io.RawIOBase):
    """Raw stream over a minio GET response; closing it returns the connection to the pool."""

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        key: str,
        version_id: str | None,
    ) -> None:
        super().__init__()
        self._response = response
        self._key = key
        self._version_id = version_id

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._response.read(len(buffer))
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(
                f"reading {self._key!r} from S3 failed: {exc}",
                key=self._key,
                version_id=self._version_id,
            ) from exc
        count = len(data)
        buffer[:count] = data
        return count

    def close(self) -> None:
        if not self.closed:
            try:
                self._response.close()
                self._response.release_conn()
            finally:
                super().close()
