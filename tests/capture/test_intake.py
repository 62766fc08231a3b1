"""Capture intake and processing: a scan goes from received to archived with its PDF/A,
pixel proof, OCR text and fields, exactly once, whatever happens to the worker."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import update
from sqlmodel import select

from archive import verify_document
from archive.models import Artifact, Document, DocumentFlag, JournalEvent, Quarantine
from capture.errors import PixelMismatch
from capture.models import Capture, WorkItem
from capture.pipeline import IdempotencyConflict
from storage import session_scope
from storage.types import utcnow
from tests.conftest import make_settings
from tests.scans import scan_png

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ocr")]


@pytest.fixture
def rt(tmp_path, pki_template):
    from coffre.runtime import build_runtime

    runtime = build_runtime(make_settings(tmp_path / "data", pki_template))
    yield runtime
    runtime.archive.engine.dispose()


def _artifacts(archive, document_id):
    with session_scope(archive.engine, read_only=True) as session:
        rows = session.exec(select(Artifact).where(Artifact.document_id == document_id)).all()
        return {a.name: a for a in rows}


def _state(archive, document_id):
    with session_scope(archive.engine, read_only=True) as session:
        return session.get(Document, document_id).state


def test_a_scan_is_taken_in_then_archived_with_its_pdfa_and_pixel_proof(runtime):
    png = scan_png(["FACTURE N° F-2026-0042", "Total TTC 120,00 EUR"], seed=1)
    pipeline = runtime.pipeline
    result = pipeline.intake(png, filename="scan.png", actor="station:test", source="test")
    assert result.status == "processing" and result.needs_processing
    doc = result.document_id
    # Intake archived the original as received, sealed and timestamped, before any work.
    assert set(_artifacts(runtime.archive, doc)) == {"original", "original.p7s", "original.tsr"}
    assert _state(runtime.archive, doc) == "received"

    assert pipeline.process(doc) == "archived"
    artifacts = _artifacts(runtime.archive, doc)
    assert {"sealed", "ocr.txt", "conversion.json", "invoice.json"} <= set(artifacts)
    store = runtime.archive.store
    sealed = store.get(artifacts["sealed"].storage_key, artifacts["sealed"].storage_version)
    assert sealed.startswith(b"%PDF-")
    text = store.get(artifacts["ocr.txt"].storage_key, artifacts["ocr.txt"].storage_version)
    assert "F-2026-0042" in text.decode()

    proof = json.loads(
        store.get(
            artifacts["conversion.json"].storage_key, artifacts["conversion.json"].storage_version
        )
    )
    source = Image.open(io.BytesIO(png))
    (page,) = proof["pages"]
    assert (page["width"], page["height"], page["mode"]) == (*source.size, "RGB")
    assert page["pixel_sha256"] == hashlib.sha256(source.tobytes()).hexdigest()
    assert page["dpi"] == pytest.approx([300, 300], abs=0.01)  # PNG keeps dots per metre
    assert proof["tools"]["tesseract"]

    report = verify_document(runtime.archive, doc, actor="test")
    assert report.ok, report.failures
    with session_scope(runtime.archive.engine, read_only=True) as session:
        events = session.exec(
            select(JournalEvent).where(JournalEvent.subject == f"document:{doc}")
        ).all()
        session.expunge_all()
    actions = [e.action for e in events]
    assert actions.index("capture.converted") < actions.index("document.state_changed")
    # Intake journaled the pixels it decoded; the worker proved the PDF/A against them.
    deposited = next(e.payload for e in events if e.action == "document.deposited")
    assert deposited["pixels"] == [
        {"page": 1, "mode": "RGB", "sha256": page["pixel_sha256"], "decoder": "lossless"}
    ]
    # Processing again is a no-op: nothing is archived twice.
    assert pipeline.process(doc) == "archived"
    assert len(_artifacts(runtime.archive, doc)) == len(artifacts)


def test_bad_input_is_quarantined_and_the_capture_says_why(rt):
    result = rt.pipeline.intake(
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", filename="logo.gif", actor="s", source="test"
    )
    assert result.status == "quarantined"
    assert result.reason_code == "unsupported_media_type"
    status = rt.pipeline.status(result.capture.id)
    assert status["status"] == "quarantined" and status["quarantine_id"]
    with session_scope(rt.archive.engine, read_only=True) as session:
        kept = session.get(Quarantine, uuid.UUID(status["quarantine_id"]))
    assert rt.archive.store.get(kept.storage_key, kept.storage_version).startswith(b"GIF89a")


def test_idempotency_key_returns_the_same_capture_and_refuses_other_bytes(rt):
    png = scan_png(["Idempotent"], seed=2, size=(600, 400))
    first = rt.pipeline.intake(
        png, filename="a.png", actor="station:1", source="t", idempotency_key="k-1"
    )
    again = rt.pipeline.intake(
        png, filename="a.png", actor="station:1", source="t", idempotency_key="k-1"
    )
    assert again.capture.id == first.capture.id and not again.created
    with pytest.raises(IdempotencyConflict):
        rt.pipeline.intake(
            scan_png(["Other"], seed=3, size=(600, 400)),
            filename="b.png",
            actor="station:1",
            source="t",
            idempotency_key="k-1",
        )
    # Same bytes without a key: a new capture of the same document.
    third = rt.pipeline.intake(png, filename="a.png", actor="station:1", source="t")
    assert third.capture.id != first.capture.id and third.document_id == first.document_id
    with session_scope(rt.archive.engine, read_only=True) as session:
        assert len(session.exec(select(Capture)).all()) == 2


def test_a_lapsed_lease_is_taken_over_and_the_document_is_archived_once(rt):
    png = scan_png(["Lease"], seed=4, size=(600, 400))
    doc = rt.pipeline.intake(png, filename="l.png", actor="s", source="t").document_id
    # A worker claims the document and dies without finishing.
    assert rt.pipeline.claim(doc)
    assert rt.pipeline.stale() == []  # its lease still runs
    assert rt.pipeline.process(doc) == "processing"  # nobody else may take it meanwhile
    with session_scope(rt.archive.engine) as session:
        session.execute(
            update(WorkItem)
            .where(WorkItem.document_id == doc)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    assert rt.pipeline.stale() == [str(doc)]
    assert rt.pipeline.process(doc) == "archived"
    with session_scope(rt.archive.engine, read_only=True) as session:
        assert session.get(WorkItem, doc).attempts == 2
    assert sum(1 for name in _artifacts(rt.archive, doc) if name == "sealed") == 1


def test_two_workers_racing_archive_the_document_once(rt, tmp_path, pki_template):
    from capture.pipeline import Pipeline

    png = scan_png(["Race"], seed=5, size=(600, 400))
    doc = rt.pipeline.intake(png, filename="r.png", actor="s", source="t").document_id
    other = Pipeline(rt.archive, rt.validator, rt.pipeline.options, worker_name="other")
    # Both convert at once: the lease lets only one of them in; force both past it by
    # expiring the lease between their claims, the worst case for double archiving.
    outcomes: list[str] = []

    def run(p):
        outcomes.append(p.process(doc))

    threads = [threading.Thread(target=run, args=(p,)) for p in (rt.pipeline, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["archived", "processing"], ["archived", "archived"])
    with session_scope(rt.archive.engine, read_only=True) as session:
        sealed = session.exec(
            select(Artifact).where(Artifact.document_id == doc, Artifact.name == "sealed")
        ).all()
        changes = session.exec(
            select(JournalEvent).where(
                JournalEvent.subject == f"document:{doc}",
                JournalEvent.action == "document.state_changed",
            )
        ).all()
    assert len(sealed) == 1 and len(changes) == 1


def test_a_conversion_that_is_not_lossless_fails_the_document_loudly(rt, monkeypatch):
    import capture.pipeline as pipeline_module

    png = scan_png(["Lossless or nothing"], seed=6, size=(600, 400))
    doc = rt.pipeline.intake(png, filename="p.png", actor="s", source="t").document_id

    def lossy(*_args, **_kwargs):
        raise PixelMismatch("page 1 does not decode to the source pixels", page=1, what="pixels")

    monkeypatch.setattr(pipeline_module, "convert", lossy)
    assert rt.pipeline.process(doc) == "failed"
    assert _state(rt.archive, doc) == "failed"
    with session_scope(rt.archive.engine, read_only=True) as session:
        flags = session.exec(select(DocumentFlag).where(DocumentFlag.document_id == doc)).all()
    assert [f.code for f in flags] == ["pixel_mismatch"]
    assert "page 1" in flags[0].message
    # The original as received is still archived, sealed and verifiable.
    assert verify_document(rt.archive, doc, actor="test").ok


def _bad_inputs():
    from tests.capture.scan.test_probe import BAD_INPUTS

    return BAD_INPUTS


@pytest.mark.parametrize(
    ("make", "code"),
    [(case[1], case[3]) for case in _bad_inputs()],
    ids=[case[0] for case in _bad_inputs()],
)
def test_every_kind_of_bad_input_is_kept_in_quarantine_and_visible(rt, make, code):
    data = make()
    result = rt.pipeline.intake(data, filename="in.bin", actor="station:q", source="test")
    assert (result.status, result.reason_code) == ("quarantined", code)
    assert result.reason  # a sentence a person can act on
    status = rt.pipeline.status(result.capture.id)
    assert status["status"] == "quarantined" and status["reason_code"] == code
    with session_scope(rt.archive.engine, read_only=True) as session:
        kept = session.get(Quarantine, uuid.UUID(status["quarantine_id"]))
    assert rt.archive.store.get(kept.storage_key, kept.storage_version) == data


def test_a_low_resolution_scan_is_archived_and_flagged(rt):
    png = scan_png(["FACTURE 150 DPI"], seed=51, size=(620, 877), dpi=150)
    result = rt.pipeline.intake(png, filename="low.png", actor="s", source="t")
    assert result.status == "processing"
    assert rt.pipeline.process(result.document_id) == "archived"
    status = rt.pipeline.status(result.capture.id)
    assert "low_resolution" in {f["code"] for f in status["flags"]}
