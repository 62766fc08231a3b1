"""Verification: does what Coffre holds still prove what it claims?

For a document: the stored bytes against the fingerprints in the database and in the
journal, the evidence rows against what the journal recorded, the seals and timestamps
against the trust roots, and the whole journal chain with its anchors. The report names
every check and what broke; nothing here repairs anything.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from archive.canonical import canonical_digest, to_jsonable
from archive.context import Archive
from archive.journal import JournalCheck
from archive.models import (
    Artifact,
    Document,
    Evidence,
    InvoiceRecord,
    JournalEvent,
    VerificationRun,
)
from archive.renewal import RENEWAL_NAME, Renewal, check_renewals
from archive.seal_check import validate_detached_seal, validate_pdf_seal
from archive.service import artifact_store_facts, artifacts_of, evidence_of, get_document
from archive.timestamp import verify_timestamp
from storage import StorageError, session_scope


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class VerificationReport:
    """Named checks about one subject (a document, a file, the journal, a bundle, an export);
    ``trust`` says where the trusted roots came from when the checker was not the archive
    itself (offline verification of a bundle or an export)."""

    subject: str
    checks: tuple[Check, ...] = field(default_factory=tuple)
    trust: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"subject": self.subject, "ok": self.ok}
        if self.trust is not None:
            body["trust"] = self.trust
        body["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]
        body["failures"] = [f"{c.name}: {c.detail}" if c.detail else c.name for c in self.failures]
        return body


class _Checks:
    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.items.append(Check(name, bool(ok), detail))
        return ok


def token_verifier(archive: Archive) -> Callable[[bytes, bytes], list[str]]:
    def verify(der: bytes, digest: bytes) -> list[str]:
        result = verify_timestamp(der, digest=digest, trust_roots=archive.trust_roots)
        return list(result.problems)

    return verify


def verify_journal(archive: Archive, session: Session) -> JournalCheck:
    return archive.journal.verify(session, token_verifier(archive))


def _journal_checks(checks: _Checks, journal: JournalCheck) -> None:
    checks.add(
        "journal chain",
        journal.ok,
        f"{journal.events_checked} events, {journal.anchors_checked} anchors"
        if journal.ok
        else "; ".join(str(p) for p in journal.problems[:20]),
    )


def _recorded(events: Iterable[JournalEvent], action: str, artifact: str) -> dict[str, Any] | None:
    for event in events:
        if event.action == action and event.payload.get("artifact") == artifact:
            return event.payload
    return None


def _compare(
    checks: _Checks, name: str, recorded: dict[str, Any] | None, actual: dict[str, Any]
) -> None:
    if recorded is None:
        checks.add(name, False, "no journal event records it")
        return
    actual = to_jsonable(actual)
    diffs = [k for k, v in actual.items() if recorded.get(k) != v]
    checks.add(name, not diffs, "differs from the journal in: " + ", ".join(diffs) if diffs else "")


def verify_document(
    archive: Archive, document_id: uuid.UUID | str, *, actor: str, record: bool = True
) -> VerificationReport:
    checks = _Checks()
    with session_scope(archive.engine, read_only=True) as session:
        document = get_document(session, document_id)
        subject = f"document:{document.id}"
        checks.items.extend(document_checks(archive, session, document))
        _journal_checks(checks, verify_journal(archive, session))
    report = VerificationReport(subject=subject, checks=tuple(checks.items))
    if record:
        _record(archive, report, document.id, actor)
    return report


@dataclass
class Spent:
    """Seconds spent in each phase of :func:`document_checks` (for throughput reports)."""

    #: Reading the stored bytes and hashing them.
    reading: float = 0.0
    #: Validating seals, timestamps and their renewals.
    proofs: float = 0.0
    artifacts: int = 0
    bytes_read: int = 0


#: Receives what :func:`document_checks` read: artifacts, evidence rows, stored bytes.
Inspect = Callable[[list[Artifact], dict[uuid.UUID, Evidence], dict[str, bytes | None]], None]


def document_checks(
    archive: Archive,
    session: Session,
    document: Document,
    *,
    spent: Spent | None = None,
    inspect: Inspect | None = None,
) -> list[Check]:
    """Every check of one document but the journal chain (which covers all documents).

    The stored bytes against the fingerprints in the database and the journal, the
    evidence rows against the journal, the seals, timestamps and renewals against the
    trust roots, the invoice data against its recorded digests. ``inspect`` sees what was
    read (a sweep looks at the certificates without reading the bytes twice).
    """
    checks = _Checks()
    events = archive.journal.events_for(session, f"document:{document.id}")
    artifacts = artifacts_of(session, document.id)
    evidence = evidence_of(session, [a.id for a in artifacts])
    _check_document_row(checks, document, events)
    started = time.perf_counter()
    blobs = {a.name: _check_stored(archive, checks, a, events) for a in artifacts}
    read = time.perf_counter()
    by_id = {a.id: a for a in artifacts}
    for artifact in artifacts:
        if artifact.role == "content":
            _check_evidence(
                archive, checks, artifact, evidence.get(artifact.id), events, blobs, by_id
            )
    if spent is not None:
        spent.reading += read - started
        spent.proofs += time.perf_counter() - read
        spent.artifacts += len(artifacts)
        spent.bytes_read += sum(len(b) for b in blobs.values() if b is not None)
    _check_invoice_data(checks, session, document.id, events)
    if inspect is not None:
        inspect(artifacts, evidence, blobs)
    return checks.items


def _check_document_row(checks: _Checks, document: Document, events: list[JournalEvent]) -> None:
    deposited = next((e.payload for e in events if e.action == "document.deposited"), None)
    _compare(
        checks,
        "document record",
        deposited,
        {
            "company_id": document.company_id,
            "kind": document.kind,
            "sha256": document.original_sha256,
            "size": document.size,
        },
    )


def _check_invoice_data(
    checks: _Checks, session: Session, document_id: uuid.UUID, events: list[JournalEvent]
) -> None:
    rows = session.exec(select(InvoiceRecord).where(InvoiceRecord.document_id == document_id))
    recorded = {
        e.payload.get("version"): e.payload.get("data_digest")
        for e in events
        if e.action == "invoice.recorded"
    }
    for row in rows:
        actual = canonical_digest(row.data)
        ok = actual == row.data_digest == recorded.get(row.version)
        checks.add(
            f"invoice data v{row.version}",
            ok,
            "" if ok else "the stored invoice data differs from what the journal recorded",
        )


def _check_stored(
    archive: Archive, checks: _Checks, artifact: Artifact, events: list[JournalEvent]
) -> bytes | None:
    label = f"artifact {artifact.name}"
    _compare(
        checks,
        f"{label}: storage record",
        _recorded(events, "artifact.stored", artifact.name),
        artifact_store_facts(artifact),
    )
    try:
        data = archive.store.get(artifact.storage_key, artifact.storage_version)
    except StorageError as exc:
        checks.add(f"{label}: stored bytes", False, f"cannot be read: {exc}")
        return None
    actual = hashlib.sha256(data).hexdigest()
    checks.add(
        f"{label}: stored bytes match fingerprint",
        actual == artifact.sha256,
        ""
        if actual == artifact.sha256
        else f"stored bytes hash to {actual}, recorded {artifact.sha256}",
    )
    return data


def _check_evidence(
    archive: Archive,
    checks: _Checks,
    artifact: Artifact,
    evidence: Evidence | None,
    events: list[JournalEvent],
    blobs: dict[str, bytes | None],
    by_id: dict[uuid.UUID, Artifact],
) -> None:
    label = f"artifact {artifact.name}"
    if evidence is None:
        checks.add(f"{label}: evidence present", False, "no evidence row")
        return
    same = (
        evidence.sha256 == artifact.sha256
        and evidence.storage_key == artifact.storage_key
        and evidence.storage_version == artifact.storage_version
        and evidence.retain_until == artifact.retain_until
    )
    checks.add(
        f"{label}: evidence matches artifact",
        same,
        "" if same else "fingerprint, storage key, version or retention differ",
    )
    _compare(
        checks,
        f"{label}: evidence seal record",
        _recorded(events, "artifact.sealed", artifact.name),
        {
            "sha256": evidence.sha256,
            "seal_format": evidence.seal_format,
            "seal_cert_sha256": evidence.seal_cert_sha256,
            "signature_algorithm": evidence.signature_algorithm,
        },
    )
    _compare(
        checks,
        f"{label}: evidence timestamp record",
        _recorded(events, "artifact.timestamped", artifact.name),
        {
            "timestamp_serial": evidence.timestamp_serial,
            "timestamp_time": evidence.timestamp_time,
            "tsa_cert_sha256": evidence.tsa_cert_sha256,
        },
    )
    data = blobs.get(artifact.name)
    if data is None:
        checks.add(f"{label}: seal", False, "bytes unavailable")
        return
    if evidence.seal_format.startswith("PAdES"):
        result = validate_pdf_seal(data, trust_roots=archive.trust_roots, crls=archive.crls)
        _seal_check(checks, label, result, evidence)
        return
    signature = (
        by_id.get(evidence.signature_artifact_id) if evidence.signature_artifact_id else None
    )
    cms = blobs.get(signature.name) if signature else None
    stamp = by_id.get(evidence.timestamp_artifact_id) if evidence.timestamp_artifact_id else None
    tsr = blobs.get(stamp.name) if stamp else None
    base = {a.name: blobs.get(a.name) for a in (signature, stamp) if a is not None}
    # Renewals (archive.renewal): once the chain holds, the seal and the first token need
    # only have been valid when renewal 1 was made, not today.
    moment = _check_renewals(archive, checks, artifact, base, blobs)
    if cms is None:
        checks.add(f"{label}: detached seal", False, "signature artifact missing")
    else:
        result = validate_detached_seal(
            data, cms, trust_roots=archive.trust_roots, crls=archive.crls
        )
        if not result.ok and moment is not None:
            result = validate_detached_seal(
                data, cms, trust_roots=archive.trust_roots, crls=archive.crls, moment=moment
            )
        _seal_check(checks, label, result, evidence)
    if tsr is None:
        checks.add(f"{label}: timestamp token", False, "timestamp artifact missing")
        return
    token = verify_timestamp(tsr, data=data, trust_roots=archive.trust_roots)
    if not token.ok and moment is not None:
        token = verify_timestamp(tsr, data=data, trust_roots=archive.trust_roots, moment=moment)
    same_token = str(token.serial) == evidence.timestamp_serial
    checks.add(
        f"{label}: timestamp token",
        token.ok and same_token,
        "; ".join(token.problems)
        if not token.ok
        else (
            ""
            if same_token
            else f"serial {token.serial} is not the recorded {evidence.timestamp_serial}"
        ),
    )


def _check_renewals(
    archive: Archive,
    checks: _Checks,
    artifact: Artifact,
    base: dict[str, bytes | None],
    blobs: dict[str, bytes | None],
) -> datetime | None:
    """Check the renewals of a detached artifact; the instant its first evidence must
    have been valid at when the chain holds (None without renewals or when it breaks)."""
    label = f"artifact {artifact.name}"
    parts: dict[int, dict[str, bytes | None]] = {}
    for name, blob in blobs.items():
        match = RENEWAL_NAME.match(name)
        if match and match["artifact"] == artifact.name:
            parts.setdefault(int(match["n"]), {})[match["part"]] = blob
    if not parts:
        return None
    renewals = []
    for n, found in sorted(parts.items()):
        body, token = found.get("json"), found.get("tsr")
        if body is None or token is None:
            checks.add(f"{label}: renewal {n}", False, "its body or token is missing or unreadable")
            return None
        renewals.append(Renewal(n=n, body=body, token=token))
    if any(blob is None for blob in base.values()):
        checks.add(f"{label}: renewals", False, "the evidence they cover cannot be read")
        return None
    verdict = check_renewals(
        artifact=artifact.name,
        artifact_sha256=artifact.sha256,
        evidence={name: blob for name, blob in base.items() if blob is not None},
        renewals=renewals,
        trust_roots=archive.trust_roots,
        crls=archive.crls,
    )
    for name, ok, detail in verdict.checks:
        checks.add(f"{label}: {name}", ok, detail)
    return verdict.base_moment


def _seal_check(checks: _Checks, label: str, result: Any, evidence: Evidence) -> None:
    checks.add(f"{label}: seal valid", result.ok, "; ".join(result.problems))
    same_cert = result.signer_cert_sha256 == evidence.seal_cert_sha256
    checks.add(
        f"{label}: sealed by the recorded certificate",
        same_cert,
        "" if same_cert else f"signer {result.signer_cert_sha256}",
    )


def _record(
    archive: Archive, report: VerificationReport, document_id: uuid.UUID, actor: str
) -> None:
    with session_scope(archive.engine) as session:
        session.add(VerificationRun(document_id=document_id, ok=report.ok, report=report.to_json()))
        archive.journal.append(
            session,
            actor=actor,
            action="document.verified",
            subject=report.subject,
            payload={"ok": report.ok, "failures": report.to_json()["failures"]},
        )


def verify_file(archive: Archive, path: Path, *, actor: str) -> list[VerificationReport]:
    """Verify every document holding these exact bytes; a file Coffre never held fails."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    with session_scope(archive.engine, read_only=True) as session:
        rows = session.exec(select(Artifact).where(Artifact.sha256 == sha256)).all()
        document_ids = sorted({row.document_id for row in rows}, key=str)
    if not document_ids:
        checks = _Checks()
        checks.add("file known to the archive", False, f"no stored artifact has SHA-256 {sha256}")
        if path.read_bytes()[:5] == b"%PDF-":
            result = validate_pdf_seal(
                path.read_bytes(), trust_roots=archive.trust_roots, crls=archive.crls
            )
            checks.add("seal of the file itself", result.ok, "; ".join(result.problems))
        return [VerificationReport(subject=f"file:{path.name}", checks=tuple(checks.items))]
    return [verify_document(archive, doc_id, actor=actor) for doc_id in document_ids]


def verify_journal_report(archive: Archive) -> VerificationReport:
    checks = _Checks()
    with session_scope(archive.engine, read_only=True) as session:
        _journal_checks(checks, verify_journal(archive, session))
    return VerificationReport(subject="journal", checks=tuple(checks.items))
