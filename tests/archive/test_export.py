"""Fiscal-year exports: every document of one company's year, as files under a sealed and
timestamped manifest that an auditor checks offline.

The year is chosen by the latest invoice data's issue date, else by receipt; the index
says what each document is; the manifest's seal and token verify with openssl; every
change to the folder (a byte, a file removed or added, a rewritten manifest) is caught and
named; memory does not grow with the number of documents; the CLI exports with a progress
bar and verifies with no configuration at all."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from archive.deposit import Completion, Submission, complete, receive
from archive.errors import UnknownCompany
from archive.export import (
    INDEX_COLUMNS,
    ExportUnreadable,
    OutputExists,
    export_period,
)
from archive.export_verify import verify_export
from archive.invoice import InvoiceData
from archive.models import Document, DocumentState, JournalEvent
from archive.pdf_input import check_pdf
from archive.service import create_company
from coffre.runtime import build_runtime
from storage import session_scope
from tests.conftest import make_settings
from tests.pdfs import make_pdfa

ACTOR = "admin:test"
SIREN = "552120222"
OTHER_SIREN = "732829320"
BIN = Path(sys.executable).parent


def invoice(number: str, issued: date | None, *, total: str = "120.00") -> InvoiceData:
    ttc = Decimal(total)
    return InvoiceData(
        invoice_number=number,
        issue_date=issued,
        due_date=date(issued.year, issued.month, 28) if issued else None,
        seller_name="ACME Fournitures SAS",
        seller_siren="443061841",
        total_ht=(ttc / Decimal("1.2")).quantize(Decimal("0.01")),
        total_vat=ttc - (ttc / Decimal("1.2")).quantize(Decimal("0.01")),
        total_ttc=ttc,
        currency="EUR",
    )


def receive_invoice(
    archive, seed: int, data: InvoiceData | None, *, company: str = SIREN, state: str = "archived"
) -> Document:
    """A PDF invoice archived with its invoice data, as capture would hand it over."""

    def admit(received: bytes) -> Submission:
        check_pdf(received)
        return Submission(pades_copy=True, invoice=data, state=state)

    return receive(
        archive,
        data=make_pdfa(f"FACTURE {seed}", seed=seed),
        filename=f"f{seed}.pdf",
        company_ref=company,
        actor=ACTOR,
        source="test",
        admit=admit,
    ).document


@dataclass
class Period:
    """An archive with documents spread over fiscal years, and the 2025 export of it."""

    in_2025: list[Document]
    others: list[Document]
    out: Path


@pytest.fixture
def period(archive, tmp_path) -> Period:
    with session_scope(archive.engine) as session:
        create_company(session, name="Durand SARL", siren=SIREN)
        create_company(session, name="Autre SAS", siren=OTHER_SIREN)
    in_2025 = [
        receive_invoice(archive, 1, invoice("F-2025-001", date(2025, 3, 14))),
        receive_invoice(archive, 2, invoice("F-2025-002", date(2025, 12, 31), total="999.99")),
    ]
    # Corrected: version 1 said 2025, the latest version says 2024, so it is not in 2025.
    moved = receive_invoice(
        archive, 3, invoice("F-3", date(2025, 1, 5)), state=DocumentState.received.value
    )
    complete(archive, moved.id, Completion(invoice=invoice("F-3", date(2024, 12, 30))), actor=ACTOR)
    others = [
        moved,
        receive_invoice(archive, 4, invoice("F-2026-1", date(2026, 2, 1))),
        receive_invoice(archive, 5, None),  # no invoice data: the year of receipt
        receive_invoice(archive, 6, invoice("X-1", date(2025, 6, 1)), company=OTHER_SIREN),
    ]
    out = tmp_path / "export-2025"
    return Period(in_2025=in_2025, others=others, out=out)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_fiscal_year_is_exported_indexed_sealed_and_journaled(archive, period):
    result = export_period(archive, company_ref=SIREN, year=2025, out=period.out, actor=ACTOR)
    assert result.ok and result.documents == 2, result.to_json()

    with (period.out / "index.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == INDEX_COLUMNS
    by_id = {row["document_id"]: row for row in rows}
    assert set(by_id) == {str(d.id) for d in period.in_2025}
    second = by_id[str(period.in_2025[1].id)]
    assert (second["invoice_number"], second["issue_date"], second["due_date"]) == (
        "F-2025-002",
        "2025-12-31",
        "2025-12-28",
    )
    assert (second["total_ht"], second["total_vat"], second["total_ttc"]) == (
        "833.32",
        "166.67",
        "999.99",
    )
    assert (second["supplier_name"], second["siren"], second["currency"]) == (
        "ACME Fournitures SAS",
        "443061841",
        "EUR",
    )
    folder = period.out / "documents" / second["document_id"] / "artifacts"
    assert second["original_sha256"] == _sha(folder / "original.pdf")
    assert second["sealed_sha256"] == _sha(folder / "sealed.pdf")
    assert second["original_sha256"] == period.in_2025[1].original_sha256

    manifest = json.loads((period.out / "manifest.json").read_bytes())
    assert manifest["fiscal_year"] == 2025 and manifest["documents"] == 2
    listed = {entry["path"]: entry for entry in manifest["files"]}
    on_disk = {p.relative_to(period.out).as_posix() for p in period.out.rglob("*") if p.is_file()}
    assert on_disk - set(listed) == {"manifest.json", "manifest.json.p7s", "manifest.json.tsr"}
    assert all(_sha(period.out / path) == entry["sha256"] for path, entry in listed.items())
    exported = {e["document_id"] for e in manifest["files"] if e.get("document_id")}
    assert exported == {str(d.id) for d in period.in_2025}  # nor 2024, 2026, another company

    report = verify_export(period.out, deep=True)
    assert report.ok, report.failures

    with session_scope(archive.engine, read_only=True) as session:
        events = session.exec(
            JournalEvent.__table__.select().where(  # type: ignore[attr-defined]
                JournalEvent.action == "period.exported"
            )
        ).all()
    assert len(events) == 1
    payload = events[0].payload
    assert (payload["fiscal_year"], payload["count"], payload["siren"]) == (2025, 2, SIREN)
    assert payload["manifest_sha256"] == _sha(period.out / "manifest.json")


def test_the_readme_commands_check_the_manifest_with_standard_tools(archive, period):
    export_period(archive, company_ref=SIREN, year=2025, out=period.out, actor=ACTOR)
    readme = (period.out / "README.txt").read_text(encoding="utf-8")
    commands = {
        "openssl cms -verify -binary -inform DER -in manifest.json.p7s -content manifest.json "
        "-CAfile certificates/root.pem -purpose any -out /dev/null": "Verification successful",
        "openssl ts -verify -data manifest.json -in manifest.json.tsr "
        "-CAfile certificates/root.pem -untrusted certificates/tsa.pem": "Verification: OK",
        "sha256sum --quiet -c SHA256SUMS": "",
    }
    for command, expected in commands.items():
        assert command.split(" -")[0] in readme
        done = subprocess.run(
            command, shell=True, cwd=period.out, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and expected in done.stdout + done.stderr, (command, done)
    sums = next(
        json.loads(line.rstrip(","))
        for line in (period.out / "manifest.json").read_text().splitlines()
        if '"path": "SHA256SUMS"' in line
    )
    assert sums["sha256"] == _sha(period.out / "SHA256SUMS")

    manifest = period.out / "manifest.json"
    os.chmod(manifest, 0o644)
    manifest.write_bytes(
        manifest.read_bytes().replace(b'"fiscal_year": 2025', b'"fiscal_year": 2024')
    )
    for command in list(commands)[:2]:
        done = subprocess.run(command, shell=True, cwd=period.out, capture_output=True, check=False)
        assert done.returncode != 0, command


def test_an_export_never_writes_over_files_nor_for_an_unknown_company(archive, period):
    period.out.mkdir()
    (period.out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExists):
        export_period(archive, company_ref=SIREN, year=2025, out=period.out, actor=ACTOR)
    assert [p.name for p in period.out.iterdir()] == ["notes.txt"]
    with pytest.raises(UnknownCompany):
        export_period(
            archive, company_ref="999999999", year=2025, out=period.out.with_name("x"), actor=ACTOR
        )
    assert not period.out.with_name("x").exists()
    leftovers = [p.name for p in period.out.parent.iterdir() if ".partial-" in p.name]
    assert leftovers == []


def test_a_damaged_stored_artifact_is_exported_as_found_and_named(request, runtime, archive):
    if archive.store.backend != "local":
        pytest.skip("S3 Object Lock leaves no way behind the gateway")
    period = request.getfixturevalue("period")
    victim = period.in_2025[0]
    objects = Path(runtime.settings.objects_dir)
    target = next(  # the stored original: the file whose bytes are its fingerprint
        p
        for p in objects.rglob("*")
        if p.is_file() and not p.name.startswith(".") and _sha(p) == victim.original_sha256
    )
    os.chmod(target, 0o644)
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    result = export_period(archive, company_ref=SIREN, year=2025, out=period.out, actor=ACTOR)
    assert not result.ok
    assert any(f"document {victim.id} artifact original" in p for p in result.problems)
    report = verify_export(period.out)
    failures = [str(f) for f in report.failures]
    assert any(
        f"documents/{victim.id}: artifacts match the journal events" in f
        and "artifact original" in f
        for f in failures
    ), failures


# -- tampering, as an auditor would find it -------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory, pki_template) -> Iterator[Path]:
    """One export, made once; each tampering case works on a copy."""
    base = tmp_path_factory.mktemp("export")
    rt = build_runtime(make_settings(base / "data", pki_template))
    try:
        with session_scope(rt.archive.engine) as session:
            create_company(session, name="Durand SARL", siren=SIREN)
        for seed in (11, 12):
            receive_invoice(rt.archive, seed, invoice(f"F-{seed}", date(2025, 4, seed)))
        out = base / "out"
        export_period(rt.archive, company_ref=SIREN, year=2025, out=out, actor=ACTOR)
        yield out
    finally:
        rt.archive.engine.dispose()


def _copy(exported: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(exported, target)
    for path in target.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return target


def _first_artifact(folder: Path, name: str) -> Path:
    return sorted(folder.glob(f"documents/*/artifacts/{name}"))[0]


def _rewrite_manifest_over(folder: Path, changed: Path) -> None:
    """An attacker's cover: the manifest and SHA256SUMS rewritten to the changed file."""
    relative = changed.relative_to(folder).as_posix()
    manifest = folder / "manifest.json"
    text = manifest.read_text()
    lines = []
    for line in text.splitlines():
        if f'"path": "{relative}"' in line:
            entry = json.loads(line.strip().rstrip(","))
            entry["sha256"] = _sha(changed)
            entry["size"] = changed.stat().st_size
            line = "  " + json.dumps(entry, sort_keys=True) + ("," if line.endswith(",") else "")
        lines.append(line)
    manifest.write_text("\n".join(lines) + "\n")
    sums = folder / "SHA256SUMS"
    sums.write_text(
        "".join(
            f"{_sha(changed)}  {relative}\n" if line.endswith(f"  {relative}") else line + "\n"
            for line in sums.read_text().splitlines()
        )
    )


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_untouched_export_verifies(exported):
    report = verify_export(exported, deep=True)
    assert report.ok, report.failures
    names = [c.name for c in report.checks]
    assert "manifest.json.p7s: seal over manifest.json" in names
    assert "manifest.json.tsr: timestamp over manifest.json" in names


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("flip original", "listed, present and unchanged"),
        ("remove sealed", "listed but missing"),
        ("add file", "present but not in the manifest"),
        ("flip original, rewrite manifest", "manifest.json.p7s: seal over manifest.json"),
        ("flip index, rewrite manifest", "manifest.json.tsr: timestamp over manifest.json"),
        ("remove token", "manifest.json.tsr: timestamp over manifest.json"),
    ],
)
def test_each_change_to_an_export_is_caught_and_named(exported, tmp_path, change, expected):
    folder = _copy(exported, tmp_path)
    original = _first_artifact(folder, "original.pdf")
    if change.startswith("flip original"):
        _flip(original)
    elif change == "remove sealed":
        _first_artifact(folder, "sealed.pdf").unlink()
    elif change == "add file":
        (original.parent / "extra.pdf").write_bytes(b"%PDF-1.7 forged")
    elif change.startswith("flip index"):
        _flip(folder / "index.csv")
    elif change == "remove token":
        (folder / "manifest.json.tsr").unlink()
    if change.endswith("rewrite manifest"):
        _rewrite_manifest_over(folder, folder / "index.csv" if "index" in change else original)
    report = verify_export(folder)
    assert not report.ok
    failed = [f"{c.name}: {c.detail}" for c in report.failures]
    assert any(expected in f for f in failed), failed
    if change == "flip original":
        assert any(original.relative_to(folder).as_posix() in f for f in failed), failed


def test_a_rewritten_manifest_that_also_hides_the_journal_is_caught_deep(exported, tmp_path):
    """Changing a PDF and every list that names it still breaks the manifest seal; and the
    per-document check names the artifact against its journal event."""
    folder = _copy(exported, tmp_path)
    original = _first_artifact(folder, "original.pdf")
    _flip(original)
    _rewrite_manifest_over(folder, original)
    report = verify_export(folder, deep=True)
    failed = [f"{c.name}: {c.detail}" for c in report.failures]
    assert any("journal" in f and "artifact original" in f for f in failed), failed


def test_pinned_foreign_roots_and_unreadable_exports(exported, foreign_pki, dev_pki, tmp_path):
    pinned = verify_export(exported, trust_roots=[dev_pki.load_root()])
    assert pinned.ok and pinned.trust.startswith("pinned roots")
    foreign = verify_export(exported, trust_roots=[foreign_pki.load_root()])
    assert not foreign.ok
    with pytest.raises(ExportUnreadable):
        verify_export(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(ExportUnreadable):
        verify_export(tmp_path)


# -- streaming --------------------------------------------------------------------------------


def test_memory_does_not_grow_with_the_number_of_documents(tmp_path, pki_template):
    """10 documents in 2025 and 60 in 2024 in one archive: both exports scan all 70; the
    60-document export writes 6× the bytes but peaks at (almost) the same memory.

    Memory is measured with tracemalloc after a first run of each (caches warm). A design
    that kept the documents, the index or the manifest entries in memory would grow with
    the 50 extra documents (their files are ~3 MB, their manifest entries ~70 kB)."""
    rt = build_runtime(make_settings(tmp_path / "data", pki_template))
    archive = rt.archive
    try:
        with session_scope(archive.engine) as session:
            create_company(session, name="Durand SARL", siren=SIREN)
        for seed in range(70):
            year = 2025 if seed < 10 else 2024
            receive_invoice(archive, 100 + seed, invoice(f"F-{seed}", date(year, 5, 1 + seed % 28)))

        def peak(year: int, name: str) -> tuple[int, int]:
            tracemalloc.start()
            try:
                result = export_period(
                    archive,
                    company_ref=SIREN,
                    year=year,
                    out=tmp_path / name,
                    actor=ACTOR,
                    page_size=5,
                )
                return tracemalloc.get_traced_memory()[1], result.bytes
            finally:
                tracemalloc.stop()

        peak(2025, "warm-10")
        peak(2024, "warm-60")
        small, small_bytes = peak(2025, "ten")
        large, large_bytes = peak(2024, "sixty")
    finally:
        archive.engine.dispose()
    assert large_bytes > 5 * small_bytes
    growth = large - small
    # Far below linear: under 1/20 of what the 50 extra documents weigh, under 25 %.
    assert growth < (large_bytes - small_bytes) / 20, (small, large, small_bytes, large_bytes)
    assert large < small * 1.25, (small, large)


# -- the command line -------------------------------------------------------------------------


def test_cli_exports_a_year_and_verifies_it_with_no_configuration(tmp_path, pki_template):
    from typer.testing import CliRunner

    from coffre.cli import app

    data_dir = tmp_path / "data"
    rt = build_runtime(make_settings(data_dir, pki_template))
    try:
        with session_scope(rt.archive.engine) as session:
            create_company(session, name="Durand SARL", siren=SIREN)
        receive_invoice(rt.archive, 77, invoice("F-77", date(2025, 7, 7)))
    finally:
        rt.archive.engine.dispose()
    env = {"COFFRE_DATA_DIR": str(data_dir)}

    def coffre(*args: str):
        return CliRunner().invoke(app, list(args), env=env)

    out = tmp_path / "out"
    done = coffre("export-period", "--company", SIREN, "--year", "2025", str(out), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["documents"] == 1

    # The auditor's machine: a copy of the folder, no COFFRE_* variable, no data directory.
    auditor = tmp_path / "auditor"
    shutil.copytree(out, auditor / "out")
    checked = subprocess.run(
        [str(BIN / "coffre"), "verify-export", "out", "--deep"],
        capture_output=True,
        text=True,
        cwd=auditor,
        env={k: v for k, v in os.environ.items() if not k.startswith("COFFRE_")},
        check=False,
        timeout=180,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout and "development PKI" in checked.stdout
    assert sorted(p.name for p in auditor.iterdir()) == ["out"]  # nothing created

    _flip(_first_artifact(auditor / "out", "original.pdf"))
    broken = coffre("verify-export", str(auditor / "out"), "--json")
    assert broken.exit_code == 1 and not json.loads(broken.stdout)["ok"]
    assert coffre("verify-export", str(tmp_path / "nowhere")).exit_code == 3
    again = coffre("export-period", "--company", SIREN, "--year", "2025", str(out))
    assert again.exit_code != 0 and "exists" in again.output
