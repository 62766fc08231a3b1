"""Running the async seal and timestamp APIs from synchronous use cases.

Use cases run in worker threads (FastAPI's threadpool, the CLI, job workers), never on an
event loop thread, so each call gets a loop of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("run_sync called on an event loop thread; await the coroutine instead")
