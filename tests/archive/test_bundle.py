"""Evidence bundles: what a tax auditor receives, and checks without trusting Coffre.

A bundle of a PDF and of an e-invoice verifies offline; every part tampered with in turn
(as an attacker who also rewrites SHA256SUMS and the manifest would) fails verification,
and the report names that part; every command of the README works with the real tools;
the CLI exports and verifies (the verifier with no configuration at all); the API hands
the bundle to an authorised reader only."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from archive.access import create_token
from archive.bundle import build_bundle, bundle_filename
from archive.bundle_readme import PROMPT
from archive.bundle_verify import BundleUnreadable, verify_bundle
from archive.deposit import deposit
from archive.models import Role
from archive.service import create_company, describe, read_artifact
from coffre.app import create_app
from coffre.runtime import Runtime, build_runtime
from storage import session_scope
from tests.conftest import make_settings
from tests.pdfs import make_pdfa

ACTOR = "auditor:test"
BIN = Path(sys.executable).parent
CII = "en16931/cii/examples/CII_example1.xml"


# -- reading and rewriting bundles, as an auditor or an attacker would ----------------------


def unpack(data: bytes) -> tuple[str, dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as handle:
        names = handle.namelist()
        top = names[0].split("/")[0]
        return top, {n.split("/", 1)[1]: handle.read(n) for n in names}


def repack(top: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle:
        for path, data in files.items():
            handle.writestr(f"{top}/{path}", data)
    return buffer.getvalue()


def tampered(data: bytes, change: Callable[[dict[str, bytes]], None], *, cover: bool) -> bytes:
    """The bundle with ``change`` applied; ``cover`` also rewrites the manifest and
    SHA256SUMS to match, so that only the proofs can catch it."""
    top, files = unpack(data)
    change(files)
    if cover:
        manifest = json.loads(files["manifest.json"])
        manifest["files"] = [
            {**e, "sha256": _sha(files[e["path"]]), "size": len(files[e["path"]])}
            for e in manifest["files"]
            if e["path"] in files
        ]
        files["manifest.json"] = json.dumps(manifest).encode()
        files["SHA256SUMS"] = "".join(
            f"{_sha(files[p])}  {p}\n" for p in sorted(files) if p != "SHA256SUMS"
        ).encode()
    return repack(top, files)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def failed(report) -> list[str]:
    return [check.name for check in report.failures]


def chain_rows(files: dict[str, bytes]) -> list[dict]:
    return [json.loads(line) for line in files["journal/chain.jsonl"].splitlines()]


def write_journal(files: dict[str, bytes], rows: list[dict], subject: str) -> None:
    """Write the chain and the document's events back, consistently with each other."""
    files["journal/chain.jsonl"] = b"".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True).encode() + b"\n" for r in rows
    )
    mine = [r for r in rows if r["subject"] == subject]
    files["journal/events.json"] = json.dumps(mine, indent=2).encode()


# -- shared bundles: built once for the tampering cases -------------------------------------


@dataclass
class Shared:
    runtime: Runtime
    pdf: bytes
    pdf_bundle: bytes
    pdf_id: str
    other_bundle: bytes


@pytest.fixture(scope="module")
def shared(tmp_path_factory, pki_template) -> Iterator[Shared]:
    settings = make_settings(tmp_path_factory.mktemp("bundles") / "data", pki_template)
    rt = build_runtime(settings)
    pdf = make_pdfa("FACTURE 2026-0099", seed=99)
    doc = deposit(rt.archive, data=pdf, filename="f99.pdf", actor=ACTOR).document
    other = deposit(rt.archive, data=make_pdfa(seed=98), filename="f98.pdf", actor=ACTOR).document
    try:
        yield Shared(
            runtime=rt,
            pdf=pdf,
            pdf_bundle=build_bundle(rt.archive, doc.id, actor=ACTOR),
            pdf_id=str(doc.id),
            other_bundle=build_bundle(rt.archive, other.id, actor=ACTOR),
        )
    finally:
        rt.archive.engine.dispose()


@pytest.fixture(scope="module")
def einvoice(shared, corpora) -> tuple[bytes, bytes]:
    """(the CII e-invoice received, its bundle)."""
    from capture.service import receive_file

    data = (corpora / CII).read_bytes()
    rt = shared.runtime
    outcome = receive_file(
        rt.archive,
        rt.validator,
        data=data,
        filename="CII_example1.xml",
        company_ref=None,
        actor="station:pa-test",
        source="test",
    )
    return data, build_bundle(rt.archive, outcome.document.id, actor=ACTOR)


# -- what a bundle holds ---------------------------------------------------------------------


def test_pdf_bundle_holds_every_proof_and_verifies(archive):
    pdf = make_pdfa("FACTURE 2026-0042", seed=42)
    doc = deposit(archive, data=pdf, filename="f42.pdf", actor=ACTOR).document
    # Another document's events land inside this one's chain segment: a read comes after.
    deposit(archive, data=make_pdfa(seed=43), filename="f43.pdf", actor="station:other")
    read_artifact(archive, document_id=doc.id, name="original", actor=ACTOR)
    data = build_bundle(archive, doc.id, actor=ACTOR)

    top, files = unpack(data)
    assert top == f"evidence-{doc.id}" and bundle_filename(doc.id) == f"{top}.zip"
    assert files["artifacts/original.pdf"] == pdf
    assert files["artifacts/sealed.pdf"].startswith(pdf)
    assert {
        "artifacts/original.p7s",
        "artifacts/original.tsr",
        "certificates/root.pem",
        "certificates/seal.pem",
        "certificates/tsa.pem",
        "certificates/crls.pem",
        "journal/anchor.tsr",
        "journal/check_chain.py",
        "README.fr.txt",
        "README.en.txt",
        "validation-report.json",
    } <= set(files)
    manifest = json.loads(files["manifest.json"])
    assert {e["path"] for e in manifest["files"]} == set(files) - {"manifest.json", "SHA256SUMS"}
    original = next(e for e in manifest["files"] if e["path"] == "artifacts/original.pdf")
    assert original["artifact"] == "original" and original["signature"] == "original.p7s"
    assert original["sha256"] == _sha(pdf)
    sums = files["SHA256SUMS"].decode().splitlines()
    assert f"{_sha(pdf)}  artifacts/original.pdf" in sums
    assert json.loads(files["validation-report.json"])["ok"] is True

    rows = chain_rows(files)
    subject = f"document:{doc.id}"
    mine = [r for r in rows if r["subject"] == subject]
    others = [r for r in rows if r["subject"] != subject]
    assert mine[0]["action"] == "document.deposited" and rows[0] is mine[0]
    assert others and all("payload" not in r for r in others)  # withheld, digest kept
    assert all("payload" in r for r in mine)
    assert json.loads(files["journal/events.json"]) == mine
    anchor = json.loads(files["journal/anchor.json"])
    assert (anchor["head_seq"], anchor["head_hash"]) == (rows[-1]["seq"], rows[-1]["hash"])
    assert rows[-1]["seq"] >= mine[-1]["seq"]

    report = verify_bundle(data)
    assert report.ok, report.failures
    assert report.trust == "bundle-provided roots (development PKI)"
    names = [c.name for c in report.checks]
    for expected in (
        "artifacts/original.p7s: detached seal over artifacts/original.pdf",
        "artifacts/original.tsr: timestamp token over artifacts/original.pdf",
        "artifacts/sealed.pdf: PAdES seal",
        "journal/chain.jsonl: hash chain",
        "journal/anchor.tsr: anchor timestamp token",
    ):
        assert expected in names

    with session_scope(archive.engine, read_only=True) as session:
        journal = describe(session, doc.id)["journal"]
    (exported,) = [e for e in journal if e["action"] == "document.exported"]
    assert exported["actor"] == ACTOR
    assert exported["payload"]["bundle_sha256"] == _sha(data)
    assert exported["seq"] > anchor["head_seq"]  # after the bundle's anchor, as it must be


def test_einvoice_bundle_verifies_with_its_invoice_data(einvoice):
    received, data = einvoice
    _, files = unpack(data)
    assert files["artifacts/original.xml"] == received
    assert "artifacts/sealed.pdf" not in files  # kept as received, never signed in place
    assert {"artifacts/invoice.json", "artifacts/validation.json", "invoice-data.json"} <= set(
        files
    )
    report = verify_bundle(data)
    assert report.ok, report.failures
    names = [c.name for c in report.checks if c.ok]
    assert "artifacts/invoice.json: invoice data digest the journal recorded" in names
    assert "invoice-data.json: invoice data versions the journal recorded" in names
    assert "artifacts/original.p7s: detached seal over artifacts/original.xml" in names


# -- tampering, one part at a time ------------------------------------------------------------


def _flip(path: str, where: float = 0.5) -> Callable[[dict[str, bytes]], None]:
    def change(files: dict[str, bytes]) -> None:
        data = bytearray(files[path])
        data[int(len(data) * where)] ^= 0x01
        files[path] = bytes(data)

    return change


Change = Callable[[dict[str, bytes]], None]


@dataclass(frozen=True)
class Using:
    """A change made from the shared bundles (another document's genuine files...)."""

    make: Callable[[Shared], Change]


def _from_other(path: str, other_path: str | None = None) -> Using:
    """Put in place a genuine, valid file of another document (a substitution)."""

    def make(shared: Shared) -> Change:
        _, other = unpack(shared.other_bundle)

        def change(files: dict[str, bytes]) -> None:
            files[path] = other[other_path or path]

        return change

    return Using(make)


def _journal(edit: Callable[[list[dict], str], list[dict]], *, events_too: bool = True) -> Using:
    def make(shared: Shared) -> Change:
        subject = f"document:{shared.pdf_id}"

        def change(files: dict[str, bytes]) -> None:
            rows = edit(chain_rows(files), subject)
            if events_too:
                write_journal(files, rows, subject)
            else:
                files["journal/events.json"] = json.dumps(
                    [r for r in rows if r["subject"] == subject]
                ).encode()

        return change

    return Using(make)


def _edit_payload(rows: list[dict], subject: str) -> list[dict]:
    deposited = next(r for r in rows if r["action"] == "document.deposited")
    deposited["payload"]["filename"] = "autre-facture.pdf"
    return rows


def _rehash_event(rows: list[dict], subject: str) -> list[dict]:
    """Edit an event and recompute its digests, as a careful forger would."""
    from archive.bundle_format import row_hash
    from archive.canonical import canonical_digest

    deposited = _edit_payload(rows, subject)[0]
    deposited["payload_digest"] = canonical_digest(deposited["payload"])
    deposited["hash"] = row_hash(deposited)
    return rows


def _rehash_everything(files: dict[str, bytes], subject: str) -> None:
    """Edit an event, then recompute the whole chain and the anchor: only the anchor's
    timestamp token, which nobody but the TSA can make, still tells."""
    from archive.bundle_format import row_hash
    from archive.canonical import canonical_digest
    from archive.journal import anchor_body

    rows = _edit_payload(chain_rows(files), subject)
    previous = rows[0]["prev_hash"]
    for row in rows:
        row["prev_hash"] = previous
        row["payload_digest"] = (
            canonical_digest(row["payload"]) if "payload" in row else (row["payload_digest"])
        )
        row["hash"] = previous = row_hash(row)
    write_journal(files, rows, subject)
    anchor = json.loads(files["journal/anchor.json"])
    anchor["head_hash"] = rows[-1]["hash"]
    body = anchor_body(
        seq=anchor["seq"],
        head_seq=anchor["head_seq"],
        head_hash=anchor["head_hash"],
        prev_anchor_hash=anchor["prev_anchor_hash"],
    )
    anchor["anchor_hash"] = _sha(body)
    files["journal/anchor.json"] = json.dumps(anchor).encode()
    files["journal/anchor-body.json"] = body


def _drop_document_event(rows: list[dict], subject: str) -> list[dict]:
    read = next(r for r in rows if r["subject"] == subject and r["action"] == "artifact.stored")
    return [r for r in rows if r is not read]


def _swap_events(rows: list[dict], subject: str) -> list[dict]:
    rows[1], rows[2] = rows[2], rows[1]
    return rows


def _drop_from_events_only(rows: list[dict], subject: str) -> list[dict]:
    return _drop_document_event(rows, subject)


def _edit_anchor(files: dict[str, bytes]) -> None:
    anchor = json.loads(files["journal/anchor.json"])
    anchor["head_hash"] = "0" * 64
    files["journal/anchor.json"] = json.dumps(anchor).encode()


def _remove(path: str) -> Callable[[dict[str, bytes]], None]:
    def change(files: dict[str, bytes]) -> None:
        del files[path]

    return change


def _edit_manifest(files: dict[str, bytes]) -> None:
    manifest = json.loads(files["manifest.json"])
    entry = next(e for e in manifest["files"] if e["path"] == "artifacts/sealed.pdf")
    entry["sha256"] = "ab" * 32
    files["manifest.json"] = json.dumps(manifest).encode()
    files["SHA256SUMS"] = "".join(
        f"{_sha(files[p])}  {p}\n" for p in sorted(files) if p != "SHA256SUMS"
    ).encode()


def _edit_sums(files: dict[str, bytes]) -> None:
    lines = files["SHA256SUMS"].decode().splitlines()
    lines[0] = ("0" if lines[0][0] != "0" else "1") + lines[0][1:]
    files["SHA256SUMS"] = ("\n".join(lines) + "\n").encode()


def _add_file(files: dict[str, bytes]) -> None:
    files["artifacts/original-v2.pdf"] = make_pdfa(seed=7)


TAMPERING = {
    # name: (change or maker(shared) -> change, covered lists?, failing checks expected)
    "original bytes": (
        _flip("artifacts/original.pdf"),
        True,
        [
            "artifacts/original.pdf: SHA-256 the journal recorded (artifact original)",
            "artifacts/original.p7s: detached seal over artifacts/original.pdf",
            "artifacts/original.tsr: timestamp token over artifacts/original.pdf",
        ],
    ),
    "sealed PDF": (
        _flip("artifacts/sealed.pdf", 0.4),
        True,
        [
            "artifacts/sealed.pdf: SHA-256 the journal recorded (artifact sealed)",
            "artifacts/sealed.pdf: PAdES seal",
        ],
    ),
    "detached seal .p7s": (
        _from_other("artifacts/original.p7s"),
        True,
        [
            "artifacts/original.p7s: SHA-256 the journal recorded (artifact original.p7s)",
            "artifacts/original.p7s: detached seal over artifacts/original.pdf",
        ],
    ),
    "timestamp token .tsr": (
        _from_other("artifacts/original.tsr"),
        True,
        [
            "artifacts/original.tsr: SHA-256 the journal recorded (artifact original.tsr)",
            "artifacts/original.tsr: timestamp token over artifacts/original.pdf",
        ],
    ),
    "seal certificate": (
        _from_other("certificates/seal.pem", "certificates/tsa.pem"),
        True,
        ["certificates/seal.pem: the certificates the journal recorded"],
    ),
    "journal event payload": (
        _journal(_edit_payload),
        True,
        ["journal/chain.jsonl: hash chain"],
    ),
    "journal event re-hashed": (
        _journal(_rehash_event),
        True,
        ["journal/chain.jsonl: hash chain"],
    ),
    "journal event removed": (
        _journal(_drop_document_event),
        True,
        ["journal/chain.jsonl: hash chain"],
    ),
    "journal events reordered": (
        _journal(_swap_events),
        True,
        ["journal/chain.jsonl: hash chain"],
    ),
    "document event hidden from events.json": (
        _journal(_drop_from_events_only, events_too=False),
        True,
        ["journal/events.json: the document's events"],
    ),
    "anchor token": (
        _from_other("journal/anchor.tsr"),
        True,
        ["journal/anchor.tsr: anchor timestamp token"],
    ),
    "anchor token replaced by the original's": (
        lambda files: files.__setitem__("journal/anchor.tsr", files["artifacts/original.tsr"]),
        True,
        ["journal/anchor.tsr: anchor timestamp token"],
    ),
    "anchor row": (_edit_anchor, True, ["journal/anchor.json: anchors the chain head"]),
    "artifact left out": (
        _remove("artifacts/sealed.pdf"),
        True,
        ["artifacts: every artifact the journal recorded is in the bundle"],
    ),
    "original changed, lists not covered": (
        _flip("artifacts/original.pdf"),
        False,
        ["SHA256SUMS: every file listed and unchanged", "manifest.json: every file described"],
    ),
    "manifest": (_edit_manifest, False, ["manifest.json: every file described"]),
    "SHA256SUMS": (_edit_sums, False, ["SHA256SUMS: every file listed and unchanged"]),
    "file slipped in": (
        _add_file,
        False,
        ["SHA256SUMS: every file listed and unchanged", "manifest.json: every file described"],
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_with_one_part_fails_and_names_it(shared, case):
    change, cover, expected = TAMPERING[case]
    if isinstance(change, Using):
        change = change.make(shared)
    report = verify_bundle(tampered(shared.pdf_bundle, change, cover=cover))
    assert not report.ok
    names = failed(report)
    for name in expected:
        assert name in names, (name, report.to_json()["failures"])
    if cover:  # the lists were rewritten to match: the proofs, not the lists, caught it
        assert "SHA256SUMS: every file listed and unchanged" not in names


def test_a_chain_rehashed_to_the_end_is_caught_by_the_anchor_token_alone(shared):
    def change(files: dict[str, bytes]) -> None:
        _rehash_everything(files, f"document:{shared.pdf_id}")

    report = verify_bundle(tampered(shared.pdf_bundle, change, cover=True))
    assert failed(report) == ["journal/anchor.tsr: anchor timestamp token"]
    assert "message imprint mismatch" in report.failures[0].detail


def test_root_replaced_by_a_foreign_one_breaks_every_chain(shared, foreign_pki):
    root = foreign_pki.root_cert.read_bytes()

    def change(files: dict[str, bytes]) -> None:
        files["certificates/root.pem"] = root

    report = verify_bundle(tampered(shared.pdf_bundle, change, cover=True))
    names = failed(report)
    assert "certificates: chain to the trust roots" in names
    assert "certificates/crls.pem: signed by their issuers, nothing revoked" in names
    assert "artifacts/original.p7s: detached seal over artifacts/original.pdf" in names
    assert "journal/anchor.tsr: anchor timestamp token" in names
    assert report.trust.startswith("bundle-provided roots")


def test_pinned_root_is_used_instead_of_the_bundles(shared, dev_pki, foreign_pki):
    mine = verify_bundle(shared.pdf_bundle, trust_roots=[dev_pki.root_cert.read_bytes()])
    assert mine.ok, mine.failures
    assert mine.trust.startswith("pinned roots given by the auditor")
    theirs = verify_bundle(shared.pdf_bundle, trust_roots=[foreign_pki.root_cert.read_bytes()])
    assert not theirs.ok
    assert "artifacts/sealed.pdf: PAdES seal" in failed(theirs)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "artifacts/invoice.json",
            [
                "artifacts/invoice.json: invoice data digest the journal recorded",
                "artifacts/invoice.json: SHA-256 the journal recorded (artifact invoice.json)",
            ],
        ),
        ("invoice-data.json", ["invoice-data.json: invoice data versions the journal recorded"]),
    ],
)
def test_edited_invoice_fields_are_caught(einvoice, path, expected):
    _, data = einvoice

    def change(files: dict[str, bytes]) -> None:
        value = json.loads(files[path])
        record = value[0]["data"] if isinstance(value, list) else value
        record["total_ttc"] = "1.00"
        files[path] = json.dumps(value).encode()

    report = verify_bundle(tampered(data, change, cover=True))
    for name in expected:
        assert name in failed(report), report.to_json()["failures"]


def test_invoice_json_beside_per_field_facts_is_checked_too(shared):
    """Scans keep ``{"invoice": data, "fields": {...}}`` in invoice.json: the data part
    must still be what the journal recorded."""
    from decimal import Decimal

    from archive.deposit import Derived, Submission, invoice_payload, receive
    from archive.invoice import InvoiceData

    invoice = InvoiceData(invoice_number="SCAN-7", total_ttc=Decimal("120.00"))
    body = {"invoice": invoice_payload(invoice), "fields": {"total_ttc": {"confidence": 0.9}}}

    def admit(data: bytes) -> Submission:
        derived = Derived("invoice.json", json.dumps(body).encode(), "application/json")
        return Submission(pades_copy=True, derived=(derived,), invoice=invoice)

    archive = shared.runtime.archive
    doc = receive(
        archive,
        data=make_pdfa("SCAN-7", seed=77),
        filename="scan.pdf",
        company_ref=None,
        actor=ACTOR,
        source="test",
        admit=admit,
    ).document
    data = build_bundle(archive, doc.id, actor=ACTOR)
    report = verify_bundle(data)
    assert report.ok, report.failures
    name = "artifacts/invoice.json: invoice data digest the journal recorded"
    assert name in [c.name for c in report.checks]

    def change(files: dict[str, bytes]) -> None:
        forged = json.loads(files["artifacts/invoice.json"])
        forged["invoice"]["total_ttc"] = "12.00"
        files["artifacts/invoice.json"] = json.dumps(forged).encode()

    assert name in failed(verify_bundle(tampered(data, change, cover=True)))


@pytest.mark.parametrize(
    "content", [b"", b"PK\x03\x04 not really a zip", b"%PDF-1.7 a pdf, not a bundle"]
)
def test_unreadable_bundle_raises(content):
    with pytest.raises(BundleUnreadable):
        verify_bundle(content)


def test_bundle_without_manifest_is_unreadable(shared):
    with pytest.raises(BundleUnreadable):
        verify_bundle(tampered(shared.pdf_bundle, _remove("manifest.json"), cover=False))


# -- the README's commands, run for real ------------------------------------------------------


def readme_commands(files: dict[str, bytes]) -> list[str]:
    def commands(name: str) -> list[str]:
        lines = files[name].decode("utf-8").splitlines()
        return [line[len(PROMPT) :] for line in lines if line.startswith(PROMPT)]

    english = commands("README.en.txt")
    assert english == commands("README.fr.txt")  # the same commands in both languages
    return english


def _auditor_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFRE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_commands(commands: list[str], cwd: Path) -> list[tuple[str, int, str]]:
    """Run each command as the auditor types it (``cd`` moves to the unpacked folder)."""
    results = []
    for command in commands:
        if command.startswith("cd "):
            cwd = cwd / command[3:]
            results.append((command, 0 if cwd.is_dir() else 1, ""))
            continue
        done = subprocess.run(
            command,
            shell=True,
            cwd=cwd,
            env=_auditor_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        results.append((command, done.returncode, done.stdout + done.stderr))
    return results


EXPECTED_OUTPUT = {
    "sha256sum": "OK",
    "openssl x509": "Fingerprint=",
    "openssl ts": "Verification: OK",
    "openssl cms": "Verification successful",
    "pyhanko": "INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>",
    "python3 journal/check_chain.py": "Journal chain: OK",
    "coffre verify-bundle": "OK",
}


@pytest.mark.parametrize("kind", ["pdf", "einvoice"])
def test_every_readme_command_works_and_fails_on_a_changed_original(
    request, shared, kind, tmp_path
):
    data = shared.pdf_bundle if kind == "pdf" else request.getfixturevalue("einvoice")[1]
    top, files = unpack(data)
    (tmp_path / f"{top}.zip").write_bytes(data)
    commands = readme_commands(files)
    programs = {c.split()[0] for c in commands}
    assert {"unzip", "sha256sum", "openssl", "python3", "coffre"} <= programs
    assert any(c.startswith("pyhanko sign validate") and "--detached" in c for c in commands)
    pades = [c for c in commands if "sealed.pdf" in c]
    assert bool(pades) == (kind == "pdf")

    for command, code, output in run_commands(commands, tmp_path):
        assert code == 0, (command, output)
        expected = next((v for k, v in EXPECTED_OUTPUT.items() if command.startswith(k)), "")
        assert expected in output, (command, output)
        if command.startswith("sha256sum"):
            assert "FAILED" not in output

    # Now change one byte of the unpacked original: the same commands must refuse it.
    manifest = json.loads(files["manifest.json"])
    path = next(e["path"] for e in manifest["files"] if e.get("artifact") == "original")
    original = tmp_path / top / path
    changed = bytearray(original.read_bytes())
    changed[len(changed) // 2] ^= 0x01
    original.write_bytes(bytes(changed))
    about_original = [
        c
        for c in commands
        if original.name in c or c.startswith(("sha256sum", "python3 journal/check_chain.py"))
    ]
    assert len(about_original) >= 6
    for command, code, output in run_commands(about_original, tmp_path / top):
        assert code != 0, (command, output)


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def coffre(tmp_path, pki_template):
    data_dir = tmp_path / "data"
    shutil.copytree(pki_template, data_dir / "dev-pki")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFRE_")}
    env["COFFRE_DATA_DIR"] = str(data_dir)
    work = tmp_path / "work"
    work.mkdir()

    def run(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("env", env)
        kwargs.setdefault("cwd", work)
        result = subprocess.run(
            [str(BIN / "coffre"), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"coffre {args} exited {result.returncode}:\n{result.stderr}")
        return result

    run.work = work  # type: ignore[attr-defined]
    run.pki = data_dir / "dev-pki"  # type: ignore[attr-defined]
    return run


def test_cli_exports_and_verifies_with_no_configuration_at_all(coffre, tmp_path):
    pdf = coffre.work / "facture.pdf"
    pdf.write_bytes(make_pdfa("FACTURE CLI", seed=61))
    doc_id = json.loads(coffre("deposit", str(pdf), "--json").stdout)[0]["document_id"]
    coffre("export-evidence", doc_id)  # default name, in the current folder
    data = (coffre.work / f"evidence-{doc_id}.zip").read_bytes()
    shown = json.loads(coffre("show", doc_id, "--json").stdout)
    exported = [e for e in shown["journal"] if e["action"] == "document.exported"]
    assert [e["payload"]["bundle_sha256"] for e in exported] == [_sha(data)]

    # The auditor's machine: an empty folder, no COFFRE_* variable, no data directory.
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    (auditor / "bundle.zip").write_bytes(data)
    result = coffre(
        "verify-bundle", "bundle.zip", "--json", check=False, env=_auditor_env(), cwd=auditor
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["trust"] == "bundle-provided roots (development PKI)"
    assert sorted(p.name for p in auditor.iterdir()) == ["bundle.zip"]  # nothing created


def test_cli_verify_bundle_exit_codes_and_report(shared, tmp_path, dev_pki, foreign_pki):
    from typer.testing import CliRunner

    from coffre.cli import app

    def verify(*args: str):
        return CliRunner().invoke(app, ["verify-bundle", *args])

    good = tmp_path / "bundle.zip"
    good.write_bytes(shared.pdf_bundle)
    human = verify(str(good))
    assert human.exit_code == 0, human.output
    assert "trust: bundle-provided roots (development PKI)" in human.output
    pinned = verify(str(good), "--trust", str(dev_pki.root_cert), "--json")
    assert pinned.exit_code == 0
    assert json.loads(pinned.output)["trust"].startswith("pinned roots given by the auditor")
    foreign = verify(str(good), "--trust", str(foreign_pki.root_cert))
    assert foreign.exit_code == 1 and "FAILED" in foreign.output

    forged = tmp_path / "forged.zip"
    forged.write_bytes(tampered(shared.pdf_bundle, _flip("artifacts/original.pdf"), cover=True))
    broken = verify(str(forged))
    assert broken.exit_code == 1
    assert "✗ artifacts/original.p7s: detached seal over artifacts/original.pdf" in broken.output

    junk = tmp_path / "not-a-bundle.zip"
    junk.write_bytes(b"hello")
    assert verify(str(junk)).exit_code == 3
    assert verify(str(tmp_path / "missing.zip")).exit_code == 3
    assert verify(str(good), "--trust", str(tmp_path / "no-root.pem")).exit_code == 2


def test_cli_export_of_an_unknown_document_is_a_clear_error(coffre):
    result = coffre("export-evidence", "00000000-0000-0000-0000-000000000000", check=False)
    assert result.returncode == 4 and "no document" in result.stderr


# -- the HTTP API ---------------------------------------------------------------------------------


def test_api_hands_the_bundle_to_authorised_readers_only(runtime, archive):
    with session_scope(archive.engine) as session:
        other = create_company(session, name="Autre SAS", siren="552120222")

    def token(role: Role, company_id=None) -> dict[str, str]:
        with session_scope(archive.engine) as session:
            plain, _ = create_token(
                session, name=f"t-{role.value}", role=role, company_id=company_id
            )
        return {"Authorization": f"Bearer {plain}"}

    doc = deposit(archive, data=make_pdfa(seed=71), filename="f71.pdf", actor=ACTOR).document
    url = f"/api/v1/documents/{doc.id}/evidence.zip"
    with TestClient(create_app(runtime=runtime)) as api:
        response = api.get(url, headers=token(Role.auditor))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/zip"
        assert f"evidence-{doc.id}.zip" in response.headers["content-disposition"]
        assert response.headers["x-coffre-sha256"] == _sha(response.content)
        assert verify_bundle(response.content).ok

        assert api.get(url, headers=token(Role.station)).status_code == 403
        assert api.get(url, headers=token(Role.auditor, other.id)).status_code == 403
        assert api.get(url).status_code == 401
        missing = api.get(
            "/api/v1/documents/00000000-0000-0000-0000-000000000000/evidence.zip",
            headers=token(Role.auditor),
        )
        assert missing.status_code == 404

    with session_scope(archive.engine, read_only=True) as session:
        journal = describe(session, doc.id)["journal"]
    exported = [e for e in journal if e["action"] == "document.exported"]
    assert [(e["actor"], e["payload"]["bundle_sha256"]) for e in exported] == [
        ("auditor:t-auditor", _sha(response.content))
    ]
