"""S3-only: the lock is the server's, so check it behind the store's back with a raw client.

These assert what the WORM requirement demands of SeaweedFS 4.48, not what our code does:
if the server stopped enforcing COMPLIANCE, these fail even though the store is unchanged.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention

import storage.s3
from storage.errors import (
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    SourceChanged,
    StoreMisconfigured,
    StoreUnavailable,
    UnmanagedObject,
)
from storage.objects import PutItem
from storage.s3 import SHA256_HEADER, S3ObjectLockStore
from tests.s3server import S3Endpoint

pytestmark = pytest.mark.s3

ORIGINAL = b"original sealed bytes"


@pytest.fixture
def raw(s3_endpoint: S3Endpoint) -> Minio:
    return s3_endpoint.client()


def test_bucket_is_created_with_object_lock(
    s3_store: S3ObjectLockStore, raw: Minio, in_one_hour: datetime
) -> None:
    assert not raw.bucket_exists(s3_store.bucket)

    s3_store.put("k", ORIGINAL, retain_until=in_one_hour)

    raw.get_object_lock_config(s3_store.bucket)  # raises if the bucket has no Object Lock
    assert raw.get_bucket_versioning(s3_store.bucket).status == "Enabled"
    retention = raw.get_object_retention(s3_store.bucket, "k")
    assert retention is not None
    assert retention.mode == COMPLIANCE
    assert retention.retain_until_date == in_one_hour
    head = raw.stat_object(s3_store.bucket, "k")
    assert head.metadata is not None
    assert head.metadata.get(SHA256_HEADER) == s3_store.stat("k").sha256


def test_raw_delete_of_the_locked_version_is_denied(
    s3_store: S3ObjectLockStore, raw: Minio, in_one_hour: datetime
) -> None:
    stored = s3_store.put("k", ORIGINAL, retain_until=in_one_hour)

    with pytest.raises(S3Error) as caught:
        raw.remove_object(s3_store.bucket, "k", version_id=stored.version_id)

    assert caught.value.code == "AccessDenied"
    assert caught.value.response.status == 403
    assert raw.get_object(s3_store.bucket, "k", version_id=stored.version_id).read() == ORIGINAL


def test_raw_shortening_of_retention_is_refused(
    s3_store: S3ObjectLockStore, raw: Minio, in_one_hour: datetime
) -> None:
    stored = s3_store.put("k", ORIGINAL, retain_until=in_one_hour)

    with pytest.raises(S3Error) as caught:
        raw.set_object_retention(
            s3_store.bucket,
            "k",
            Retention(COMPLIANCE, in_one_hour - timedelta(minutes=30)),
            version_id=stored.version_id,
        )

    assert caught.value.response.status == 403
    assert s3_store.stat("k", stored.version_id).retain_until == in_one_hour


def test_raw_switch_to_governance_is_refused(
    s3_store: S3ObjectLockStore, raw: Minio, in_one_hour: datetime
) -> None:
    stored = s3_store.put("k", ORIGINAL, retain_until=in_one_hour)

    with pytest.raises(S3Error) as caught:
        raw.set_object_retention(
            s3_store.bucket,
            "k",
            Retention(GOVERNANCE, in_one_hour + timedelta(days=1)),
            version_id=stored.version_id,
        )

    assert caught.value.response.status == 403
    retention = raw.get_object_retention(s3_store.bucket, "k", version_id=stored.version_id)
    assert retention is not None
    assert retention.mode == COMPLIANCE


def test_raw_put_on_the_key_adds_a_version_and_keeps_the_locked_one(
    s3_store: S3ObjectLockStore, raw: Minio, in_one_hour: datetime
) -> None:
    stored = s3_store.put("k", ORIGINAL, retain_until=in_one_hour)

    overwrite = raw.put_object(s3_store.bucket, "k", io.BytesIO(b"forged"), 6)

    assert overwrite.version_id and overwrite.version_id != stored.version_id
    assert raw.get_object(s3_store.bucket, "k", version_id=stored.version_id).read() == ORIGINAL
    assert s3_store.get("k", stored.version_id) == ORIGINAL
    assert s3_store.stat("k", stored.version_id) == stored
    # The latest version is not ours: the store says so instead of vouching for it.
    assert s3_store.get("k") == b"forged"
    with pytest.raises(UnmanagedObject):
        s3_store.stat("k")
    with pytest.raises(ObjectExists) as caught:
        s3_store.put("k", ORIGINAL, retain_until=in_one_hour)
    assert caught.value.existing_sha256 is None


def test_stat_reads_retention_from_the_server(
    s3_store: S3ObjectLockStore, raw: Minio, in_one_hour: datetime
) -> None:
    stored = s3_store.put("k", ORIGINAL, retain_until=in_one_hour)
    later = in_one_hour + timedelta(days=10)

    raw.set_object_retention(
        s3_store.bucket, "k", Retention(COMPLIANCE, later), version_id=stored.version_id
    )

    assert s3_store.stat("k").retain_until == later


def test_delete_after_retention_removes_the_version_without_a_delete_marker(
    s3_store: S3ObjectLockStore, raw: Minio
) -> None:
    until = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    stored = s3_store.put("short", ORIGINAL, retain_until=until)
    with pytest.raises(ObjectLocked):
        s3_store.delete("short")

    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.1)
    s3_store.delete("short", stored.version_id)

    assert not s3_store.exists("short")
    versions = list(raw.list_objects(s3_store.bucket, prefix="short", include_version=True))
    assert versions == []
    with pytest.raises(ObjectNotFound):
        s3_store.stat("short")


def test_bucket_without_object_lock_is_refused(
    make_s3_store: Callable[..., S3ObjectLockStore],
    raw: Minio,
    bucket_name: str,
    in_one_hour: datetime,
) -> None:
    raw.make_bucket(bucket_name)  # no Object Lock

    store = make_s3_store(bucket_name)

    with pytest.raises(StoreMisconfigured) as caught:
        store.put("k", ORIGINAL, retain_until=in_one_hour)
    assert "Object Lock" in str(caught.value)
    with pytest.raises(StoreMisconfigured):
        store.check()
    assert list(raw.list_objects(bucket_name)) == []


def test_missing_bucket_is_not_created_when_told_not_to(
    make_s3_store: Callable[..., S3ObjectLockStore], raw: Minio, bucket_name: str
) -> None:
    store = make_s3_store(bucket_name, create_bucket=False)

    with pytest.raises(StoreMisconfigured):
        store.check()
    assert not raw.bucket_exists(bucket_name)


def test_unreachable_server_is_unavailable(bucket_name: str, in_one_hour: datetime) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = S3ObjectLockStore(f"127.0.0.1:{port}", "a", "b", bucket_name, connect_timeout=1)

    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.check()
    with pytest.raises(StoreUnavailable):
        store.put("k", ORIGINAL, retain_until=in_one_hour)

    assert str(port) in str(caught.value)
    assert time.monotonic() - started < 15


def test_wrong_credentials_are_a_misconfiguration(
    s3_endpoint: S3Endpoint, bucket_name: str
) -> None:
    store = S3ObjectLockStore(s3_endpoint.endpoint, s3_endpoint.access_key, "wrong", bucket_name)

    with pytest.raises(StoreMisconfigured):
        store.check()


@pytest.mark.parametrize("change", ["rewritten", "truncated"])
def test_source_changing_between_digest_and_upload_is_reported(
    s3_store: S3ObjectLockStore,
    raw: Minio,
    in_one_hour: datetime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(ORIGINAL)
    real_digest = storage.s3.sha256_of_file

    def digest_then_change(path: Path) -> tuple[str, int]:
        result = real_digest(path)
        path.write_bytes(ORIGINAL.upper() if change == "rewritten" else ORIGINAL[:5])
        return result

    monkeypatch.setattr(storage.s3, "sha256_of_file", digest_then_change)

    with pytest.raises(SourceChanged) as caught:
        s3_store.put("k", source, retain_until=in_one_hour)

    assert caught.value.key == "k"
    versions = list(raw.list_objects(s3_store.bucket, prefix="k", include_version=True))
    if change == "rewritten":
        # The bytes went up before the mismatch could be seen: the error names the version.
        assert [v.version_id for v in versions] == [caught.value.version_id]
    else:
        assert versions == []


def test_concurrent_uploads_of_a_batch_are_each_locked(
    make_s3_store: Callable[..., S3ObjectLockStore],
    bucket_name: str,
    raw: Minio,
    in_one_hour: datetime,
) -> None:
    store = make_s3_store(bucket_name, put_workers=3)
    items = [PutItem(f"doc/{name}", name.encode()) for name in ("a", "b", "c", "d")]

    stored = store.put_many(items, retain_until=in_one_hour)

    assert [s.key for s in stored] == [item.key for item in items]
    for record in stored:
        retention = raw.get_object_retention(bucket_name, record.key, record.version_id)
        assert retention is not None
        assert retention.mode == COMPLIANCE
        assert retention.retain_until_date == in_one_hour
        assert store.get(record.key) == record.key.split("/")[1].encode()
    with pytest.raises(ObjectExists):
        store.put_many(
            [PutItem("doc/e", b"e"), PutItem("doc/a", b"tampered")], retain_until=in_one_hour
        )
