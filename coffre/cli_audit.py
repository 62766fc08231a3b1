"""Auditor commands: ``export-evidence``, ``export-period``, ``integrity-check`` and
``renew-evidence`` (they need the runtime), ``verify-bundle`` and ``verify-export`` (they need
nothing: no settings, no database, no server; they must work on an auditor's machine)."""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from archive.bundle import build_bundle, bundle_filename
from archive.bundle_verify import BundleReport, BundleUnreadable, verify_bundle
from archive.export import ExportProgress, ExportUnreadable, export_period
from archive.export_verify import verify_export
from archive.integrity import IntegrityReport, SweepProgress, integrity_sweep
from archive.pki import PkiError, load_certificates
from archive.renew import renew_evidence
from archive.service import resolve_company
from archive.verify import Check
from storage import session_scope

EXIT_OK = 0
EXIT_FAILED_CHECK = 1
EXIT_USAGE = 2
EXIT_UNREADABLE = 3
_DUE_SHOWN = 50

_out = Console()
_err = Console(stderr=True)


def _print_report(report: BundleReport) -> None:
    _print_checks(f"evidence bundle of {report.subject}", report.ok, report.trust, report.checks)


def _pinned_roots(trust: list[Path] | None) -> list[Any] | None:
    """The roots an auditor gave with ``--trust`` (None: trust what the bundle carries)."""
    if not trust:
        return None
    try:
        return [cert for path in trust for cert in load_certificates(path)]
    except (PkiError, OSError) as exc:
        _err.print(f"[bold red]error:[/] --trust: {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from exc


def register(app: typer.Typer) -> None:
    register_period(app)

    @app.command("export-evidence")
    def export_evidence(
        document_id: str,
        output: Annotated[
            Path | None,
            typer.Option("--output", "-o", help="Default: evidence-DOCUMENT_ID.zip; - for stdout."),
        ] = None,
    ) -> None:
        """Write a document's evidence bundle (ZIP) for an auditor; the export is journaled."""
        # Imported here: coffre.cli imports this module at its end (see its last lines).
        from coffre import cli

        with cli._runtime() as rt:
            data = build_bundle(rt.archive, document_id, actor=cli._actor())
        digest = hashlib.sha256(data).hexdigest()
        if output is not None and str(output) == "-":
            sys.stdout.buffer.write(data)
            return
        target = output or Path(bundle_filename(uuid.UUID(document_id)))
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
        _err.print(escape(f"wrote {target} ({len(data)} bytes, sha256 {digest})"), highlight=False)

    @app.command("verify-bundle")
    def verify_bundle_cmd(
        bundle: Path,
        trust: Annotated[
            list[Path] | None,
            typer.Option(
                "--trust",
                help="A root certificate (PEM or DER) you obtained yourself; trusted instead "
                "of the roots shipped in the bundle. Repeat for several.",
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Check an evidence bundle offline (no settings, database or server needed).

        Exit 0: every check holds; 1: a check failed (the report names it); 3: unreadable."""
        roots = _pinned_roots(trust)
        try:
            report = verify_bundle(bundle, trust_roots=roots)
        except BundleUnreadable as exc:
            message = escape(f"{bundle}: {exc.message} [{exc.code}]")
            _err.print(f"[bold red]error:[/] {message}", highlight=False)
            raise typer.Exit(EXIT_UNREADABLE) from exc
        if as_json:
            sys.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
        else:
            _print_report(report)
        raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED_CHECK)


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    )


def _print_checks(title: str, ok: bool, trust: str | None, checks: Sequence[Check]) -> None:
    status = "[green]OK[/]" if ok else "[bold red]FAILED[/]"
    _out.print(f"{escape(title)}: {status}", highlight=False)
    _out.print(f"trust: {escape(trust or '')}", highlight=False)
    for check in checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        detail = f" — {check.detail}" if check.detail else ""
        _out.print(f"  {mark} {escape(check.name + detail)}", highlight=False, soft_wrap=True)


def _company_id(rt: Any, ref: str | None) -> uuid.UUID | None:
    if ref is None:
        return None
    with session_scope(rt.archive.engine, read_only=True) as session:
        return resolve_company(session, ref).id


def register_period(app: typer.Typer) -> None:
    """Fiscal-year exports, integrity sweeps and evidence renewal (issue "Tax auditors")."""

    @app.command("export-period")
    def export_period_cmd(
        out: Annotated[Path, typer.Argument(help="Folder to create (absent or empty).")],
        company: Annotated[str, typer.Option(help="Company id or SIREN.")],
        year: Annotated[int, typer.Option(help="Fiscal year (calendar year of issue date).")],
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Export a company's fiscal year: every document, an index, a sealed manifest.

        Journaled ("period.exported"). Exit 1 when a stored artifact no longer matched its
        fingerprint (it is exported as found, and named)."""
        from coffre import cli

        with cli._runtime() as rt, _progress(f"export {year}") as progress:
            task = progress.add_task("documents", total=None, detail="")

            def show(p: ExportProgress) -> None:
                progress.update(
                    task,
                    completed=p.documents_scanned,
                    total=p.documents_total,
                    detail=f"{p.documents_exported} in {year}",
                )

            result = export_period(
                rt.archive,
                company_ref=company,
                year=year,
                out=out,
                actor=cli._actor(),
                on_progress=show,
            )
        if as_json:
            sys.stdout.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
        else:
            _out.print(
                escape(
                    f"wrote {out}: {result.documents} documents, {result.files} files, "
                    f"{result.bytes} bytes; manifest sha256 {result.manifest_sha256}"
                ),
                highlight=False,
            )
            for problem in result.problems:
                _err.print(f"[red]✗[/] {escape(problem)}", highlight=False)
        raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED_CHECK)

    @app.command("verify-export")
    def verify_export_cmd(
        folder: Path,
        trust: Annotated[
            list[Path] | None,
            typer.Option("--trust", help="A root certificate (PEM or DER) you obtained yourself."),
        ] = None,
        deep: Annotated[
            bool, typer.Option("--deep", help="Also validate every document's seals and tokens.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Check a fiscal-year export offline (no settings, database or server needed).

        Exit 0: every check holds; 1: a check failed (the report names it); 3: unreadable."""
        roots = _pinned_roots(trust)
        try:
            report = verify_export(folder, trust_roots=roots, deep=deep)
        except ExportUnreadable as exc:
            _err.print(f"[bold red]error:[/] {escape(f'{exc.message} [{exc.code}]')}")
            raise typer.Exit(EXIT_UNREADABLE) from exc
        if as_json:
            sys.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
        else:
            _print_checks(f"export of {report.subject}", report.ok, report.trust, report.checks)
        raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED_CHECK)

    @app.command("integrity-check")
    def integrity_check_cmd(
        company: Annotated[
            str | None, typer.Option(help="Only this company (id or SIREN).")
        ] = None,
        horizon_days: Annotated[
            int, typer.Option(help="List evidence whose certificates expire within N days.")
        ] = 365,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Re-hash every artifact, validate every seal, timestamp and the journal.

        Also lists evidence whose certificates expire within the horizon or whose algorithms
        are denied (sha1, md5, RSA < 2048). Journaled ("integrity.checked"). Exit 1 if
        anything failed."""
        from coffre import cli

        with cli._runtime() as rt, _progress("integrity") as progress:
            task = progress.add_task("documents", total=None, detail="")

            def show(p: SweepProgress) -> None:
                progress.update(
                    task,
                    completed=p.documents_done,
                    total=p.documents_total,
                    detail=f"{p.artifacts} artifacts, {p.failures} failures",
                )

            report = integrity_sweep(
                rt.archive,
                actor=cli._actor(),
                company_id=_company_id(rt, company),
                horizon_days=horizon_days,
                on_progress=show,
            )
        if as_json:
            sys.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
        else:
            _print_sweep(report)
        raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED_CHECK)

    @app.command("renew-evidence")
    def renew_evidence_cmd(
        horizon_days: Annotated[
            int, typer.Option(help="Renew evidence whose proof lapses within N days.")
        ] = 365,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list it.")] = False,
        company: Annotated[
            str | None, typer.Option(help="Only this company (id or SIREN).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Add archive timestamps to evidence before it lapses.

        A PAdES document timestamp on the newest sealed PDF (new artifact sealed.lta-N); an
        RFC 3161 renewal of detached evidence (ARTIFACT.renewal-N.json and .tsr). Nothing is
        overwritten; each renewal is journaled ("evidence.renewed")."""
        from coffre import cli

        with cli._runtime() as rt, _progress("renew") as progress:
            task = progress.add_task("documents", total=None, detail="")

            def show(p: SweepProgress) -> None:
                progress.update(task, completed=p.documents_done, total=p.documents_total)

            report = renew_evidence(
                rt.archive,
                actor=cli._actor(),
                horizon_days=horizon_days,
                company_id=_company_id(rt, company),
                dry_run=dry_run,
                on_progress=show,
            )
        if as_json:
            sys.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
        else:
            verb = "would renew" if dry_run else "renewed"
            _out.print(f"{verb} {len(report.renewed)} piece(s) of evidence", highlight=False)
            for item in report.renewed:
                added = ", ".join(item.added) or item.construction
                _out.print(
                    escape(f"  document:{item.document_id} {item.artifact} → {added}"),
                    highlight=False,
                )
            for failure in report.failures:
                _err.print(f"[red]✗[/] {escape(str(failure))}", highlight=False)
        raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED_CHECK)


def _print_sweep(report: IntegrityReport) -> None:
    summary = report.summary()
    status = "[green]OK[/]" if report.ok else "[bold red]FAILED[/]"
    rates = summary["per_second"]
    _out.print(
        f"integrity: {status} — {report.documents} documents, {report.artifacts} artifacts "
        f"({report.bytes_read} bytes), {report.proofs} seals+timestamps, "
        f"{report.journal_events} journal events, {report.journal_anchors} anchors",
        highlight=False,
    )
    _out.print(
        f"throughput: {rates['artifacts_hashed']} artifacts/s hashed, "
        f"{rates['proofs_validated']} proofs/s validated, "
        f"{rates['artifacts_whole_sweep']} artifacts/s whole sweep "
        f"({summary['seconds']['total']} s)",
        highlight=False,
    )
    for failure in report.failures:
        _out.print(f"  [red]✗[/] {escape(str(failure))}", highlight=False, soft_wrap=True)
    if summary["expiring_certificates"]:
        _out.print(f"certificates expiring within {report.horizon_days} days:", highlight=False)
        for cert in summary["expiring_certificates"]:
            _out.print(
                escape(
                    f"  {cert['role']} {cert['subject']} — {cert['not_after']}, "
                    f"{cert['evidence']} piece(s) of evidence"
                ),
                highlight=False,
            )
    for layer, reasons in report.due[:_DUE_SHOWN]:
        _out.print(
            escape(f"  due: document:{layer.document_id} {layer.artifact}: {'; '.join(reasons)}"),
            highlight=False,
            soft_wrap=True,
        )
    if len(report.due) > _DUE_SHOWN:
        _out.print(f"  … and {len(report.due) - _DUE_SHOWN} more (--json lists them all)")
    for reason in report.anchor_due:
        _out.print(escape(f"  due: latest journal anchor: {reason}"), highlight=False)
    if report.due or report.anchor_due:
        _out.print("run: coffre renew-evidence [--dry-run]", highlight=False)
