"""Deposit: fingerprint → seal → timestamp → store → journal, idempotent, and bad input
quarantined with nothing lost. Runs on SQLite + local store and PostgreSQL + S3."""

from __future__ import annotations

import hashlib

import pikepdf
import pytest

from archive.deposit import deposit
from archive.errors import BadInput, CorruptPdf, EmptyFile, EncryptedPdf, NotAPdf
from archive.models import Document, DocumentState, Quarantine
from archive.service import create_company, describe, read_artifact
from archive.verify import verify_document
from storage import session_scope
from tests.pdfs import make_pdfa, pdfa_declared

ACTOR = "station:test-scanner"


def _deposit(archive, data: bytes, **kw):
    return deposit(archive, data=data, filename="facture.pdf", actor=ACTOR, **kw)


def test_deposit_archives_a_pdfa_with_its_evidence(archive):
    data = make_pdfa("FACTURE F-2026-001", seed=1)
    outcome = _deposit(archive, data)
    assert outcome.created
    doc = outcome.document
    assert doc.state == DocumentState.archived.value
    assert doc.original_sha256 == hashlib.sha256(data).hexdigest()
    with session_scope(archive.engine) as session:
        body = describe(session, doc.id)
    names = {a["name"]: a for a in body["artifacts"]}
    assert set(names) == {"original", "original.p7s", "original.tsr", "sealed"}
    assert names["original"]["sha256"] == doc.original_sha256
    for name in ("original", "sealed"):
        ev = names[name]["evidence"]
        assert ev["sha256"] == names[name]["sha256"]
        assert ev["timestamp_serial"] and ev["seal_cert_sha256"]
        assert ev["retain_until"] == names[name]["retain_until"]
    assert names["sealed"]["evidence"]["seal_format"].startswith("PAdES-B-")
    actions = [e["action"] for e in body["journal"]]
    assert actions[0] == "document.deposited"
    assert {"artifact.sealed", "artifact.timestamped", "artifact.stored"} <= set(actions)
    assert actions[-1] == "document.state_changed"

    _, original = read_artifact(archive, document_id=doc.id, name="original", actor=ACTOR)
    assert original == data  # byte for byte
    _, sealed = read_artifact(archive, document_id=doc.id, name="sealed", actor=ACTOR)
    assert sealed.startswith(data)  # incremental update: the original is a prefix
    assert pdfa_declared(sealed) == pdfa_declared(data) == ("2", "B")
    report = verify_document(archive, doc.id, actor=ACTOR)
    assert report.ok, report.failures


def test_artifacts_are_stored_side_by_side_under_content_addressed_keys(archive):
    doc = _deposit(archive, make_pdfa("FACTURE F-2026-011", seed=11)).document
    with session_scope(archive.engine) as session:
        artifacts = describe(session, doc.id)["artifacts"]

    # One prefix per document; the artifact's own digest in its key, so a retried deposit
    # that seals again writes beside the first attempt, never over it.
    prefix = f"documents/{doc.company_id}/{doc.original_sha256}/"
    assert {a["storage_key"] for a in artifacts} == {
        f"{prefix}{a['name']}.{a['sha256']}" for a in artifacts
    }


def test_same_bytes_twice_give_the_same_document(archive):
    data = make_pdfa(seed=2)
    first = _deposit(archive, data)
    second = _deposit(archive, data)
    assert not second.created and second.document.id == first.document.id
    with session_scope(archive.engine) as session:
        assert len(session.exec(Document.__table__.select()).all()) == 1  # type: ignore[attr-defined]


def test_each_company_keeps_its_own_copy(archive):
    data = make_pdfa(seed=3)
    with session_scope(archive.engine) as session:
        other = create_company(session, name="Cabinet Durand", siren="732829320")
    a = _deposit(archive, data)
    b = _deposit(archive, data, company_ref="732829320")
    assert a.document.id != b.document.id
    assert b.document.company_id == other.id


def _encrypted_pdf() -> bytes:
    import io

    pdf = pikepdf.open(io.BytesIO(make_pdfa(seed=4)))
    buf = io.BytesIO()
    pdf.save(buf, encryption=pikepdf.Encryption(owner="o", user="secret"))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("label", "make", "error"),
    [
        ("empty", lambda: b"", EmptyFile),
        ("not a pdf", lambda: b"PK\x03\x04 this is a zip, not an invoice", NotAPdf),
        ("truncated", lambda: make_pdfa(seed=5)[:-400], CorruptPdf),
        ("encrypted", _encrypted_pdf, EncryptedPdf),
    ],
)
def test_bad_input_is_quarantined_with_its_reason(archive, label, make, error):
    data = make()
    with pytest.raises(error) as caught:
        _deposit(archive, data)
    assert isinstance(caught.value, BadInput)
    assert caught.value.message  # a sentence a person can act on
    with session_scope(archive.engine) as session:
        rows = session.exec(Quarantine.__table__.select()).all()  # type: ignore[attr-defined]
        docs = session.exec(Document.__table__.select()).all()  # type: ignore[attr-defined]
    assert len(rows) == 1 and not docs
    row = rows[0]
    assert row.reason_code == error.code and row.sha256 == hashlib.sha256(data).hexdigest()
    assert str(row.id) == caught.value.data["quarantine_id"]
    assert archive.store.get(row.storage_key, row.storage_version) == data  # nothing lost
