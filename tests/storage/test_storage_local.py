"""Local-only: what a directory store must add to the contract (files, sidecars, races)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from storage.errors import (
    InvalidKey,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    StoreUnavailable,
)
from storage.local import LocalWormStore
from storage.objects import PutItem

if TYPE_CHECKING:
    from tests.storage.conftest import FakeClock

PAYLOAD = b"%PDF-1.7 original bytes"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sidecar_of(root: Path, key: str) -> Path:
    data = root.joinpath(*key.split("/"))
    return data.with_name(f".{data.name}.meta.json")


def test_objects_and_sidecars_are_read_only_files(
    local_store: LocalWormStore, clock: FakeClock
) -> None:
    until = clock.now + timedelta(days=3650)
    stored = local_store.put("2026/01/a.pdf", PAYLOAD, retain_until=until, content_type="x/y")

    data = local_store.root / "2026" / "01" / "a.pdf"
    sidecar = sidecar_of(local_store.root, "2026/01/a.pdf")
    assert data.read_bytes() == PAYLOAD
    assert mode(data) == 0o444
    assert mode(sidecar) == 0o444
    recorded = json.loads(sidecar.read_text())
    assert recorded["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert recorded["size"] == len(PAYLOAD)
    assert recorded["version_id"] == stored.version_id
    assert recorded["content_type"] == "x/y"
    assert datetime.fromisoformat(recorded["retain_until"]) == until
    assert local_store.content_type("2026/01/a.pdf") == "x/y"
    # No temporary file is left behind.
    assert sorted(p.name for p in data.parent.iterdir()) == [".a.pdf.meta.json", "a.pdf"]
    # The store itself refuses to overwrite (as root, the mode bits alone would not).
    with pytest.raises(ObjectExists):
        local_store.put("2026/01/a.pdf", b"other", retain_until=until)
    assert data.read_bytes() == PAYLOAD


def test_expired_object_can_be_deleted(local_store: LocalWormStore, clock: FakeClock) -> None:
    until = clock.now + timedelta(days=10)
    stored = local_store.put("k", PAYLOAD, retain_until=until)

    clock.now = until - timedelta(seconds=1)
    with pytest.raises(ObjectLocked):
        local_store.delete("k")
    clock.now = until
    local_store.delete("k", stored.version_id)

    assert not local_store.exists("k")
    assert not sidecar_of(local_store.root, "k").exists()
    with pytest.raises(ObjectNotFound):
        local_store.get("k")
    assert list(local_store.iter_keys()) == []
    # The key is free again.
    again = local_store.put("k", b"new", retain_until=until + timedelta(days=1))
    assert again.version_id != stored.version_id


def test_stat_reports_the_digest_recorded_at_write_time(
    local_store: LocalWormStore, clock: FakeClock
) -> None:
    stored = local_store.put("k", PAYLOAD, retain_until=clock.now + timedelta(days=1))
    data = local_store.root / "k"

    # Someone with write access to the directory edits the file behind the store's back.
    data.chmod(0o644)
    data.write_bytes(b"%PDF-1.7 tampered bytes")
    data.chmod(0o444)

    assert local_store.stat("k").sha256 == stored.sha256
    assert hashlib.sha256(local_store.get("k")).hexdigest() != stored.sha256


def test_extended_retention_is_durable(local_store: LocalWormStore, clock: FakeClock) -> None:
    stored = local_store.put("a/k", PAYLOAD, retain_until=clock.now + timedelta(days=1))
    later = clock.now + timedelta(days=3650)

    local_store.extend_retention("a/k", stored.version_id, later)

    reopened = LocalWormStore(local_store.root, clock=clock)
    assert reopened.stat("a/k").retain_until == later
    assert reopened.stat("a/k").version_id == stored.version_id
    assert mode(sidecar_of(local_store.root, "a/k")) == 0o444
    assert sorted(p.name for p in (local_store.root / "a").iterdir()) == [".k.meta.json", "k"]
    clock.advance(timedelta(days=2).total_seconds())
    with pytest.raises(ObjectLocked):
        reopened.delete("a/k")


def test_a_claim_left_by_a_crash_is_finished_by_identical_bytes_only(
    local_store: LocalWormStore, clock: FakeClock
) -> None:
    until = clock.now + timedelta(days=1)
    stored = local_store.put("k", PAYLOAD, retain_until=until)
    (local_store.root / "k").unlink()  # as if the writer died between its two links
    (local_store.root / ".k.tmp-0123456789abcdef").write_bytes(b"half written")

    assert not local_store.exists("k")
    with pytest.raises(ObjectNotFound):
        local_store.stat("k")
    assert list(local_store.iter_keys()) == []
    with pytest.raises(ObjectExists):
        local_store.put("k", b"different", retain_until=until)

    healed = local_store.put("k", PAYLOAD, retain_until=until)

    assert healed == stored
    assert local_store.get("k") == PAYLOAD
    assert list(local_store.iter_keys()) == ["k"]


def test_a_key_cannot_be_both_an_object_and_a_directory(
    local_store: LocalWormStore, clock: FakeClock
) -> None:
    until = clock.now + timedelta(days=1)
    local_store.put("a", PAYLOAD, retain_until=until)
    local_store.put("x/y", PAYLOAD, retain_until=until)

    with pytest.raises(InvalidKey) as caught:
        local_store.put("a/b", PAYLOAD, retain_until=until)
    assert caught.value.reason == "path_conflict"
    with pytest.raises(InvalidKey) as caught:
        local_store.put("x", PAYLOAD, retain_until=until)
    assert caught.value.reason == "path_conflict"
    assert list(local_store.iter_keys()) == ["a", "x/y"]


def test_check_reports_an_unusable_root(tmp_path: Path) -> None:
    store = LocalWormStore(tmp_path / "store")
    store.check()
    shutil.rmtree(tmp_path / "store")
    (tmp_path / "store").write_text("not a directory")

    with pytest.raises(StoreUnavailable):
        store.check()
    with pytest.raises(StoreUnavailable):
        LocalWormStore(tmp_path / "store" / "sub")


def _racing_put(
    root: str, key: str, payload: bytes, until: str, barrier: Any, results: Any
) -> None:
    store = LocalWormStore(Path(root))
    barrier.wait(timeout=10)
    try:
        stored = store.put(key, payload, retain_until=datetime.fromisoformat(until))
    except ObjectExists:
        results.put(("exists", payload))
    else:
        results.put(("stored", payload, stored.version_id))


@pytest.mark.parametrize("same_bytes", [True, False], ids=["identical", "different"])
def test_concurrent_puts_from_two_processes(tmp_path: Path, same_bytes: bool) -> None:
    context = multiprocessing.get_context("fork")
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    root = tmp_path / "store"
    LocalWormStore(root)
    for round_ in range(10):
        key = f"race/{round_}"
        payloads = [b"first writer", b"first writer" if same_bytes else b"second writer"]
        barrier = context.Barrier(2)
        results = context.Queue()
        workers = [
            context.Process(target=_racing_put, args=(str(root), key, p, until, barrier, results))
            for p in payloads
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=20) for _ in workers]
        for worker in workers:
            worker.join(timeout=20)
            assert worker.exitcode == 0

        store = LocalWormStore(root)
        stored = [o for o in outcomes if o[0] == "stored"]
        if same_bytes:
            assert len(stored) == 2
            assert stored[0][2] == stored[1][2] == store.stat(key).version_id
        else:
            assert len(stored) == 1, outcomes
            assert store.get(key) == stored[0][1]
            assert store.stat(key).version_id == stored[0][2]
        assert sorted(p.name for p in (root / "race").iterdir() if ".tmp-" in p.name) == []


def test_concurrent_puts_from_threads(local_store: LocalWormStore, clock: FakeClock) -> None:
    until = clock.now + timedelta(days=1)

    def put(index: int) -> str:
        try:
            local_store.put("contended", f"writer {index}".encode(), retain_until=until)
        except ObjectExists:
            return "exists"
        return "stored"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(put, range(16)))

    assert outcomes.count("stored") == 1
    assert local_store.get("contended").startswith(b"writer ")
    assert sorted(os.listdir(local_store.root)) == [".contended.meta.json", "contended"]


def test_a_batch_is_flushed_before_it_is_published_and_before_put_many_returns(
    local_store: LocalWormStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, ...]] = []
    lock = threading.Lock()  # flushes run in several threads
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        real_fsync(fd)
        with lock:
            events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

    def link(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        real_link(source, target, *args, **kwargs)
        with lock:
            events.append(("link", str(source), str(target)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    items = [PutItem(f"doc/{name}", name.encode()) for name in ("a", "b", "c")]

    local_store.put_many(items, retain_until=clock.now + timedelta(days=1))

    links = [(i, e) for i, e in enumerate(events) if e[0] == "link"]
    published = sorted(Path(e[2]).name for _, e in links)
    assert published == [".a.meta.json", ".b.meta.json", ".c.meta.json", "a", "b", "c"]
    first_link, last_link = links[0][0], links[-1][0]
    for index, event in links:  # every file was on disk before it got its public name
        assert ("fsync", event[1]) in events[:index]
    root = local_store.root.resolve()
    # The new directory's entry was on disk before anything was published in it...
    assert ("fsync", str(root)) in events[:first_link]
    # ...and the entries published in it were before put_many returned.
    assert ("fsync", str(root / "doc")) in events[last_link + 1 :]
    # One flush per file and per directory that changed, not four per object.
    assert sum(1 for e in events if e[0] == "fsync") == 6 + 2
