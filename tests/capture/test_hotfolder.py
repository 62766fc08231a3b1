"""A scanning station's hot folder: complete files only, done/ or error/ with the reason."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from capture.hotfolder import HotFolder
from tests.conftest import make_settings
from tests.scans import scan_png

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ocr")]


@pytest.fixture
def rt(tmp_path, pki_template):
    from coffre.runtime import build_runtime

    runtime = build_runtime(make_settings(tmp_path / "data", pki_template))
    yield runtime
    runtime.archive.engine.dispose()


def _age(path, seconds=10):
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_complete_files_go_to_done_bad_ones_to_error_with_the_reason(rt, tmp_path):
    inbox = tmp_path / "station-1"
    enqueued: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        folder = HotFolder(
            rt.pipeline,
            inbox,
            station="station-1",
            actor="station:station-1",
            enqueue=enqueued.append,
            settle_seconds=1.0,
            executor=pool,
        )
        good = inbox / "facture.png"
        good.write_bytes(scan_png(["FACTURE 77"], seed=7, size=(600, 400)))
        bad = inbox / "broken.png"
        bad.write_bytes(scan_png(["x"], seed=8, size=(600, 400))[:300])  # truncated
        partial = inbox / "incoming.tif.part"
        partial.write_bytes(b"II*\x00 still being written")
        for path in (good, bad):
            _age(path)

        assert folder.poll() == []  # first sight: not yet known to be complete
        outcomes = folder.poll()
        deadline = time.monotonic() + 120
        while folder.busy and time.monotonic() < deadline:
            time.sleep(0.5)
            outcomes += folder.poll()

    by_name = {o.path.name: o for o in outcomes}
    assert by_name["facture.png"].status == "archived"
    assert (inbox / "done" / "facture.png").exists()
    assert by_name["broken.png"].status == "quarantined"
    reason = (inbox / "error" / "broken.png.reason.txt").read_text()
    assert "corrupt_image" in reason
    assert partial.exists()  # never touched
    assert not good.exists() and not bad.exists()
    assert enqueued == [str(by_name["facture.png"].document_id)]


def test_a_file_still_growing_is_not_taken(rt, tmp_path):
    inbox = tmp_path / "station-2"
    folder = HotFolder(
        rt.pipeline,
        inbox,
        station="s2",
        actor="station:s2",
        enqueue=lambda _d: None,
        settle_seconds=1.0,
    )
    growing = inbox / "scan.png"
    data = scan_png(["growing"], seed=9, size=(600, 400))
    growing.write_bytes(data[:500])
    _age(growing)
    folder.poll()
    with growing.open("ab") as f:  # the station is still writing
        f.write(data[500:])
    _age(growing, 5)
    assert folder.poll() == []
    assert growing.exists()


def test_an_intake_failure_leaves_the_file_for_the_next_scan(rt, tmp_path, monkeypatch):
    from storage import StorageError

    inbox = tmp_path / "station-3"
    folder = HotFolder(
        rt.pipeline,
        inbox,
        station="s3",
        actor="station:s3",
        enqueue=lambda _d: None,
        settle_seconds=1.0,
    )
    bad = inbox / "refused.gif"
    bad.write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    _age(bad)
    real_intake = rt.pipeline.intake
    calls = []

    def store_down_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise StorageError("object store unreachable")
        return real_intake(*args, **kwargs)

    monkeypatch.setattr(rt.pipeline, "intake", store_down_once)
    folder.poll()
    assert folder.poll() == [] and bad.exists()  # kept in place, nothing lost
    outcomes = folder.poll()
    assert [o.status for o in outcomes] == ["quarantined"]
    assert (inbox / "error" / "refused.gif.reason.txt").exists()
