"""The job queue between intake and the workers: huey.

Why huey: one library covers both ways Coffre runs. Embedded, it keeps its queue in a
SQLite file next to the database (no extra server); scaled out, the same tasks go through
Redis to any number of ``coffre worker`` processes on any number of machines. A message is
only a hint ("document X has work"): the document's state in the database is the truth, a
worker claims the document with a lease before working on it, and a periodic sweep
re-enqueues every received document whose lease lapsed (a worker killed mid-step), so a
lost or duplicated message neither loses nor repeats work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

log = logging.getLogger("coffre.queue")

PROCESS_TASK = "coffre.process_document"
SWEEP_TASK = "coffre.sweep"
DAILY_TASK = "coffre.daily"


def make_huey(url: str, *, name: str = "coffre") -> Huey:
    """``sqlite:///PATH`` (embedded), ``redis://HOST:PORT/DB`` (scaled), ``memory://``."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name=name, filename=str(path), results=False, utc=True)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name=name, url=url, results=False, utc=True)
    if url == "memory://":
        return MemoryHuey(name=name, results=False, utc=True)
    raise ValueError(f"unsupported queue URL {url!r} (sqlite:///PATH or redis://HOST:PORT/DB)")


class WorkQueue:
    """Enqueues ``process_document`` messages; in a worker, also runs them.

    Producers (the API, the CLI, the hot folder) and workers build the same queue from the
    same URL; only workers :meth:`bind` the handlers.
    """

    def __init__(self, huey: Huey, *, retries: int = 2, retry_delay: int = 10) -> None:
        self.huey = huey
        self._process: Callable[[str], Any] | None = None
        self._sweep: Callable[[], list[str]] | None = None
        self._daily: Callable[[], Any] | None = None
        self._process_task = huey.task(retries=retries, retry_delay=retry_delay, name=PROCESS_TASK)(
            self._run_process
        )
        huey.periodic_task(crontab(minute="*"), name=SWEEP_TASK)(self._run_sweep)
        # Checked hourly; the bound callable decides (from the journal) whether it is due.
        huey.periodic_task(crontab(minute="17"), name=DAILY_TASK)(self._run_daily)

    @classmethod
    def from_url(cls, url: str) -> WorkQueue:
        return cls(make_huey(url))

    def bind(
        self,
        process: Callable[[str], Any],
        sweep: Callable[[], list[str]],
        daily: Callable[[], Any] | None = None,
    ) -> None:
        self._process = process
        self._sweep = sweep
        self._daily = daily

    def enqueue(self, document_id: str) -> None:
        self._process_task(str(document_id))

    def pending(self) -> int:
        return int(self.huey.pending_count())

    def _run_process(self, document_id: str) -> None:
        if self._process is None:
            raise RuntimeError("this queue has no worker bound to it")
        self._process(document_id)

    def _run_sweep(self) -> None:
        if self._sweep is None:
            return
        for document_id in self._sweep():
            self.enqueue(document_id)

    def _run_daily(self) -> None:
        if self._daily is not None:
            self._daily()

    def consumer(self, *, workers: int, embedded: bool = False) -> Consumer:
        """A huey consumer with ``workers`` threads (the heavy work runs in child
        processes, so threads keep every core busy). ``embedded``: inside another program
        (``coffre serve``), which keeps its own signal handlers."""
        cls = _EmbeddedConsumer if embedded else Consumer
        return cls(self.huey, workers=workers, worker_type="thread", max_delay=2.0)


class _EmbeddedConsumer(Consumer):
    def _set_signal_handlers(self) -> None:
        pass


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, beat: Callable[[], None], interval: float = 10.0) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="coffre-heartbeat", daemon=True)

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception:  # the next beat retries; a worker must not die of it
                log.exception("worker heartbeat failed")
