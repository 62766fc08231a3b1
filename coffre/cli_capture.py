"""Capture commands: ``ingest``, ``watch`` (hot folder), ``worker``, ``supplier``."""

from __future__ import annotations

import signal
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from archive.models import DocumentKind
from archive.service import resolve_company
from capture.hotfolder import HotFolder
from capture.pipeline import FINAL
from capture.queue import Heartbeat
from capture.suppliers import list_suppliers, upsert_supplier
from coffre import cli
from storage import session_scope

supplier_app = typer.Typer(no_args_is_help=True, help="The supplier directory of a company.")


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.parts)
            )
        else:
            found.append(path)
    return found


def ingest(
    paths: Annotated[list[Path], typer.Argument(exists=True, readable=True)],
    company: Annotated[str | None, typer.Option(help="Company id or SIREN.")] = None,
    kind: Annotated[DocumentKind | None, typer.Option()] = None,
    station: Annotated[
        str | None, typer.Option(help="Station name recorded with each file.")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once taken in; workers do the rest.")
    ] = False,
    as_json: cli.JsonOpt = False,
) -> None:
    """Take files (or folders) in and wait until each is archived, failed or quarantined.

    Scans are converted to PDF/A, OCR'd and read by the workers; with no worker running,
    this command does that work itself."""
    files = _files(paths)
    rows: dict[Path, dict[str, Any]] = {}
    with cli._runtime() as rt:
        pipeline, queue = rt.pipeline, rt.queue
        concurrency = max(1, rt.settings.queue.concurrency)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=cli.err,
            disable=as_json,
        )
        waiting: dict[uuid.UUID, list[Path]] = {}
        with progress:
            taking = progress.add_task("taking in", total=len(files))
            for path in files:
                result = pipeline.intake(
                    path.read_bytes(),
                    filename=path.name,
                    actor=cli._actor(),
                    source="cli-ingest",
                    company_ref=company,
                    kind=kind.value if kind else None,
                    station=station,
                )
                rows[path] = {
                    "file": str(path),
                    "capture_id": str(result.capture.id),
                    "document_id": str(result.document_id) if result.document_id else None,
                    "outcome": result.status,
                    "reason": f"{result.reason_code}: {result.reason}" if result.reason else None,
                }
                if result.needs_processing and result.document_id is not None:
                    queue.enqueue(str(result.document_id))
                    waiting.setdefault(result.document_id, []).append(path)
                progress.advance(taking)
            if waiting and not no_wait:
                processing = progress.add_task("processing", total=len(waiting))

                def settled(document_id: uuid.UUID, status: str) -> None:
                    for path in waiting[document_id]:
                        rows[path]["outcome"] = status
                    progress.advance(processing)

                if pipeline.workers_alive() == 0:
                    _process_here(pipeline, list(waiting), concurrency, settled)
                else:
                    pipeline.wait(list(waiting), on_final=settled)
        _explain_failures(rt, rows)
    results = list(rows.values())
    if as_json:
        cli._print_json(results)
    else:
        table = Table("document", "outcome", "file", "reason", box=None)
        for r in results:
            table.add_row(r["document_id"] or "-", r["outcome"], r["file"], r["reason"] or "")
        cli.out.print(table)
        counts: dict[str, int] = {}
        for r in results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        cli.out.print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing")
    if any(r["outcome"] in ("failed", "quarantined") for r in results):
        raise typer.Exit(cli.EXIT_BAD_INPUT)


def _process_here(
    pipeline: Any, document_ids: list[uuid.UUID], concurrency: int, settled: Any
) -> None:
    with ThreadPoolExecutor(concurrency) as pool:
        futures = {pool.submit(pipeline.process_until_final, d): d for d in document_ids}
        for future, document_id in futures.items():
            status = future.result()
            if status not in FINAL:  # another worker took it meanwhile: wait for it
                pipeline.wait([document_id], on_final=settled)
            else:
                settled(document_id, status)


def _explain_failures(rt: Any, rows: dict[Path, dict[str, Any]]) -> None:
    for row in rows.values():
        if row["outcome"] == "failed" and row["capture_id"]:
            flags = rt.pipeline.status(row["capture_id"]).get("flags") or []
            row["reason"] = "; ".join(f"{f['code']}: {f['message']}" for f in flags) or None


def watch(
    directory: Annotated[Path, typer.Argument(file_okay=False)],
    station: Annotated[str, typer.Option(help="This scanning station's name.")],
    company: Annotated[str | None, typer.Option(help="Company id or SIREN.")] = None,
    kind: Annotated[DocumentKind | None, typer.Option()] = None,
    interval: Annotated[float, typer.Option(help="Seconds between scans of the folder.")] = 2.0,
    settle: Annotated[float, typer.Option(help="Seconds a file must stay unchanged.")] = 2.0,
    once: Annotated[
        bool, typer.Option("--once", help="Stop when the folder is empty and all is settled.")
    ] = False,
) -> None:
    """Watch a scanning station's hot folder: complete files are taken in, then moved to
    done/ or error/ (with NAME.reason.txt) once their outcome is known."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with cli._runtime() as rt:
        pipeline = rt.pipeline
        inline = pipeline.workers_alive() == 0
        pool = ThreadPoolExecutor(max(1, rt.settings.queue.concurrency)) if inline else None
        folder = HotFolder(
            pipeline,
            directory,
            station=station,
            actor=f"station:{station}",
            enqueue=rt.queue.enqueue,
            company_ref=company,
            kind=kind.value if kind else None,
            settle_seconds=settle,
            executor=pool,
        )
        cli.err.print(
            f"watching {directory} as station {station!r}"
            + (" (processing here: no worker running)" if inline else ""),
            highlight=False,
        )
        try:
            while not stop.is_set():
                for outcome in folder.poll():
                    cli.out.print(
                        f"{outcome.status:<11} {outcome.document_id or '-'}  "
                        f"{outcome.path.name} -> {outcome.moved_to.parent.name}/"
                        + (f"  ({outcome.reason})" if outcome.reason else ""),
                        highlight=False,
                    )
                if once and not folder.busy:
                    break
                stop.wait(interval)
        except KeyboardInterrupt:
            pass
        finally:
            if pool is not None:
                pool.shutdown(wait=True)


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once (default: settings).")
    ] = None,
) -> None:
    """Run a worker: converts, OCRs and archives received documents from the queue."""
    with cli._runtime() as rt:
        workers = concurrency or rt.settings.queue.concurrency
        queue = rt.bind_worker()
        for document_id in rt.pipeline.stale():
            queue.enqueue(document_id)
        heartbeat = Heartbeat(lambda: rt.pipeline.beat(workers))
        heartbeat.start()
        cli.err.print(f"worker {rt.pipeline.worker_name}: {workers} jobs at once", highlight=False)
        try:
            queue.consumer(workers=workers).run()
        finally:
            heartbeat.stop()
            rt.pipeline.retire()


def supplier_add(
    name: Annotated[str, typer.Argument()],
    siren: Annotated[str | None, typer.Option()] = None,
    vat: Annotated[str | None, typer.Option()] = None,
    iban: Annotated[list[str] | None, typer.Option(help="Repeat for several.")] = None,
    alias: Annotated[list[str] | None, typer.Option(help="Repeat for several.")] = None,
    company: Annotated[str | None, typer.Option(help="Company id or SIREN.")] = None,
    as_json: cli.JsonOpt = False,
) -> None:
    """Add a supplier (or merge IBANs and aliases into the one with this SIREN)."""
    with cli._runtime() as rt:
        with session_scope(rt.archive.engine, read_only=True) as session:
            company_id = resolve_company(session, company).id
        row = upsert_supplier(
            rt.archive.engine,
            company_id,
            name=name,
            siren=siren,
            vat=vat,
            ibans=iban or (),
            aliases=alias or (),
        )
    body = row.model_dump(mode="json")
    cli._print_json(body) if as_json else cli.out.print(f"{row.id}  {row.name}  {row.siren or ''}")


def supplier_list(
    company: Annotated[str | None, typer.Option(help="Company id or SIREN.")] = None,
    as_json: cli.JsonOpt = False,
) -> None:
    with cli._runtime() as rt:
        with session_scope(rt.archive.engine, read_only=True) as session:
            company_id = resolve_company(session, company).id
        rows = list_suppliers(rt.archive.engine, company_id)
    if as_json:
        cli._print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("name", "SIREN", "VAT", "IBANs", box=None)
    for r in rows:
        table.add_row(r.name, r.siren or "", r.vat or "", ", ".join(r.ibans))
    cli.out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(watch)
    app.command()(worker)
    supplier_app.command("add")(supplier_add)
    supplier_app.command("list")(supplier_list)
    app.add_typer(supplier_app, name="supplier")
