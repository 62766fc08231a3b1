"""Verification catches tampering with the stored bytes, the evidence and the journal, and
says what broke."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from archive.deposit import deposit
from archive.models import Artifact
from archive.verify import verify_document, verify_file
from storage import ObjectLocked, session_scope
from tests.pdfs import make_pdfa
from tests.tamper import tamper

ACTOR = "auditor:test"


@pytest.fixture
def document(archive):
    outcome = deposit(archive, data=make_pdfa("F-77", seed=7), filename="f77.pdf", actor=ACTOR)
    return outcome.document


def _failures(archive, document) -> list[str]:
    report = verify_document(archive, document.id, actor=ACTOR)
    assert not report.ok
    return report.to_json()["failures"]


def _artifact(archive, document, name: str) -> Artifact:
    with session_scope(archive.engine) as session:
        return session.exec(
            Artifact.__table__.select().where(  # type: ignore[attr-defined]
                Artifact.document_id == document.id, Artifact.name == name
            )
        ).one()


def test_untouched_document_verifies(archive, document):
    report = verify_document(archive, document.id, actor=ACTOR)
    assert report.ok, report.failures
    names = [c.name for c in report.checks]
    assert "artifact sealed: seal valid" in names and "journal chain" in names


def test_one_byte_changed_in_the_local_store_is_caught(runtime, archive, document):
    if archive.store.backend != "local":
        pytest.skip("S3 Object Lock leaves no way behind the gateway: see the S3 case below")
    art = _artifact(archive, document, "original")
    path = Path(runtime.settings.objects_dir)
    files = [p for p in path.rglob("*") if p.is_file() and art.storage_key in str(p)]
    target = min(files, key=lambda p: len(str(p)))  # the object, not a sidecar
    os.chmod(target, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    failures = _failures(archive, document)
    assert any("artifact original: stored bytes match fingerprint" in f for f in failures), failures
    assert any("artifact original: seal valid" in f for f in failures), failures


def test_s3_locked_version_survives_an_overwrite_attempt(request, archive, document):
    if archive.store.backend != "s3":
        pytest.skip("S3 only")
    import io

    from minio.error import S3Error

    art = _artifact(archive, document, "original")
    client = request.getfixturevalue("s3_server").endpoint.client()
    client.put_object(archive.store.bucket, art.storage_key, io.BytesIO(b"forged"), 6)
    with pytest.raises(S3Error) as refused:
        client.remove_object(archive.store.bucket, art.storage_key, version_id=art.storage_version)
    assert refused.value.code == "AccessDenied"
    with pytest.raises(ObjectLocked):
        archive.store.delete(art.storage_key, art.storage_version)
    report = verify_document(archive, document.id, actor=ACTOR)
    assert report.ok, report.failures  # the recorded version is intact


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("seal_cert_sha256", "ab" * 32, "artifact sealed: evidence seal record"),
        ("timestamp_serial", "12345", "artifact original: evidence timestamp record"),
        ("sha256", "cd" * 32, "artifact sealed: evidence matches artifact"),
    ],
)
def test_edited_evidence_row_is_caught(archive, document, column, value, expected):
    art = _artifact(archive, document, expected.split()[1].rstrip(":"))
    tamper(
        archive.engine,
        "evidence",
        f"UPDATE evidence SET {column} = :v WHERE artifact_id = :a",
        v=value,
        a=art.id.hex if archive.engine.dialect.name == "sqlite" else art.id,
    )
    failures = _failures(archive, document)
    assert any(expected in f for f in failures), failures


def test_edited_artifact_row_is_caught(archive, document):
    art = _artifact(archive, document, "sealed")
    tamper(
        archive.engine,
        "artifact",
        "UPDATE artifact SET sha256 = :v WHERE id = :a",
        v="ee" * 32,
        a=art.id.hex if archive.engine.dialect.name == "sqlite" else art.id,
    )
    failures = _failures(archive, document)
    assert any("artifact sealed: storage record" in f for f in failures), failures
    assert any("artifact sealed: stored bytes match fingerprint" in f for f in failures)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DELETE FROM journal_event WHERE seq = 2", "sequence gap"),
        ("UPDATE journal_event SET actor = 'mallory' WHERE seq = 1", "hash does not match"),
    ],
)
def test_journal_tampering_fails_document_verification(archive, document, sql, expected):
    tamper(archive.engine, "journal_event", sql)
    failures = _failures(archive, document)
    assert any(f.startswith("journal chain") and expected in f for f in failures), failures


def test_verify_file_finds_the_document_or_says_unknown(archive, document, tmp_path):
    from archive.service import read_artifact

    _, sealed = read_artifact(archive, document_id=document.id, name="sealed", actor=ACTOR)
    known = tmp_path / "sealed.pdf"
    known.write_bytes(sealed)
    reports = verify_file(archive, known, actor=ACTOR)
    assert [r.subject for r in reports] == [f"document:{document.id}"] and reports[0].ok
    stranger = tmp_path / "other.pdf"
    stranger.write_bytes(make_pdfa(seed=99))
    (report,) = verify_file(archive, stranger, actor=ACTOR)
    assert not report.ok and "no stored artifact" in report.failures[0].detail
