"""The ``coffre`` command line. Library errors become messages and exit codes here only."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
from rich.console import Console
from rich.table import Table

from archive.access import create_token
from archive.errors import ArchiveError, BadInput
from archive.models import Company, DocumentKind, Quarantine, Role
from archive.service import anchor_if_due, create_company, describe, read_artifact
from archive.verify import VerificationReport, verify_document, verify_file, verify_journal_report
from capture.service import receive_file
from coffre.runtime import ConfigurationError, Runtime, build_runtime
from coffre.settings import Settings
from storage import StorageError, session_scope
from storage.types import utcnow

app = typer.Typer(no_args_is_help=True, help="Coffre: sealed, write-once archive of invoices.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
company_app = typer.Typer(
    no_args_is_help=True, help="Companies (each with its SIREN and retention)."
)
journal_app = typer.Typer(no_args_is_help=True, help="The hash-chained journal.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Inputs refused and kept.")
auditor_app = typer.Typer(no_args_is_help=True, help="Tax auditors' scoped, expiring access.")
app.add_typer(token_app, name="token")
app.add_typer(company_app, name="company")
app.add_typer(journal_app, name="journal")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(auditor_app, name="auditor")

out = Console()
err = Console(stderr=True)

EXIT_FAILED_CHECK = 1
EXIT_CONFIG = 2
EXIT_BAD_INPUT = 3
EXIT_NOT_FOUND = 4
EXIT_STORAGE = 5
EXIT_ERROR = 6

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _actor() -> str:
    return f"admin:cli:{getpass.getuser()}"


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _runtime() -> Iterator[Runtime]:
    """Build the runtime and turn every domain error into a message and an exit code."""
    try:
        yield build_runtime(Settings())
    except ConfigurationError as exc:
        _fail(str(exc), EXIT_CONFIG)
    except BadInput as exc:
        _fail(f"{exc.message} [{exc.code}]", EXIT_BAD_INPUT)
    except ArchiveError as exc:
        _fail(f"{exc.message} [{exc.code}]", EXIT_NOT_FOUND if exc.status == 404 else EXIT_ERROR)
    except StorageError as exc:
        _fail(f"storage: {exc}", EXIT_STORAGE)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


@app.command()
def init(as_json: JsonOpt = False) -> None:
    """Create the data directory, database, development PKI and default company."""
    with _runtime() as rt:
        info = {
            "mode": rt.settings.mode,
            "data_dir": str(rt.settings.data_dir.resolve()),
            "database": rt.settings.db_url.split("@")[-1],
            "store": rt.archive.store.backend,
        }
        _print_json(info) if as_json else out.print(info)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run the HTTP API (and the built-in timestamp service)."""
    import uvicorn

    from coffre.app import create_app

    with _runtime() as rt:
        application = create_app(runtime=rt)
        uvicorn.run(
            application,
            host=host or rt.settings.host,
            port=port or rt.settings.port,
            log_level=rt.settings.log_level,
        )


@app.command("deposit")
def deposit_cmd(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    kind: Annotated[
        DocumentKind | None,
        typer.Option(help="Default: supplier_invoice, or credit_note for e-invoice credit notes."),
    ] = None,
    company: Annotated[str | None, typer.Option(help="Company id or SIREN.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Archive files as they are: fingerprint, seal, timestamp, store, journal.

    E-invoices (Factur-X/ZUGFeRD PDF, CII, UBL) are recognised from their content, read and
    validated; other PDFs also get a PAdES-sealed copy."""
    results: list[dict[str, Any]] = []
    failed = False
    with _runtime() as rt:
        for path in files:
            try:
                outcome = receive_file(
                    rt.archive,
                    rt.validator,
                    data=path.read_bytes(),
                    filename=path.name,
                    kind=kind.value if kind else None,
                    company_ref=company,
                    actor=_actor(),
                    source="cli",
                )
            except BadInput as exc:
                failed = True
                results.append(
                    {
                        "file": str(path),
                        "outcome": "quarantined",
                        "code": exc.code,
                        "reason": exc.message,
                        **exc.data,
                    }
                )
                continue
            results.append(
                {
                    "file": str(path),
                    "document_id": str(outcome.document.id),
                    "outcome": "archived" if outcome.created else "already_archived",
                    "sha256": outcome.document.original_sha256,
                }
            )
    if as_json:
        _print_json(results)
    else:
        for r in results:
            if r["outcome"] == "quarantined":
                err.print(
                    f"[red]quarantined[/] {r['file']}: {r['reason']} "
                    f"(quarantine {r.get('quarantine_id')})",
                    highlight=False,
                )
            else:
                out.print(f"{r['document_id']}  {r['outcome']}  {r['file']}", highlight=False)
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def show(document_id: str, as_json: JsonOpt = False) -> None:
    """A document with its artifacts, evidence, state and journal events."""
    with _runtime() as rt, session_scope(rt.archive.engine) as session:
        body = describe(session, document_id)
        rt.archive.journal.append(
            session,
            actor=_actor(),
            action="document.viewed",
            subject=f"document:{body['document']['id']}",
            payload={},
        )
    if as_json:
        _print_json(body)
        return
    doc = body["document"]
    out.print(
        f"[bold]{doc['id']}[/]  {doc['kind']}  state={doc['state']}  "
        f"sha256={doc['original_sha256']}"
    )
    table = Table("artifact", "sha256", "size", "storage key", "retain until")
    for a in body["artifacts"]:
        table.add_row(
            a["name"], a["sha256"][:16] + "…", str(a["size"]), a["storage_key"], a["retain_until"]
        )
    out.print(table)


@app.command()
def get(
    document_id: str,
    artifact: Annotated[str, typer.Option("--artifact", "-a")] = "sealed",
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("-"),
) -> None:
    """Write out a stored artifact (the read is journaled)."""
    with _runtime() as rt:
        _, data = read_artifact(rt.archive, document_id=document_id, name=artifact, actor=_actor())
    if str(output) == "-":
        sys.stdout.buffer.write(data)
    else:
        tmp = output.with_name(output.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(output)
        err.print(f"wrote {len(data)} bytes to {output}")


def _report(reports: list[VerificationReport], as_json: bool) -> None:
    if as_json:
        _print_json({"ok": all(r.ok for r in reports), "reports": [r.to_json() for r in reports]})
    else:
        for report in reports:
            status = "[green]OK[/]" if report.ok else "[bold red]FAILED[/]"
            out.print(f"{report.subject}: {status}", highlight=False)
            for check in report.checks:
                mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
                detail = f" — {check.detail}" if check.detail else ""
                out.print(f"  {mark} {check.name}{detail}", highlight=False)
    if not all(r.ok for r in reports):
        raise typer.Exit(EXIT_FAILED_CHECK)


@app.command()
def verify(document_id: str, as_json: JsonOpt = False) -> None:
    """Check a document's bytes, seals, timestamps, evidence and the journal chain."""
    with _runtime() as rt:
        report = verify_document(rt.archive, document_id, actor=_actor())
    _report([report], as_json)


@app.command("verify-file")
def verify_file_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)], as_json: JsonOpt = False
) -> None:
    """Check that a file is held by the archive and that its evidence holds."""
    with _runtime() as rt:
        reports = verify_file(rt.archive, file, actor=_actor())
    _report(reports, as_json)


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option()],
    name: Annotated[str, typer.Option()],
    company: Annotated[
        str | None, typer.Option(help="Limit to this company (id or SIREN).")
    ] = None,
    expires_days: Annotated[int | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token; it is printed once and stored only hashed."""
    from archive.service import resolve_company

    with _runtime() as rt, session_scope(rt.archive.engine) as session:
        company_id = resolve_company(session, company).id if company else None
        expires = utcnow() + timedelta(days=expires_days) if expires_days else None
        plain, row = create_token(
            session,
            name=name,
            role=role,
            company_id=company_id,
            expires_at=expires,
            created_by=_actor(),
        )
        rt.archive.journal.append(
            session,
            actor=_actor(),
            action="token.created",
            subject=f"token:{row.id}",
            payload={
                "name": name,
                "role": role.value,
                "company_id": company_id,
                "expires_at": expires,
            },
        )
    if as_json:
        _print_json({"id": str(row.id), "token": plain, "role": role.value, "name": name})
    else:
        out.print(plain, highlight=False)


@app.command()
def reindex(as_json: JsonOpt = False) -> None:
    """Rebuild the search index from the registry and the stored files (after an upgrade)."""
    from archive.search import reindex as rebuild

    with _runtime() as rt:
        count = rebuild(rt.archive, actor=_actor())
    _print_json({"indexed": count}) if as_json else out.print(f"{count} documents indexed")


@auditor_app.command("grant")
def auditor_grant(
    name: Annotated[str, typer.Option(help="Who: e.g. 'DGFiP - M. Martin'.")],
    company: Annotated[str, typer.Option(help="The audited company (id or SIREN).")],
    years: Annotated[
        list[int], typer.Option("--year", help="A fiscal year under review; repeat for several.")
    ],
    expires: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="Last day of access (YYYY-MM-DD).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Give a tax auditor read-only access to one company's fiscal years until a date.

    The token is printed once; every search, view and download made with it is journaled
    under the auditor's name."""
    from archive.service import resolve_company

    until = expires.replace(tzinfo=UTC) + timedelta(days=1)  # through the whole last day
    if until <= utcnow():
        _fail("the expiry date is in the past", EXIT_BAD_INPUT)
    with _runtime() as rt, session_scope(rt.archive.engine) as session:
        company_id = resolve_company(session, company).id
        plain, row = create_token(
            session,
            name=name,
            role=Role.auditor,
            company_id=company_id,
            expires_at=until,
            fiscal_years=sorted(set(years)),
            created_by=_actor(),
        )
        rt.archive.journal.append(
            session,
            actor=_actor(),
            action="auditor.granted",
            subject=f"token:{row.id}",
            payload={
                "name": name,
                "company_id": company_id,
                "fiscal_years": sorted(set(years)),
                "expires_at": until,
            },
        )
    if as_json:
        _print_json(
            {
                "id": str(row.id),
                "token": plain,
                "company_id": str(company_id),
                "fiscal_years": sorted(set(years)),
                "expires_at": until.isoformat(),
            }
        )
    else:
        out.print(plain, highlight=False)


@company_app.command("create")
def company_create(
    name: Annotated[str, typer.Option()],
    siren: Annotated[str | None, typer.Option()] = None,
    retention_years: Annotated[int, typer.Option()] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Register a company (an accounting firm archives for many)."""
    with _runtime() as rt, session_scope(rt.archive.engine) as session:
        try:
            company = create_company(
                session, name=name, siren=siren, retention_years=retention_years
            )
        except ValueError as exc:  # python-stdnum's ValidationError is a ValueError
            _fail(f"invalid SIREN {siren!r}: {exc}", EXIT_BAD_INPUT)
        rt.archive.journal.append(
            session,
            actor=_actor(),
            action="company.created",
            subject=f"company:{company.id}",
            payload=company.model_dump(mode="json"),
        )
        body = company.model_dump(mode="json")
    _print_json(body) if as_json else out.print(f"{body['id']}  {name}  {siren or ''}")


@company_app.command("list")
def company_list(as_json: JsonOpt = False) -> None:
    from sqlmodel import select

    with _runtime() as rt, session_scope(rt.archive.engine) as session:
        rows = [c.model_dump(mode="json") for c in session.exec(select(Company))]
    if as_json:
        _print_json(rows)
        return
    for c in rows:
        out.print(
            f"{c['id']}  {c['name']}  {c['siren'] or ''}{'  (default)' if c['is_default'] else ''}",
            highlight=False,
        )


@journal_app.command("verify")
def journal_verify(as_json: JsonOpt = False) -> None:
    """Walk the whole chain and check every anchor's timestamp."""
    with _runtime() as rt:
        report = verify_journal_report(rt.archive)
    _report([report], as_json)


@journal_app.command("anchor")
def journal_anchor(as_json: JsonOpt = False) -> None:
    """Timestamp the journal head now (also done every N events and daily)."""
    with _runtime() as rt:
        anchor = anchor_if_due(rt.archive, force=True)
    body = (
        {"anchor": anchor.seq, "head_seq": anchor.head_seq, "tst_time": anchor.tst_time}
        if anchor
        else {"anchor": None, "detail": "nothing new since the last anchor"}
    )
    _print_json(body) if as_json else out.print(body)


@quarantine_app.command("list")
def quarantine_list(as_json: JsonOpt = False) -> None:
    from sqlmodel import select

    with _runtime() as rt, session_scope(rt.archive.engine) as session:
        rows = [q.model_dump(mode="json") for q in session.exec(select(Quarantine))]
    if as_json:
        _print_json(rows)
        return
    for q in rows:
        out.print(f"{q['id']}  {q['filename']}  {q['reason_code']}: {q['reason']}", highlight=False)


from coffre import cli_capture  # noqa: E402 - registers on ``app`` defined above

cli_capture.register(app)

from coffre import cli_audit  # noqa: E402

cli_audit.register(app)


def main() -> None:
    # Logs go to stderr: stdout carries the results (--json).
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    app()
