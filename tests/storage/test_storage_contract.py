"""The object store contract: the same tests against the local store and S3 (SeaweedFS)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from storage.errors import (
    InvalidKey,
    InvalidRetention,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    StorageError,
)
from storage.objects import ObjectStore, PutItem, StoredObject
from storage.s3 import PART_SIZE

MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("payload", [b"%PDF-1.7 sealed bytes\n", b""], ids=["bytes", "empty"])
def test_put_get_stat_open_roundtrip(
    store: ObjectStore, in_one_hour: datetime, payload: bytes
) -> None:
    stored = store.put("2026/01/a.pdf", payload, retain_until=in_one_hour)

    assert stored == StoredObject(
        key="2026/01/a.pdf",
        version_id=stored.version_id,
        size=len(payload),
        sha256=sha256(payload),
        retain_until=in_one_hour,
        backend=store.backend,
    )
    assert stored.version_id
    assert stored.retain_until.tzinfo is not None
    assert store.get("2026/01/a.pdf") == payload
    assert store.get("2026/01/a.pdf", stored.version_id) == payload
    assert store.stat("2026/01/a.pdf") == stored
    assert store.stat("2026/01/a.pdf", stored.version_id) == stored
    with store.open("2026/01/a.pdf") as handle:
        assert handle.read() == payload
    assert store.exists("2026/01/a.pdf")
    assert not store.exists("2026/01/b.pdf")


def test_retention_is_utc_and_rounded_up_to_the_second(store: ObjectStore) -> None:
    paris = datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris"))
    wanted = (paris + timedelta(hours=2)).replace(microsecond=250_000)

    stored = store.put("k", b"x", retain_until=wanted)

    expected = wanted.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    assert stored.retain_until == expected
    assert stored.retain_until.utcoffset() == timedelta(0)
    assert store.stat("k").retain_until == expected


def test_streaming_put_from_a_path(
    store: ObjectStore, in_one_hour: datetime, tmp_path: Path
) -> None:
    # Big enough that holding it whole would break both limits below: the local store streams
    # 1 MiB chunks, minio holds at most two 16 MiB parts (the one being sent, the next one).
    size = 40 * MIB
    source = tmp_path / "big.bin"
    with source.open("wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()

    tracemalloc.start()
    try:
        stored = store.put("big/one.bin", source, retain_until=in_one_hour)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.sha256 == expected
    assert stored.size == size
    limit = 4 * MIB if store.backend == "local" else 2 * PART_SIZE + 2 * MIB
    assert peak < min(limit, size), f"peak {peak / MIB:.1f} MiB"
    digest = hashlib.sha256()
    with store.open("big/one.bin") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    assert digest.hexdigest() == expected
    assert store.stat("big/one.bin").sha256 == expected


def test_put_of_identical_bytes_is_idempotent(
    store: ObjectStore, in_one_hour: datetime, tmp_path: Path
) -> None:
    first = store.put("a/b", b"same bytes", retain_until=in_one_hour)
    source = tmp_path / "same"
    source.write_bytes(b"same bytes")

    again = store.put("a/b", b"same bytes", retain_until=in_one_hour)
    from_path = store.put(
        "a/b", source, retain_until=in_one_hour + timedelta(days=3)
    )  # retention of an existing object is not changed by put

    assert again == first
    assert from_path == first
    assert store.stat("a/b").retain_until == in_one_hour


def test_put_of_different_bytes_on_an_existing_key_is_refused(
    store: ObjectStore, in_one_hour: datetime
) -> None:
    first = store.put("a/b", b"original", retain_until=in_one_hour)

    with pytest.raises(ObjectExists) as caught:
        store.put("a/b", b"tampered", retain_until=in_one_hour)

    assert caught.value.code == "object_exists"
    assert caught.value.key == "a/b"
    assert caught.value.version_id == first.version_id
    assert caught.value.existing_sha256 == sha256(b"original")
    assert caught.value.new_sha256 == sha256(b"tampered")
    assert store.get("a/b") == b"original"
    assert store.stat("a/b") == first


def test_put_many_stores_each_item_as_put_would(
    store: ObjectStore, in_one_hour: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "streamed"
    source.write_bytes(b"from a file")
    items = [
        PutItem("doc/original.pdf", b"%PDF-1.7 original", "application/pdf"),
        PutItem("doc/original.p7s", b"signature"),
        PutItem("doc/embedded/factur-x.xml", source, "application/xml"),
        PutItem("other/empty", b""),
    ]

    stored = store.put_many(items, retain_until=in_one_hour)

    assert [s.key for s in stored] == [item.key for item in items]
    assert [s.sha256 for s in stored] == [
        sha256(b"%PDF-1.7 original"),
        sha256(b"signature"),
        sha256(b"from a file"),
        sha256(b""),
    ]
    for record in stored:
        assert record.retain_until == in_one_hour
        assert store.stat(record.key) == record
    assert store.get("doc/embedded/factur-x.xml") == b"from a file"
    assert list(store.iter_keys()) == [
        "doc/embedded/factur-x.xml",
        "doc/original.p7s",
        "doc/original.pdf",
        "other/empty",
    ]
    # A retried batch of the same bytes is idempotent, item by item.
    assert store.put_many(items, retain_until=in_one_hour + timedelta(days=1)) == stored
    assert store.put_many([], retain_until=in_one_hour) == []


def test_put_many_refuses_different_bytes_on_an_existing_key(
    store: ObjectStore, in_one_hour: datetime
) -> None:
    first = store.put("doc/a", b"original", retain_until=in_one_hour)

    with pytest.raises(ObjectExists) as caught:
        store.put_many(
            [PutItem("doc/b", b"new"), PutItem("doc/a", b"tampered")], retain_until=in_one_hour
        )

    assert caught.value.key == "doc/a"
    assert store.get("doc/a") == b"original"
    assert store.stat("doc/a") == first


def test_put_many_checks_the_whole_batch_before_storing_any(
    store: ObjectStore, in_one_hour: datetime
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=5)
    with pytest.raises(InvalidKey) as caught:
        store.put_many([PutItem("a", b"x"), PutItem("../b", b"y")], retain_until=in_one_hour)
    assert caught.value.key == "../b"
    with pytest.raises(InvalidKey) as caught:
        store.put_many([PutItem("a", b"x"), PutItem("a", b"x")], retain_until=in_one_hour)
    assert caught.value.reason == "duplicate_in_batch"
    with pytest.raises(InvalidRetention):
        store.put_many([PutItem("a", b"x")], retain_until=past)
    assert list(store.iter_keys()) == []


@pytest.mark.parametrize("by_version", [False, True], ids=["latest", "version"])
def test_delete_before_retention_is_refused(
    store: ObjectStore, in_one_hour: datetime, by_version: bool
) -> None:
    stored = store.put("locked", b"keep me", retain_until=in_one_hour)

    with pytest.raises(ObjectLocked) as caught:
        store.delete("locked", stored.version_id if by_version else None)

    assert caught.value.code == "object_locked"
    assert caught.value.key == "locked"
    assert caught.value.version_id == stored.version_id
    assert caught.value.retain_until == in_one_hour
    assert store.exists("locked")
    assert store.get("locked") == b"keep me"
    assert store.stat("locked") == stored


def test_extend_retention(store: ObjectStore, in_one_hour: datetime) -> None:
    stored = store.put("k", b"x", retain_until=in_one_hour)
    later = in_one_hour + timedelta(days=365)

    extended = store.extend_retention("k", stored.version_id, later)
    unchanged = store.extend_retention("k", None, later)

    assert extended.retain_until == later
    assert extended.version_id == stored.version_id
    assert extended.sha256 == stored.sha256
    assert unchanged == extended
    assert store.stat("k").retain_until == later
    with pytest.raises(ObjectLocked):
        store.delete("k")


def test_shortening_retention_is_refused(store: ObjectStore, in_one_hour: datetime) -> None:
    stored = store.put("k", b"x", retain_until=in_one_hour)

    with pytest.raises(ObjectLocked) as caught:
        store.extend_retention("k", stored.version_id, in_one_hour - timedelta(minutes=30))

    assert caught.value.retain_until == in_one_hour
    assert store.stat("k").retain_until == in_one_hour


def test_retention_must_be_aware_and_in_the_future(store: ObjectStore) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=5)).replace(microsecond=0)
    naive = datetime.now() + timedelta(hours=1)

    with pytest.raises(InvalidRetention) as caught:
        store.put("k", b"x", retain_until=past)
    assert caught.value.retain_until == past
    with pytest.raises(InvalidRetention):
        store.put("k", b"x", retain_until=naive)
    assert not store.exists("k")


def test_missing_objects(store: ObjectStore, in_one_hour: datetime) -> None:
    stored = store.put("present", b"x", retain_until=in_one_hour)

    for call in (
        lambda: store.get("absent"),
        lambda: store.stat("absent"),
        lambda: store.open("absent"),
        lambda: store.delete("absent"),
        lambda: store.extend_retention("absent", None, in_one_hour),
    ):
        with pytest.raises(ObjectNotFound) as caught:
            call()
        assert caught.value.key == "absent"
        assert caught.value.code == "object_not_found"
    assert not store.exists("absent")
    bogus = "0" * len(stored.version_id)
    with pytest.raises(ObjectNotFound):
        store.stat("present", bogus)
    with pytest.raises(ObjectNotFound):
        store.get("present", bogus)
    with pytest.raises(ObjectNotFound):
        store.delete("present", bogus)
    assert store.get("present") == b"x"


INVALID_KEYS = [
    "",
    "/etc/passwd",
    "../outside",
    "a/../../b",
    "a/./b",
    "a//b",
    "a/",
    ".hidden",
    "a/.meta",
    "a\\b",
    "a\x00b",
    "a\nb",
    "x" * 201,
]


def test_invalid_keys_are_refused_by_every_operation(
    store: ObjectStore, in_one_hour: datetime
) -> None:
    for key in INVALID_KEYS:
        for call in (
            lambda k=key: store.put(k, b"x", retain_until=in_one_hour),
            lambda k=key: store.get(k),
            lambda k=key: store.stat(k),
            lambda k=key: store.exists(k),
            lambda k=key: store.delete(k),
            lambda k=key: store.extend_retention(k, None, in_one_hour),
        ):
            with pytest.raises(InvalidKey) as caught:
                call()
            assert isinstance(caught.value, StorageError)
            assert caught.value.key == key
    assert list(store.iter_keys()) == []


def test_iter_keys(store: ObjectStore, in_one_hour: datetime) -> None:
    keys = ["b/1", "a/2", "a/1", "a-b", "a/sub/3", "ab"]
    for key in keys:
        store.put(key, key.encode(), retain_until=in_one_hour)

    assert list(store.iter_keys()) == ["a-b", "a/1", "a/2", "a/sub/3", "ab", "b/1"]
    assert list(store.iter_keys("a/")) == ["a/1", "a/2", "a/sub/3"]
    assert list(store.iter_keys("a")) == ["a-b", "a/1", "a/2", "a/sub/3", "ab"]
    assert list(store.iter_keys("a/s")) == ["a/sub/3"]
    assert list(store.iter_keys("c")) == []


def test_check_passes_on_a_working_store(store: ObjectStore) -> None:
    store.check()
