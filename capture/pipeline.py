"""From a received file to an archived document: intake, then processing in a worker.

**Intake** (fast, in the API, the hot folder or the CLI) decides from the content what the
file is. An e-invoice is read, validated and archived at once (XML, no OCR). Anything else
is probed (type, pages, resolution, decompression bombs, active content), archived as
received (original, detached seal, timestamp) in state ``received``, and handed to the
queue. Bad input is quarantined with its reason. Every intake leaves a ``capture`` row the
station can ask about.

**Processing** (a worker, or the CLI itself when no worker runs) claims the document with a
lease, converts it to a faithful PDF/A with its pixel proof, OCRs it, extracts the invoice
fields, and hands everything to :func:`archive.complete`, which applies only while the
document is still ``received``: a worker killed at any step leaves the document received,
its lease lapses, the step reruns, and nothing is archived twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from archive import (
    Archive,
    BadInput,
    Completion,
    Derived,
    Document,
    DocumentKind,
    DocumentState,
    Flag,
    Submission,
    complete,
    fail,
    receive,
)
from archive.canonical import to_jsonable
from archive.errors import ArchiveError
from archive.models import Artifact, Company, DocumentFlag, InvoiceRecord
from archive.service import resolve_company
from capture.einvoice.service import receive_einvoice
from capture.einvoice.validate import Validator
from capture.errors import CaptureError, ConversionFailed
from capture.models import Capture, WorkerHeartbeat, WorkItem
from capture.scan.convert import Conversion, convert
from capture.scan.extract import extract
from capture.scan.probe import PixelFingerprint, ScanProbe, probe
from capture.scan.text import words_from_pdf
from capture.service import recognise_einvoice
from capture.suppliers import DatabaseDirectory
from storage import session_scope
from storage.types import utcnow

log = structlog.get_logger("coffre.capture")

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


class IdempotencyConflict(CaptureError):
    """The Idempotency-Key was already used for other bytes."""

    code = "idempotency_key_reused"
    status = 409


class CaptureNotFound(CaptureError):
    code = "capture_not_found"
    status = 404


@dataclass(frozen=True)
class ScanOptions:
    languages: str = "fra+eng"
    ocr_timeout: float = 600.0
    #: tesseract pages in parallel within one job (each single-threaded).
    ocr_jobs: int = 1
    min_dpi: int = 200
    max_pixels: int = 200_000_000
    #: How long a claimed document is left to its worker before another may take it.
    lease_seconds: int = 1800
    #: Processing attempts before the document is failed with the last error.
    max_attempts: int = 3


@dataclass(frozen=True)
class CaptureResult:
    capture: Capture
    #: "archived", "processing", "failed", "quarantined"
    status: str
    document_id: uuid.UUID | None
    created: bool
    reason_code: str | None = None
    reason: str | None = None
    #: True when the document waits for a worker (the caller enqueues it).
    needs_processing: bool = False


def capture_status(document_state: str | None) -> str:
    if document_state is None:
        return "quarantined"
    if document_state == DocumentState.received.value:
        return "processing"
    if document_state in (DocumentState.failed.value, DocumentState.quarantined.value):
        return "failed"
    return "archived"


FINAL = frozenset({"archived", "failed", "quarantined"})


@dataclass
class Pipeline:
    archive: Archive
    validator: Callable[[], Validator]
    options: ScanOptions = field(default_factory=ScanOptions)
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    # -- intake ------------------------------------------------------------------------------
    def intake(
        self,
        data: bytes,
        *,
        filename: str | None,
        actor: str,
        source: str,
        company_ref: str | None = None,
        kind: str | None = None,
        station: str | None = None,
        idempotency_key: str | None = None,
    ) -> CaptureResult:
        """Take one file in. Never raises for bad input: the result says ``quarantined``."""
        sha256 = hashlib.sha256(data).hexdigest()
        if idempotency_key:
            previous = self._by_key(actor, idempotency_key)
            if previous is not None:
                if previous.sha256 != sha256:
                    raise IdempotencyConflict(
                        "this Idempotency-Key was already used for a different file",
                        capture_id=str(previous.id),
                    )
                return self._result(previous, created=False)
        with session_scope(self.archive.engine, read_only=True) as session:
            company = resolve_company(session, company_ref)
        document: Document | None = None
        created = False
        bad: BadInput | None = None
        try:
            einvoice = recognise_einvoice(data)
            if einvoice is not None:
                outcome = receive_einvoice(
                    self.archive,
                    self.validator,
                    data=data,
                    filename=filename,
                    company_ref=str(company.id),
                    actor=actor,
                    source=source,
                    kind=kind,
                    reading=einvoice.reading,
                )
            else:
                outcome = receive(
                    self.archive,
                    data=data,
                    filename=filename,
                    company_ref=str(company.id),
                    actor=actor,
                    source=source,
                    admit=self._admit_scan(kind, station),
                    sha256=sha256,
                )
            document, created = outcome.document, outcome.created
        except BadInput as exc:
            bad = exc
        row = Capture(
            company_id=company.id,
            actor=actor,
            station=station,
            source=source,
            idempotency_key=idempotency_key or None,
            filename=filename,
            sha256=sha256,
            size=len(data),
            document_id=document.id if document else None,
            quarantine_id=uuid.UUID(bad.data["quarantine_id"])
            if bad is not None and "quarantine_id" in bad.data
            else None,
            reason_code=bad.code if bad else None,
            reason=bad.message if bad else None,
        )
        try:
            with session_scope(self.archive.engine) as session:
                session.add(row)
                if (
                    document is not None
                    and document.state == DocumentState.received.value
                    and session.get(WorkItem, document.id) is None
                ):
                    session.add(WorkItem(document_id=document.id))
                session.flush()
                session.expunge(row)
        except IntegrityError:
            # The same key raced in from another request: the first one stands.
            previous = self._by_key(actor, idempotency_key or "")
            if previous is None:
                raise
            return self._result(previous, created=False)
        log.info(
            "capture.intake",
            capture=str(row.id),
            document=str(row.document_id) if row.document_id else None,
            filename=filename,
            reason=row.reason_code,
        )
        return self._result(row, created=created)

    def _admit_scan(self, kind: str | None, station: str | None) -> Callable[[bytes], Submission]:
        options = self.options

        def admit(data: bytes) -> Submission:
            found = probe(data, max_pixels=options.max_pixels, min_dpi=options.min_dpi)
            return Submission(
                kind=DocumentKind(kind or DocumentKind.supplier_invoice.value).value,
                media_type=found.media_type,
                format=found.format,
                flags=tuple(Flag(code, message) for code, message in found.flags),
                details={
                    "pages": found.pages,
                    "station": station,
                    **_pixel_details(found),
                },
                state=DocumentState.received.value,
            )

        return admit

    def _by_key(self, actor: str, key: str) -> Capture | None:
        with session_scope(self.archive.engine, read_only=True) as session:
            row = session.exec(
                select(Capture).where(Capture.actor == actor, Capture.idempotency_key == key)
            ).first()
            if row is not None:
                session.expunge(row)
            return row

    def _result(self, row: Capture, *, created: bool) -> CaptureResult:
        state = None
        if row.document_id is not None:
            with session_scope(self.archive.engine, read_only=True) as session:
                document = session.get(Document, row.document_id)
                state = document.state if document else None
        status = capture_status(state)
        return CaptureResult(
            capture=row,
            status=status,
            document_id=row.document_id,
            created=created,
            reason_code=row.reason_code,
            reason=row.reason,
            needs_processing=status == "processing",
        )

    def status(self, capture_id: uuid.UUID | str) -> dict[str, Any]:
        """What a station sees of one capture: its outcome and, once known, the reasons."""
        try:
            key = uuid.UUID(str(capture_id))
        except ValueError:
            raise CaptureNotFound("no such capture", capture_id=str(capture_id)) from None
        with session_scope(self.archive.engine, read_only=True) as session:
            row = session.get(Capture, key)
            if row is None:
                raise CaptureNotFound("no such capture", capture_id=str(capture_id))
            body: dict[str, Any] = {
                "id": str(row.id),
                "company_id": str(row.company_id),
                "station": row.station,
                "filename": row.filename,
                "sha256": row.sha256,
                "size": row.size,
                "received_at": row.created_at.isoformat(),
                "document_id": str(row.document_id) if row.document_id else None,
                "quarantine_id": str(row.quarantine_id) if row.quarantine_id else None,
                "reason_code": row.reason_code,
                "reason": row.reason,
            }
            state = None
            if row.document_id is not None:
                document = session.get(Document, row.document_id)
                state = document.state if document else None
                flags = session.exec(
                    select(DocumentFlag).where(DocumentFlag.document_id == row.document_id)
                ).all()
                body["flags"] = [{"code": f.code, "message": f.message} for f in flags]
                work = session.get(WorkItem, row.document_id)
                if work is not None:
                    body["attempts"] = work.attempts
                    body["last_error"] = work.last_error
            body["document_state"] = state
            body["status"] = capture_status(state)
        return body

    # -- processing ---------------------------------------------------------------------------
    def claim(self, document_id: uuid.UUID) -> bool:
        """Take the lease on a received document; False when another worker holds it or
        there is nothing left to do."""
        now = utcnow()
        with session_scope(self.archive.engine) as session:
            document = session.get(Document, document_id)
            if document is None or document.state != DocumentState.received.value:
                return False
            if session.get(WorkItem, document_id) is None:
                session.add(WorkItem(document_id=document_id))
                session.flush()
            result = session.execute(
                update(WorkItem)
                .where(
                    WorkItem.document_id == document_id,  # type: ignore[arg-type]
                    or_(col(WorkItem.lease_until).is_(None), col(WorkItem.lease_until) < now),
                )
                .values(
                    lease_until=now + timedelta(seconds=self.options.lease_seconds),
                    leased_by=self.worker_name,
                    attempts=WorkItem.attempts + 1,
                    updated_at=now,
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _release(self, document_id: uuid.UUID, error: str | None) -> None:
        with session_scope(self.archive.engine) as session:
            session.execute(
                update(WorkItem)
                .where(WorkItem.document_id == document_id)  # type: ignore[arg-type]
                .values(lease_until=None, leased_by=None, last_error=error, updated_at=utcnow())
            )

    def process(self, document_id: uuid.UUID | str) -> str:
        """Run the processing of one received document; returns the capture status.

        Permanent problems (bad input found on full decode, a conversion that would not be
        lossless) fail the document at once with the reason; others are retried up to
        ``max_attempts`` and then fail it with the last error.
        """
        key = uuid.UUID(str(document_id))
        if not self.claim(key):
            return self.document_status(key)
        actor = f"worker:{self.worker_name}"
        try:
            completion = self._convert_and_extract(key)
            done = complete(self.archive, key, completion, actor=actor)
        except (BadInput, CaptureError) as exc:
            if (
                isinstance(exc, ConversionFailed)
                and self._attempts(key) < self.options.max_attempts
            ):
                self._release(key, f"{exc.code}: {exc.message}")
                raise
            fail(self.archive, key, Flag(exc.code, exc.message), actor=actor)
            self._release(key, f"{exc.code}: {exc.message}")
            log.warning("capture.failed", document=str(key), code=exc.code, reason=exc.message)
            return "failed"
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if self._attempts(key) >= self.options.max_attempts:
                fail(
                    self.archive,
                    key,
                    Flag("processing_failed", reason),
                    actor=actor,
                )
                self._release(key, reason)
                log.error("capture.failed", document=str(key), reason=reason)
                return "failed"
            self._release(key, reason)
            raise
        self._release(key, None)
        if done is None:
            return self.document_status(key)
        log.info("capture.archived", document=str(key))
        return "archived"

    def process_until_final(self, document_id: uuid.UUID | str) -> str:
        """Process in this process (no worker running): retry transient errors until the
        document is archived or failed. Returns "processing" only when another worker holds
        the document's lease."""
        for _ in range(self.options.max_attempts + 1):
            try:
                return self.process(document_id)
            except Exception as exc:  # transient: process() released the lease; rerun
                log.warning("capture.retry", document=str(document_id), error=str(exc))
        return self.document_status(uuid.UUID(str(document_id)))

    def wait(
        self,
        document_ids: list[uuid.UUID],
        *,
        on_final: Callable[[uuid.UUID, str], None],
        poll_seconds: float = 1.0,
        timeout: float | None = None,
    ) -> dict[uuid.UUID, str]:
        """Wait for documents processed elsewhere (workers) to reach a final state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        left = set(document_ids)
        done: dict[uuid.UUID, str] = {}
        while left:
            for key in sorted(left):
                status = self.document_status(key)
                if status in FINAL:
                    done[key] = status
                    left.discard(key)
                    on_final(key, status)
            if not left or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(poll_seconds)
        for key in left:
            done[key] = "processing"
        return done

    def _attempts(self, document_id: uuid.UUID) -> int:
        with session_scope(self.archive.engine, read_only=True) as session:
            work = session.get(WorkItem, document_id)
            return work.attempts if work else 0

    def document_status(self, document_id: uuid.UUID) -> str:
        with session_scope(self.archive.engine, read_only=True) as session:
            document = session.get(Document, document_id)
            return capture_status(document.state if document else None)

    def _convert_and_extract(self, document_id: uuid.UUID) -> Completion:
        with session_scope(self.archive.engine, read_only=True) as session:
            document = session.get(Document, document_id)
            assert document is not None
            company = session.get(Company, document.company_id)
            assert company is not None
            original = session.exec(
                select(Artifact).where(
                    Artifact.document_id == document_id, Artifact.name == "original"
                )
            ).one()
            session.expunge_all()
        data = self.archive.store.get(original.storage_key, original.storage_version)
        if hashlib.sha256(data).hexdigest() != original.sha256:
            raise ArchiveError(
                "the stored original does not match its fingerprint",
                document_id=str(document_id),
            )
        # Probed in full at intake and the fingerprint matches: no second full decode here;
        # the pixel proof checks the PDF/A against the pixels fingerprinted at intake.
        found = _with_fingerprints(
            probe(
                data,
                max_pixels=self.options.max_pixels,
                min_dpi=self.options.min_dpi,
                decode=False,
            ),
            self._intake_fingerprints(document_id),
        )
        conversion = convert(
            data,
            found,
            languages=self.options.languages,
            timeout=self.options.ocr_timeout,
            jobs=self.options.ocr_jobs,
        )
        pages = words_from_pdf(conversion.pdf)
        directory = DatabaseDirectory(self.archive.engine, company.id)
        own = [company.siren] if company.siren else []
        extraction = extract(pages, directory=directory, own_sirens=own)
        invoice = extraction.invoice
        flags = [Flag(code, message) for code, message in extraction.flags]
        if not conversion.pdfa_valid:
            flags.append(
                Flag(
                    "pdfa_not_conformant",
                    "the archival PDF did not pass the PDF/A check: "
                    + "; ".join(conversion.pdfa_messages[:5]),
                )
            )
        flags.extend(self._duplicates(company.id, document_id, invoice))
        text = "\f".join(conversion.text)
        proof = _conversion_facts(found, conversion)
        fields = {
            name: {"confidence": p.confidence, "page": p.page, "bbox": p.bbox}
            for name, p in invoice.provenance.items()
        }
        return Completion(
            archival_pdf=conversion.pdf,
            archival_name="sealed",
            derived=(
                Derived("ocr.txt", text.encode(), TEXT),
                Derived("conversion.json", _json(proof), JSON),
                Derived(
                    "invoice.json",
                    _json({"invoice": invoice.model_dump(mode="json"), "fields": fields}),
                    JSON,
                ),
            ),
            invoice=invoice,
            flags=tuple(flags),
            events=(
                ("capture.converted", proof),
                (
                    "capture.extracted",
                    {
                        "fields": sorted(invoice.provenance),
                        "low_confidence": sorted(
                            n for n, p in invoice.provenance.items() if p.confidence < 0.8
                        ),
                        "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                    },
                ),
            ),
        )

    def _intake_fingerprints(self, document_id: uuid.UUID) -> list[dict[str, Any]]:
        """The source pixels' fingerprints the probe took at intake, as journaled."""
        with session_scope(self.archive.engine, read_only=True) as session:
            events = self.archive.journal.events_for(session, f"document:{document_id}")
        deposited = [e for e in events if e.action == "document.deposited"]
        return list(deposited[0].payload.get("pixels", [])) if deposited else []

    def _duplicates(
        self, company_id: uuid.UUID, document_id: uuid.UUID, invoice: Any
    ) -> list[Flag]:
        """Same supplier and invoice number as another document: a double-payment risk.
        Both are kept; this one is flagged."""
        if not (invoice.seller_siren and invoice.invoice_number):
            return []
        with session_scope(self.archive.engine, read_only=True) as session:
            others = _same_invoice(session, company_id, document_id, invoice)
        if not others:
            return []
        return [
            Flag(
                "suspected_duplicate",
                f"supplier {invoice.seller_siren} invoice {invoice.invoice_number} is also "
                f"document {', '.join(str(o) for o in others)}",
            )
        ]

    # -- recovery -----------------------------------------------------------------------------
    def stale(self, limit: int = 500) -> list[str]:
        """Received documents nobody is working on: never claimed, or their lease lapsed."""
        now = utcnow()
        with session_scope(self.archive.engine, read_only=True) as session:
            query = (
                select(Document.id)
                .outerjoin(WorkItem, WorkItem.document_id == Document.id)  # type: ignore[arg-type]
                .where(
                    Document.state == DocumentState.received.value,
                    or_(
                        col(WorkItem.document_id).is_(None),
                        col(WorkItem.lease_until).is_(None),
                        col(WorkItem.lease_until) < now,
                    ),
                )
                .limit(limit)
            )
            return [str(i) for i in session.exec(query)]

    # -- workers -----------------------------------------------------------------------------
    def beat(self, concurrency: int) -> None:
        with session_scope(self.archive.engine) as session:
            row = session.get(WorkerHeartbeat, self.worker_name)
            if row is None:
                row = WorkerHeartbeat(
                    name=self.worker_name,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    concurrency=concurrency,
                )
            row.seen_at = utcnow()
            session.add(row)

    def retire(self) -> None:
        with session_scope(self.archive.engine) as session:
            row = session.get(WorkerHeartbeat, self.worker_name)
            if row is not None:
                session.delete(row)

    def workers_alive(self, within_seconds: int = 45) -> int:
        since = utcnow() - timedelta(seconds=within_seconds)
        with session_scope(self.archive.engine, read_only=True) as session:
            rows = session.exec(
                select(WorkerHeartbeat).where(WorkerHeartbeat.seen_at >= since)
            ).all()
            return len(rows)


def _same_invoice(
    session: Session, company_id: uuid.UUID, document_id: uuid.UUID, invoice: Any
) -> list[uuid.UUID]:
    query = (
        select(InvoiceRecord.document_id)
        .join(Document, and_(Document.id == InvoiceRecord.document_id))  # type: ignore[arg-type]
        .where(
            Document.company_id == company_id,
            InvoiceRecord.document_id != document_id,
            InvoiceRecord.seller_siren == invoice.seller_siren,
            InvoiceRecord.invoice_number == invoice.invoice_number,
        )
    )
    return sorted(set(session.exec(query)))


def _pixel_details(found: ScanProbe) -> dict[str, Any]:
    """The fingerprint of each decoded page, journaled with the deposit (see
    :func:`_with_fingerprints`)."""
    pixels = [
        {"page": number, **dataclasses.asdict(info.pixels)}
        for number, info in enumerate(found.page_info, 1)
        if info.pixels is not None
    ]
    return {"pixels": pixels} if pixels else {}


def _with_fingerprints(found: ScanProbe, journaled: list[dict[str, Any]]) -> ScanProbe:
    """``found`` (probed without decoding) with the fingerprints its intake journaled: the
    pixel proof then checks the PDF/A against them instead of decoding the source again.
    When a page has none (or one this process cannot trust), the proof decodes the source.
    """
    by_page = {entry["page"]: entry for entry in journaled}
    pages = []
    for number, info in enumerate(found.page_info, 1):
        entry = by_page.get(number)
        if entry is not None:
            pixels = PixelFingerprint(
                mode=entry["mode"], sha256=entry["sha256"], decoder=entry["decoder"]
            )
            info = dataclasses.replace(info, pixels=pixels)
        pages.append(info)
    return dataclasses.replace(found, page_info=tuple(pages))


def _conversion_facts(found: ScanProbe, conversion: Conversion) -> dict[str, Any]:
    """The pixel proof and the tools, as journaled and stored in ``conversion.json``."""
    return to_jsonable(
        {
            "input_format": found.format,
            "pages": [
                {
                    "page": p.page,
                    "width": p.width,
                    "height": p.height,
                    "mode": p.mode,
                    "dpi": list(p.dpi) if p.dpi else None,
                    "pixel_sha256": p.pixel_sha256,
                    "encoding": p.encoding,
                }
                for p in conversion.pages
            ],
            "pixels_identical": True,
            "pdfa": "PDF/A-2b",
            "pdfa_valid": conversion.pdfa_valid,
            "ocr_languages": conversion.ocr_languages,
            "tools": dict(sorted(conversion.tools.items())),
        }
    )


def _json(value: Any) -> bytes:
    return json.dumps(to_jsonable(value), ensure_ascii=False, sort_keys=True, indent=1).encode()
