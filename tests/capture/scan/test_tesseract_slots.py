"""At most one tesseract per core runs from a process: the other jobs wait for a slot."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from capture.scan import _child, _tesseract


def _fake_tesseract(active: list[int], peak: list[int], lock: threading.Lock) -> Any:
    """Stands in for the child process (the scheduling is under test, not tesseract)."""

    def run(args: list[str], *, workdir: Path, timeout: float, env: dict[str, str]) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)
        outbase = Path(args[2])
        (outbase.parent / (outbase.name + ".hocr")).write_text("<html/>")
        (outbase.parent / (outbase.name + ".txt")).write_text("text\f")
        with lock:
            active[0] -= 1

    return run


def test_no_more_tesseracts_than_slots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    active, peak, lock = [0], [0], threading.Lock()
    monkeypatch.setattr(_tesseract, "_SLOTS", threading.BoundedSemaphore(2))
    monkeypatch.setattr(_tesseract, "_program", lambda: "tesseract")
    monkeypatch.setattr(_child, "run", _fake_tesseract(active, peak, lock))

    def one(index: int) -> str:
        return _tesseract.ocr(
            tmp_path / "page.png", tmp_path / f"out-{index}", languages="fra", timeout=10
        ).text

    with ThreadPoolExecutor(5) as pool:
        texts = list(pool.map(one, range(5)))

    assert texts == ["text"] * 5
    assert peak[0] == 2


def test_waiting_for_a_slot_counts_against_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(_tesseract, "_SLOTS", slots)
    monkeypatch.setattr(_tesseract, "_program", lambda: "tesseract")
    slots.acquire()  # another job holds the only slot
    try:
        with pytest.raises(_tesseract.RunFailed) as caught:
            _tesseract.ocr(tmp_path / "page.png", tmp_path / "out", languages="fra", timeout=0.2)
    finally:
        slots.release()
    assert caught.value.timed_out
