"""FastAPI app factory: builds the runtime from Settings and mounts each room's router.

Domain errors become RFC 9457 problem responses here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from archive.api import make_router
from archive.errors import ArchiveError
from archive.service import anchor_if_due
from archive.tsa import make_tsa_router
from archive.web import WEB_STATIC, make_web_router
from capture.api import make_router as make_capture_router
from capture.queue import Heartbeat
from coffre.runtime import Runtime, build_runtime
from coffre.settings import Settings
from storage import StorageError

log = structlog.get_logger("coffre.app")
ANCHOR_CHECK_SECONDS = 3600


def problem(status: int, code: str, title: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={
            "type": f"urn:coffre:problem:{code}",
            "title": title,
            "status": status,
            "code": code,
            **extra,
        },
        media_type="application/problem+json",
    )


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or build_runtime(settings or Settings())
    archive = runtime.archive

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def anchor_periodically() -> None:
            # The journal is anchored every N events by the writers; this adds the daily
            # anchor for quiet periods.
            while True:
                try:
                    await asyncio.to_thread(anchor_if_due, archive)
                except Exception:  # keep the loop alive; the next round retries
                    log.exception("journal anchoring failed")
                await asyncio.sleep(ANCHOR_CHECK_SECONDS)

        task = asyncio.create_task(anchor_periodically())
        worker = EmbeddedWorker(runtime) if runtime.settings.run_embedded_worker else None
        if worker is not None:
            await asyncio.to_thread(worker.start)
        try:
            yield
        finally:
            task.cancel()
            if worker is not None:
                await asyncio.to_thread(worker.stop)

    app = FastAPI(title="Coffre", version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.archive = archive

    @app.exception_handler(ArchiveError)
    async def archive_error(_request: Request, exc: ArchiveError) -> JSONResponse:
        return problem(
            exc.status,
            exc.code,
            exc.message,
            **{k: v for k, v in exc.data.items() if isinstance(v, str | int | float | bool | list)},
        )

    @app.exception_handler(StorageError)
    async def storage_error(_request: Request, exc: StorageError) -> JSONResponse:
        return problem(503, getattr(exc, "code", "storage_error"), str(exc))

    @app.get("/health")
    def health() -> dict[str, str]:
        archive.store.check()
        return {"status": "ok", "mode": runtime.settings.mode}

    if runtime.dev_pki is not None:
        dev = runtime.dev_pki

        @app.get("/pki/dev-root.crl")
        def dev_crl() -> Response:
            return Response(dev.crl.read_bytes(), media_type="application/pkix-crl")

        @app.get("/pki/dev-root.pem")
        def dev_root() -> Response:
            return Response(dev.root_cert.read_bytes(), media_type="application/x-pem-file")

    if runtime.tsa is not None:
        app.include_router(make_tsa_router(runtime.tsa))
    app.include_router(make_router(archive))
    app.include_router(make_web_router(archive))
    app.mount("/audit/static", StaticFiles(directory=str(WEB_STATIC)), name="audit-static")
    app.include_router(
        make_capture_router(archive, runtime.validator, runtime.pipeline, runtime.queue.enqueue)
    )
    return app


class EmbeddedWorker:
    """The embedded default's worker: huey consumer threads inside ``coffre serve``, with a
    heartbeat so that ``coffre ingest`` knows someone is processing."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        concurrency = runtime.settings.queue.concurrency
        queue = runtime.bind_worker()
        for document_id in runtime.pipeline.stale():  # left over from the last run
            queue.enqueue(document_id)
        self.consumer = queue.consumer(workers=concurrency, embedded=True)
        self.consumer.shutdown_timeout = 10
        self.heartbeat = Heartbeat(lambda: runtime.pipeline.beat(concurrency))

    def start(self) -> None:
        self.consumer.start()
        self.heartbeat.start()

    def stop(self) -> None:
        self.heartbeat.stop()
        self.runtime.pipeline.retire()
        self.consumer.stop(graceful=True)
