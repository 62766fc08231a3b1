"""Integrity sweeps and evidence renewal.

The sweep re-reads every artifact from the store and validates every seal, timestamp and
renewal and the journal; any damage fails it, naming the document, the artifact and the
check. Evidence whose certificates expire within the horizon (here: a seal and a TSA
certificate made to expire in weeks) is listed; ``renew_evidence`` adds a PAdES document
timestamp and RFC 3161 renewals that the archive, the bundle verifier and openssl accept;
and the renewal chain still proves the old evidence once its TSA certificate has expired.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from archive.bundle import build_bundle
from archive.bundle_verify import verify_bundle
from archive.deposit import deposit
from archive.integrity import integrity_sweep, sweep_due
from archive.models import Artifact, JournalEvent
from archive.pki import (
    DevPki,
    _make_root,
    issue_certificate,
    load_private_key_pem,
    to_asn1,
)
from archive.renew import renew_evidence
from archive.renewal import Renewal, check_renewals, renewal_body
from archive.seal import Sealer, SealIdentity, _KeySigner
from archive.seal_check import validate_pdf_seal
from archive.service import describe, read_artifact
from archive.timestamp import Timestamper, verify_timestamp
from archive.tsa import TimestampAuthority
from archive.verify import verify_document
from storage import session_scope
from tests.pdfs import make_pdfa, pdfa_violations
from tests.tamper import tamper

ACTOR = "admin:test"
BIN = Path(sys.executable).parent


def _journal(archive, action: str) -> list:
    with session_scope(archive.engine, read_only=True) as session:
        return list(
            session.exec(
                JournalEvent.__table__.select().where(  # type: ignore[attr-defined]
                    JournalEvent.action == action
                )
            )
        )


def _artifacts(archive, document) -> dict[str, Artifact]:
    with session_scope(archive.engine, read_only=True) as session:
        rows = session.exec(
            Artifact.__table__.select().where(  # type: ignore[attr-defined]
                Artifact.document_id == document.id
            )
        ).all()
    return {row.name: row for row in rows}


@pytest.fixture
def two_documents(archive):
    return [
        deposit(
            archive, data=make_pdfa(f"F-{s}", seed=s), filename=f"{s}.pdf", actor=ACTOR
        ).document
        for s in (31, 32)
    ]


# -- the sweep --------------------------------------------------------------------------------


def test_an_untouched_archive_sweeps_clean_and_the_sweep_is_journaled(archive, two_documents):
    seen = []
    report = integrity_sweep(archive, actor=ACTOR, on_progress=seen.append)
    assert report.ok, [str(f) for f in report.failures]
    # Per document: original, original.p7s, original.tsr, sealed; 2 proofs (detached, PAdES).
    assert (report.documents, report.artifacts, report.proofs) == (2, 8, 4)
    assert report.journal_events > 0 and report.journal_anchors >= 1
    assert report.due == ()  # the development certificates last ten years
    assert seen[-1].documents_done == seen[-1].documents_total == 2
    [event] = _journal(archive, "integrity.checked")
    assert event.actor == ACTOR
    assert event.payload["ok"] is True and event.payload["artifacts"] == 8
    assert event.payload["per_second"]["artifacts_whole_sweep"] > 0
    # Documents go in id order: an interrupted sweep goes on after the last one reported.
    first, second = sorted(d.id for d in two_documents)
    assert seen[-1].last_document_id == second
    rest = integrity_sweep(archive, actor=ACTOR, resume_after=first, record=False)
    assert (rest.documents, rest.artifacts) == (1, 4) and rest.ok


def test_an_edited_artifact_row_fails_the_sweep_naming_document_and_artifact(
    archive, two_documents
):
    victim = two_documents[1]
    sealed = _artifacts(archive, victim)["sealed"]
    tamper(
        archive.engine,
        "artifact",
        "UPDATE artifact SET sha256 = :v WHERE id = :a",
        v="ee" * 32,
        a=sealed.id.hex if archive.engine.dialect.name == "sqlite" else sealed.id,
    )
    report = integrity_sweep(archive, actor=ACTOR)
    assert not report.ok
    named = {(f.subject, f.artifact, f.check) for f in report.failures}
    assert (f"document:{victim.id}", "sealed", "stored bytes match fingerprint") in named
    assert all(f.subject == f"document:{victim.id}" for f in report.failures), report.failures
    [event] = _journal(archive, "integrity.checked")
    assert event.payload["ok"] is False
    assert any(
        f"document:{victim.id} artifact sealed" in f for f in event.payload["first_failures"]
    )


def test_changed_stored_bytes_fail_the_sweep(request, runtime, archive):
    if archive.store.backend != "local":
        pytest.skip("S3 Object Lock leaves no way behind the gateway")
    two_documents = request.getfixturevalue("two_documents")
    victim = two_documents[0]
    objects = Path(runtime.settings.objects_dir)
    target = next(
        p
        for p in objects.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and hashlib.sha256(p.read_bytes()).hexdigest() == victim.original_sha256
    )
    os.chmod(target, 0o644)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    report = integrity_sweep(archive, actor=ACTOR)
    named = {(f.artifact, f.check) for f in report.failures if f.subject == f"document:{victim.id}"}
    assert ("original", "stored bytes match fingerprint") in named, report.failures
    assert ("original", "seal valid") in named and ("original", "timestamp token") in named


def test_a_journal_gap_fails_the_sweep(archive, two_documents):
    tamper(archive.engine, "journal_event", "DELETE FROM journal_event WHERE seq = 3")
    report = integrity_sweep(archive, actor=ACTOR, record=False)
    journal = [f for f in report.failures if f.subject == "journal"]
    assert journal and "sequence gap" in journal[0].detail


# -- certificates near expiry, and renewal --------------------------------------------------


def _short_lived(archive, pki: DevPki, *, tsa_days: int, seal_days: int, rsa_bits: int = 2048):
    """The archive with a seal and a TSA whose certificates expire in days."""
    root = pki.load_root()
    root_key = load_private_key_pem(pki.root_key.read_bytes())
    tsa_key, tsa_cert = issue_certificate(
        "tsa",
        root=root,
        root_key=root_key,
        validity=dt.timedelta(days=tsa_days),
        rsa_bits=rsa_bits,
    )
    timestamper = Timestamper.local(TimestampAuthority(tsa_cert, tsa_key, [root]))
    seal_key, seal_cert = issue_certificate(
        "seal", root=root, root_key=root_key, validity=dt.timedelta(days=seal_days)
    )
    identity = SealIdentity(_KeySigner(seal_key, to_asn1(seal_cert)), seal_cert, (root,), "test")
    sealer = Sealer(
        identity, timestamper, level="B-LT", trust_roots=archive.trust_roots, crls=archive.crls
    )
    return dataclasses.replace(archive, sealer=sealer, timestamper=timestamper), tsa_cert


def test_evidence_near_expiry_is_listed_renewed_and_still_verifies(runtime, archive, tmp_path):
    short, short_tsa = _short_lived(archive, runtime.dev_pki, tsa_days=30, seal_days=60)
    expiring = [
        deposit(short, data=make_pdfa(f"E-{s}", seed=s), filename=f"{s}.pdf", actor=ACTOR).document
        for s in (41, 42)
    ]
    lasting = deposit(archive, data=make_pdfa("L", seed=43), filename="l.pdf", actor=ACTOR).document

    report = integrity_sweep(archive, actor=ACTOR, horizon_days=365)
    assert report.ok, [str(f) for f in report.failures]
    due = {(layer.document_id, layer.artifact) for layer, _ in report.due}
    assert due == {(d.id, name) for d in expiring for name in ("original", "sealed")}
    reasons = " ".join(r for _, rs in report.due for r in rs)
    assert "tsa certificate" in reasons and "seal certificate" in reasons
    expiring_certs = {c["role"] for c in report.summary()["expiring_certificates"]}
    assert expiring_certs == {"seal", "tsa"}
    # A 10-day horizon lists nothing: the certificates are good for 30 and 60 days.
    assert integrity_sweep(archive, actor=ACTOR, horizon_days=10, record=False).due == ()

    before = {d.id: set(_artifacts(archive, d)) for d in [*expiring, lasting]}
    planned = renew_evidence(archive, actor=ACTOR, dry_run=True)
    assert {(r.document_id, r.artifact) for r in planned.renewed} == due
    assert {d.id: set(_artifacts(archive, d)) for d in [*expiring, lasting]} == before
    assert _journal(archive, "evidence.renewed") == []

    done = renew_evidence(archive, actor=ACTOR)
    assert done.ok and len(done.renewed) == 4, done.to_json()
    for document in expiring:
        names = set(_artifacts(archive, document)) - before[document.id]
        assert names == {"original.renewal-1.json", "original.renewal-1.tsr", "sealed.lta-1"}
        verified = verify_document(archive, document.id, actor=ACTOR)
        assert verified.ok, verified.failures
        checks = {c.name for c in verified.checks}
        assert "artifact sealed.lta-1: seal valid" in checks
        assert "artifact original: renewal 1: original.renewal-1.tsr valid now" in checks, checks
    assert set(_artifacts(archive, lasting)) == before[lasting.id]
    events = _journal(archive, "evidence.renewed")
    assert {(e.subject, e.payload["artifact"]) for e in events} == {
        (f"document:{d}", a) for d, a in due
    }

    # Renewed: the sweep holds and lists nothing due; a second renewal renews nothing.
    after = integrity_sweep(archive, actor=ACTOR)
    assert after.ok and after.due == () and after.anchor_due == (), after.to_json()
    assert renew_evidence(archive, actor=ACTOR).renewed == ()

    # The renewal, as an auditor checks it.
    document = expiring[0]
    stored = _artifacts(archive, document)
    body = json.loads(_read(archive, document, "original.renewal-1.json"))
    assert body["artifact_sha256"] == document.original_sha256
    assert {c["name"]: c["sha256"] for c in body["covers"]} == {
        "original.p7s": stored["original.p7s"].sha256,
        "original.tsr": stored["original.tsr"].sha256,
    }
    _openssl_checks(archive, runtime.dev_pki, document, short_tsa, tmp_path)

    lta = _read(archive, document, "sealed.lta-1")
    assert lta.startswith(_read(archive, document, "sealed"))  # an incremental update
    check = validate_pdf_seal(lta, trust_roots=archive.trust_roots, crls=archive.crls)
    assert check.ok and check.level == "B-LTA", check
    violations = pdfa_violations(lta)
    if violations is not None:
        assert [v for v in violations if "[violation]" in v] == []

    bundle = verify_bundle(build_bundle(archive, document.id, actor=ACTOR))
    assert bundle.ok, bundle.failures
    assert any("renewal 1" in c.name for c in bundle.checks)


def _read(archive, document, name: str) -> bytes:
    return read_artifact(archive, document_id=document.id, name=name, actor=ACTOR)[1]


def _openssl_checks(archive, pki: DevPki, document, short_tsa, tmp_path: Path) -> None:
    """The commands of archive.renewal's docstring, run for real."""
    folder = tmp_path / "auditor"
    folder.mkdir()
    for name in ("original", "original.tsr", "original.renewal-1.json", "original.renewal-1.tsr"):
        (folder / name).write_bytes(_read(archive, document, name))
    (folder / "root.pem").write_bytes(pki.root_cert.read_bytes())
    (folder / "tsa.pem").write_bytes(
        pki.tsa_cert.read_bytes() + short_tsa.public_bytes(serialization.Encoding.PEM)
    )

    def openssl(*args: str) -> str:
        done = subprocess.run(
            ["openssl", *args], cwd=folder, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    trust = ("-CAfile", "root.pem", "-untrusted", "tsa.pem")
    out = openssl(
        "ts", "-verify", "-data", "original.renewal-1.json", "-in", "original.renewal-1.tsr", *trust
    )
    assert "Verification: OK" in out
    text = openssl("ts", "-reply", "-in", "original.renewal-1.tsr", "-text")
    stamp = next(line for line in text.splitlines() if line.startswith("Time stamp:"))
    value = re.sub(r"\.\d+", "", stamp.split(": ", 1)[1].strip())  # "Nov 23 18:05:01 2026 GMT"
    when = dt.datetime.strptime(value, "%b %d %H:%M:%S %Y %Z")
    epoch = str(int(when.replace(tzinfo=dt.UTC).timestamp()))
    out = openssl(
        "ts", "-verify", "-data", "original", "-in", "original.tsr", *trust, "-attime", epoch
    )
    assert "Verification: OK" in out


def test_the_renewal_chain_outlives_the_old_tsa_certificate(tmp_path):
    """Point in time: a token from a TSA whose certificate expired a year ago still proves
    its data when a renewal made while it was valid covers it — and not otherwise."""
    now = dt.datetime.now(dt.UTC)
    root_key = load_private_key_pem(_pem_key())
    root = _make_root(root_key, "Drill", now - dt.timedelta(days=5 * 365))

    def tsa(start: dt.datetime, days: int, clock: dt.datetime) -> Timestamper:
        key, cert = issue_certificate(
            "tsa", root=root, root_key=root_key, validity=dt.timedelta(days=days), not_before=start
        )
        return Timestamper.local(TimestampAuthority(cert, key, [root], clock=lambda: clock))

    # The old TSA was valid from 3 years ago to 1 year ago; its token is 2 years old.
    data = b"facture 2023-0001"
    old = tsa(now - dt.timedelta(days=3 * 365), 2 * 365, now - dt.timedelta(days=2 * 365))
    token = _stamp(old, hashlib.sha256(data).digest())
    assert not verify_timestamp(token, data=data, trust_roots=[root]).ok  # expired today

    def renewal(clock: dt.datetime, covers: dict[str, bytes]) -> Renewal:
        new = tsa(now - dt.timedelta(days=4 * 365), 10 * 365, clock)
        body = renewal_body(
            artifact="original",
            artifact_sha256=hashlib.sha256(data).hexdigest(),
            n=1,
            covers=[(name, hashlib.sha256(blob).hexdigest()) for name, blob in covers.items()],
        )
        return Renewal(1, body, _stamp(new, hashlib.sha256(body).digest()))

    def holds(renewed: Renewal, evidence: dict[str, bytes]) -> bool:
        verdict = check_renewals(
            artifact="original",
            artifact_sha256=hashlib.sha256(data).hexdigest(),
            evidence=evidence,
            renewals=[renewed],
            trust_roots=[root],
        )
        if verdict.base_moment is None:
            return False
        return verify_timestamp(token, data=data, trust_roots=[root], moment=verdict.base_moment).ok

    evidence = {"original.tsr": token}
    in_time = renewal(now - dt.timedelta(days=400), evidence)
    assert holds(in_time, evidence)
    too_late = renewal(now - dt.timedelta(days=200), evidence)  # after the old cert expired
    assert not holds(too_late, evidence)
    forged = {"original.tsr": token + b"\x00"}
    assert not holds(renewal(now - dt.timedelta(days=400), forged), evidence)
    uncovered = renewal(now - dt.timedelta(days=400), {})
    assert not holds(uncovered, evidence)


def _stamp(timestamper: Timestamper, digest: bytes) -> bytes:
    from archive._aio import run_sync

    return run_sync(timestamper.stamp(digest)).response_der


def _pem_key() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_a_weak_tsa_key_is_listed_whatever_the_horizon(runtime, archive):
    weak, _ = _short_lived(archive, runtime.dev_pki, tsa_days=3650, seal_days=3650, rsa_bits=1024)
    document = deposit(weak, data=make_pdfa("W", seed=51), filename="w.pdf", actor=ACTOR).document
    report = integrity_sweep(archive, actor=ACTOR, horizon_days=1, record=False)
    reasons = {r for layer, rs in report.due if layer.document_id == document.id for r in rs}
    assert any("RSA-1024" in r for r in reasons), report.to_json()


def test_renewal_refuses_a_tsa_that_would_lapse_within_the_horizon(runtime, archive):
    short, _ = _short_lived(archive, runtime.dev_pki, tsa_days=30, seal_days=60)
    deposit(short, data=make_pdfa("S", seed=61), filename="s.pdf", actor=ACTOR)
    from archive.renew import RenewalError

    with pytest.raises(RenewalError, match="configured TSA"):
        renew_evidence(short, actor=ACTOR)
    assert _journal(archive, "evidence.renewed") == []


# -- the command line -------------------------------------------------------------------------


def test_cli_integrity_check_and_renew_evidence(request, runtime, archive):
    if runtime.settings.storage.backend != "local":
        pytest.skip("the CLI reads its settings from the environment: one backend is enough")
    two_documents = request.getfixturevalue("two_documents")
    from typer.testing import CliRunner

    from coffre.cli import app

    env = {"COFFRE_DATA_DIR": str(runtime.settings.data_dir)}

    def coffre(*args: str):
        return CliRunner().invoke(app, list(args), env=env)

    clean = coffre("integrity-check", "--json")
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["artifacts"] == 8
    human = coffre("integrity-check", "--horizon-days", "30")
    assert human.exit_code == 0 and "integrity: OK" in human.output
    assert "artifacts/s" in human.output
    planned = coffre("renew-evidence", "--dry-run", "--json")
    assert planned.exit_code == 0 and json.loads(planned.stdout)["renewed"] == []

    victim = two_documents[0]
    original = _artifacts(archive, victim)["original"]
    tamper(
        archive.engine,
        "artifact",
        "UPDATE artifact SET sha256 = :v WHERE id = :a",
        v="ab" * 32,
        a=original.id.hex,
    )
    broken = coffre("integrity-check")
    assert broken.exit_code == 1
    assert f"document:{victim.id} artifact original: stored bytes match fingerprint" in (
        broken.output.replace("\n", " ")
    )
    with session_scope(archive.engine, read_only=True) as session:
        journal = describe(session, victim.id)["journal"]
    assert journal  # the document is still described; the sweep changed nothing


def test_damaged_evidence_is_not_renewed(runtime, archive):
    short, _ = _short_lived(archive, runtime.dev_pki, tsa_days=30, seal_days=60)
    document = deposit(short, data=make_pdfa("D", seed=71), filename="d.pdf", actor=ACTOR).document
    signature = _artifacts(archive, document)["original.p7s"]
    tamper(
        archive.engine,
        "artifact",
        "UPDATE artifact SET sha256 = :v WHERE id = :a",
        v="cd" * 32,
        a=signature.id.hex if archive.engine.dialect.name == "sqlite" else signature.id,
    )
    report = renew_evidence(archive, actor=ACTOR)
    assert [(f.artifact, f.check) for f in report.failures] == [
        ("original.p7s", "stored bytes match fingerprint")
    ]
    # The PAdES copy does not depend on the detached seal: it is renewed.
    assert [(r.artifact, r.added) for r in report.renewed] == [("sealed", ("sealed.lta-1",))]
    assert "original.renewal-1.json" not in _artifacts(archive, document)


def test_the_scheduled_sweep_runs_once_a_day_whatever_the_number_of_workers(archive):
    assert sweep_due(archive)
    integrity_sweep(archive, actor="system:scheduler")
    assert not sweep_due(archive)  # the other workers' schedulers find it done
    assert sweep_due(archive, every_hours=0)
