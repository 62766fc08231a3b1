"""Auditor commands: ``export-evidence`` (needs the runtime) and ``verify-bundle`` (needs
nothing: no settings, no database, no server; it must work on an auditor's machine)."""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from archive.bundle import build_bundle, bundle_filename
from archive.bundle_verify import BundleReport, BundleUnreadable, verify_bundle
from archive.pki import PkiError, load_certificates

EXIT_OK = 0
EXIT_FAILED_CHECK = 1
EXIT_USAGE = 2
EXIT_UNREADABLE = 3

_out = Console()
_err = Console(stderr=True)


def _print_report(report: BundleReport) -> None:
    status = "[green]OK[/]" if report.ok else "[bold red]FAILED[/]"
    _out.print(f"evidence bundle of {report.subject}: {status}", highlight=False)
    _out.print(f"trust: {report.trust}", highlight=False)
    for check in report.checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        detail = f" — {check.detail}" if check.detail else ""
        _out.print(f"  {mark} {check.name}{detail}", highlight=False)


def register(app: typer.Typer) -> None:
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
        _err.print(f"wrote {target} ({len(data)} bytes, sha256 {digest})", highlight=False)

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
        roots = None
        if trust:
            try:
                roots = [cert for path in trust for cert in load_certificates(path)]
            except (PkiError, OSError) as exc:
                _err.print(f"[bold red]error:[/] --trust: {exc}", highlight=False)
                raise typer.Exit(EXIT_USAGE) from exc
        try:
            report = verify_bundle(bundle, trust_roots=roots)
        except BundleUnreadable as exc:
            _err.print(f"[bold red]error:[/] {bundle}: {exc.message} [{exc.code}]", highlight=False)
            raise typer.Exit(EXIT_UNREADABLE) from exc
        if as_json:
            sys.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
        else:
            _print_report(report)
        raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED_CHECK)
