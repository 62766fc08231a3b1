"""Running the async seal and timestamp APIs from synchronous use cases.

Use cases run in worker threads (FastAPI's threadpool, the CLI, job workers), never on an
event loop thread. Each thread keeps one event loop of its own for these calls: a loop per
call (``asyncio.run``) costs a loop's set-up and tear-down every time, and in the main
thread it also installs a SIGINT handler, which on Python 3.11 formats the repr of the
running task — with its arguments, such as a whole PDF — each time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _Loop:
    """One thread's loop, closed when the thread ends (its thread-local goes with it)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        if not self.loop.is_closed():
            self.loop.close()


_LOCAL = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    holder: _Loop | None = getattr(_LOCAL, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _LOCAL.holder = _Loop()
    return holder.loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this thread's own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError("run_sync called on an event loop thread; await the coroutine instead")
    loop = _thread_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        # Nothing a call leaves behind runs on into the next one (as asyncio.run does).
        leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
