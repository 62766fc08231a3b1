"""Deposit: fingerprint → seal → timestamp → store → journal, for any file taken as it is.

The original is kept byte for byte with a detached CMS seal and its own RFC 3161 token
beside it. A PDF deposited as it is also gets a PAdES-sealed copy (``sealed``); an
e-invoice does not (LPF L102 B: kept in the form received). Derived artifacts (parsed
invoice data, validation reports) are fingerprinted, stored write-once and journaled; the
journal anchors timestamp them. Idempotent on the original's SHA-256 within a company.

Slow work (sealing, timestamping, storing) happens before the transaction opens, so the
journal's write lock is held only for the inserts.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from archive._aio import run_sync
from archive.canonical import canonical_digest, to_jsonable
from archive.context import Archive, retention_until
from archive.errors import BadInput
from archive.invoice import InvoiceData
from archive.models import (
    Artifact,
    Company,
    Document,
    DocumentFlag,
    DocumentKind,
    DocumentState,
    Evidence,
    InvoiceRecord,
)
from archive.pdf_input import PDF_MEDIA_TYPE, check_pdf
from archive.search import Latest, document_text, index_document
from archive.service import anchor_if_due, artifact_store_facts, quarantine, resolve_company
from storage import MAX_SEGMENT_BYTES, PutItem, StoredObject, session_scope
from storage.types import utcnow

CMS_MEDIA_TYPE = "application/pkcs7-signature"
TSR_MEDIA_TYPE = "application/timestamp-reply"
JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class Derived:
    """A file Coffre made from the original (parsed data, a report, a rendering)."""

    name: str
    data: bytes
    media_type: str


@dataclass(frozen=True)
class Flag:
    code: str
    message: str


@dataclass(frozen=True)
class Submission:
    """What to archive for one received file, once it has been admitted."""

    kind: str = DocumentKind.supplier_invoice.value
    media_type: str = PDF_MEDIA_TYPE
    #: "pdf", "facturx-pdf", "cii", "ubl-invoice", "ubl-creditnote"...
    format: str = "pdf"
    profile: str | None = None
    #: Add a PAdES-sealed copy of the PDF beside the untouched original.
    pades_copy: bool = False
    derived: tuple[Derived, ...] = ()
    invoice: InvoiceData | None = None
    flags: tuple[Flag, ...] = ()
    #: Extra facts for the journal's "document.deposited" event.
    details: dict[str, Any] = field(default_factory=dict)
    #: ``archived`` when everything is here; ``received`` when processing follows
    #: (a scan to convert): :func:`complete` then adds what it made and archives it.
    state: str = DocumentState.archived.value


@dataclass(frozen=True)
class Completion:
    """What processing adds to a received document before archiving it."""

    #: A PDF made from the original (the PDF/A of a scan): PAdES-sealed, stored as
    #: ``archival_name`` with its own evidence.
    archival_pdf: bytes | None = None
    archival_name: str = "sealed"
    derived: tuple[Derived, ...] = ()
    invoice: InvoiceData | None = None
    flags: tuple[Flag, ...] = ()
    #: Journal events recorded first, in the same transaction: (action, payload).
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    state: str = DocumentState.archived.value


#: Admits the received bytes (raising BadInput) and says how to archive them.
Admit = Callable[[bytes], Submission]


@dataclass(frozen=True)
class DepositOutcome:
    document: Document
    created: bool


def deposit(
    archive: Archive,
    *,
    data: bytes,
    filename: str | None,
    kind: str = DocumentKind.supplier_invoice.value,
    company_ref: str | None = None,
    actor: str,
    source: str = "upload",
) -> DepositOutcome:
    """A PDF taken as it is: the original untouched, plus a PAdES-sealed copy."""
    kind = DocumentKind(kind).value

    def admit(received: bytes) -> Submission:
        check_pdf(received)
        return Submission(kind=kind, pades_copy=True)

    return receive(
        archive,
        data=data,
        filename=filename,
        company_ref=company_ref,
        actor=actor,
        source=source,
        admit=admit,
    )


def receive(
    archive: Archive,
    *,
    data: bytes,
    filename: str | None,
    company_ref: str | None,
    actor: str,
    source: str,
    admit: Admit,
    sha256: str | None = None,
) -> DepositOutcome:
    """Archive ``data`` as ``admit`` describes it; quarantine it when ``admit`` refuses.

    ``sha256`` is the hex SHA-256 of ``data`` when the caller has just computed it from
    these very bytes (a 10 MB scan costs 5 ms a pass).
    """
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    with session_scope(archive.engine, read_only=True) as session:
        company = resolve_company(session, company_ref)
        existing = _find(session, company.id, sha256)
    if existing is not None:
        with session_scope(archive.engine) as session:
            archive.journal.append(
                session,
                actor=actor,
                action="document.deposit_repeated",
                subject=f"document:{existing.id}",
                payload={"sha256": sha256, "filename": filename, "source": source},
            )
        return DepositOutcome(existing, created=False)
    try:
        submission = admit(data)
    except BadInput as exc:
        quarantine(
            archive,
            data=data,
            filename=filename,
            company=company,
            reason=exc,
            actor=actor,
            source=source,
        )
        raise
    prepared = _prepare(archive, company, data, sha256, submission)
    try:
        with session_scope(archive.engine) as session:
            document = _record(
                archive,
                session,
                company,
                prepared,
                submission,
                filename=filename,
                actor=actor,
                source=source,
            )
            # Asked here, where the head is at hand, rather than in a session of its own.
            due = archive.journal.anchor_due(session)
    except IntegrityError:
        # Another process archived the same bytes meanwhile: theirs is the document.
        with session_scope(archive.engine, read_only=True) as session:
            existing = _find(session, company.id, sha256)
        if existing is None:
            raise
        return DepositOutcome(existing, created=False)
    if due:
        anchor_if_due(archive)
    return DepositOutcome(document, created=True)


def _find(session: Session, company_id: uuid.UUID, sha256: str) -> Document | None:
    query = select(Document).where(
        Document.company_id == company_id, Document.original_sha256 == sha256
    )
    return session.exec(query).first()


@dataclass(frozen=True)
class _Prepared:
    """Everything produced outside the transaction for one new document."""

    sha256: str
    size: int
    #: name -> (stored object, media type, role)
    stored: dict[str, tuple[StoredObject, str, str]]
    #: content artifact name -> seal and timestamp facts for its evidence row
    evidence: dict[str, dict[str, Any]]
    #: What the document says, for the search index (None: nothing readable yet).
    text: str | None = None


def _key(company: Company, sha256: str, name: str, digest: str) -> str:
    # Content-addressed under the document's fingerprint: a retried deposit that seals
    # again (new signature bytes) writes beside the first attempt, never over it. One
    # directory per document (not per artifact): each new directory costs the local store
    # two more disk flushes. Older documents keep their "{name}/{digest}" keys (recorded
    # per artifact); that layout remains for a name too long to carry the digest.
    last = name.rpartition("/")[2]
    if len(f"{last}.{digest}".encode()) > MAX_SEGMENT_BYTES:
        return f"documents/{company.id}/{sha256}/{name}/{digest}"
    return f"documents/{company.id}/{sha256}/{name}.{digest}"


def _prepare(
    archive: Archive, company: Company, data: bytes, sha256: str, submission: Submission
) -> _Prepared:
    sealer = archive.sealer_for(company)

    async def crypto() -> tuple[Any, Any, Any]:
        sealed = await sealer.seal_pdf(data) if submission.pades_copy else None
        detached = await sealer.seal_detached(data)
        token = await archive.timestamper.stamp(bytes.fromhex(sha256))
        return sealed, detached, token

    sealed, detached, token = run_sync(crypto())
    parts: dict[str, tuple[bytes, str, str]] = {
        "original": (data, submission.media_type, "content"),
        "original.p7s": (detached.cms_der, CMS_MEDIA_TYPE, "seal"),
        "original.tsr": (token.response_der, TSR_MEDIA_TYPE, "timestamp"),
    }
    # The original's own RFC 3161 token (original.tsr) is its timestamp of record.
    evidence = {
        "original": {
            **_seal_facts(detached, "CAdES-detached"),
            "timestamp_serial": str(token.serial),
            "timestamp_time": token.gen_time,
            "tsa_cert_sha256": token.tsa_cert_sha256,
        }
    }
    if sealed is not None:
        parts["sealed"] = (sealed.data, PDF_MEDIA_TYPE, "content")
        evidence["sealed"] = _seal_facts(sealed, f"PAdES-{sealed.level}")
    for item in submission.derived:
        parts[item.name] = (item.data, item.media_type, "derived")
    stored = _store(archive, company, sha256, parts, known={"original": sha256})
    text = document_text(
        submission.derived, original=data, original_media_type=submission.media_type
    )
    return _Prepared(sha256=sha256, size=len(data), stored=stored, evidence=evidence, text=text)


def _store(
    archive: Archive,
    company: Company,
    sha256: str,
    parts: dict[str, tuple[bytes, str, str]],
    *,
    known: dict[str, str] | None = None,
) -> dict[str, tuple[StoredObject, str, str]]:
    """Store ``parts`` in one batch; ``known`` gives digests already computed, by name."""
    until = retention_until(utcnow(), company.retention_years)
    digests = known or {}
    items = [
        PutItem(
            _key(company, sha256, name, digests.get(name) or hashlib.sha256(blob).hexdigest()),
            blob,
            media,
        )
        for name, (blob, media, _) in parts.items()
    ]
    # One batch: the store flushes the document's files together and each directory once.
    objects = archive.store.put_many(items, retain_until=until)
    return {
        name: (obj, media, role)
        for (name, (_, media, role)), obj in zip(parts.items(), objects, strict=True)
    }


def _seal_facts(seal: Any, seal_format: str) -> dict[str, Any]:
    return {
        "seal_format": seal_format,
        "seal_cert_sha256": seal.cert_sha256,
        "signature_algorithm": seal.signature_algorithm,
        "timestamp_serial": str(seal.timestamp.serial),
        "timestamp_time": seal.timestamp.gen_time,
        "tsa_cert_sha256": seal.timestamp.tsa_cert_sha256,
    }


def invoice_payload(invoice: InvoiceData) -> dict[str, Any]:
    """The invoice data as stored and hashed (JSON-native, Decimals as strings)."""
    return to_jsonable(invoice.model_dump(mode="json"))


def _record(
    archive: Archive,
    session: Session,
    company: Company,
    prepared: _Prepared,
    submission: Submission,
    *,
    filename: str | None,
    actor: str,
    source: str,
) -> Document:
    journal = archive.journal
    document = Document(
        company_id=company.id,
        kind=submission.kind,
        source=source,
        state=DocumentState.received.value,
        original_sha256=prepared.sha256,
        original_filename=filename,
        media_type=submission.media_type,
        format=submission.format,
        profile=submission.profile,
        size=prepared.size,
        deposited_by=actor,
    )
    session.add(document)
    subject = f"document:{document.id}"

    def log(action: str, payload: dict[str, Any]) -> None:
        journal.append(session, actor=actor, action=action, subject=subject, payload=payload)

    log(
        "document.deposited",
        {
            "company_id": company.id,
            "kind": submission.kind,
            "source": source,
            "filename": filename,
            "sha256": prepared.sha256,
            "size": prepared.size,
            "media_type": submission.media_type,
            "format": submission.format,
            "profile": submission.profile,
            **submission.details,
        },
    )
    artifacts = _add_artifacts(session, document, prepared.stored, prepared.evidence, log, None)
    _add_invoice(session, document, submission.invoice, actor, log, new_document=True)
    _add_flags(session, document, submission.flags, log)
    _change_state(document, submission.state, log)
    index_document(session, document, text=prepared.text, invoice=submission.invoice)
    session.flush()
    assert "original" in artifacts
    return document


Log = Callable[[str, dict[str, Any]], None]


def _add_artifacts(
    session: Session,
    document: Document,
    stored: dict[str, tuple[StoredObject, str, str]],
    evidence: dict[str, dict[str, Any]],
    log: Log,
    original: Artifact | None,
) -> dict[str, Artifact]:
    """Artifact and evidence rows for stored objects, each journaled.

    Derived files and detached seals point at the original (``original``, or the one among
    ``stored``).
    """
    artifacts: dict[str, Artifact] = {}
    for name, (obj, media, role) in stored.items():
        of = original or artifacts.get("original")
        artifact = Artifact.stored(
            document.id,
            name,
            role,
            media,
            obj,
            None if role == "content" or of is None else of.id,
        )
        session.add(artifact)
        artifacts[name] = artifact

    for name, facts in evidence.items():
        artifact = artifacts[name]
        detached = name == "original"
        session.add(
            Evidence(
                artifact_id=artifact.id,
                sha256=artifact.sha256,
                storage_key=artifact.storage_key,
                storage_version=artifact.storage_version,
                retain_until=artifact.retain_until,
                signature_artifact_id=artifacts["original.p7s"].id if detached else None,
                timestamp_artifact_id=artifacts["original.tsr"].id if detached else None,
                **facts,
            )
        )
        log(
            "artifact.sealed",
            {
                "artifact": name,
                "sha256": artifact.sha256,
                "seal_format": facts["seal_format"],
                "seal_cert_sha256": facts["seal_cert_sha256"],
                "signature_algorithm": facts["signature_algorithm"],
            },
        )
        log(
            "artifact.timestamped",
            {
                "artifact": name,
                "timestamp_serial": facts["timestamp_serial"],
                "timestamp_time": facts["timestamp_time"],
                "tsa_cert_sha256": facts["tsa_cert_sha256"],
            },
        )
    for artifact in artifacts.values():
        log("artifact.stored", artifact_store_facts(artifact))
    return artifacts


def _add_invoice(
    session: Session,
    document: Document,
    invoice: InvoiceData | None,
    actor: str,
    log: Log,
    *,
    new_document: bool = False,
) -> None:
    if invoice is None:
        return
    versions = (
        []
        if new_document  # created in this transaction: no invoice data yet
        else session.exec(
            select(InvoiceRecord.version).where(InvoiceRecord.document_id == document.id)
        ).all()
    )
    version = max(versions, default=0) + 1
    data = invoice_payload(invoice)
    record = InvoiceRecord(
        document_id=document.id,
        version=version,
        source=_invoice_source(invoice),
        data=data,
        data_digest=canonical_digest(data),
        seller_siren=invoice.seller_siren,
        invoice_number=invoice.invoice_number,
        created_by=actor,
    )
    session.add(record)
    log(
        "invoice.recorded",
        {"version": version, "source": record.source, "data_digest": record.data_digest},
    )


def _add_flags(session: Session, document: Document, flags: tuple[Flag, ...], log: Log) -> None:
    for flag in flags:
        session.add(DocumentFlag(document_id=document.id, code=flag.code, message=flag.message))
        log("document.flagged", {"code": flag.code, "message": flag.message})


def _change_state(document: Document, state: str, log: Log) -> None:
    state = DocumentState(state).value
    if state == document.state:
        return
    log("document.state_changed", {"from": document.state, "to": state})
    document.state = state


# -- processing after intake ----------------------------------------------------------------
def complete(
    archive: Archive,
    document_id: uuid.UUID,
    completion: Completion,
    *,
    actor: str,
    expect_state: str = DocumentState.received.value,
) -> Document | None:
    """Add what processing made to a received document and move it on, exactly once.

    Sealing and storing happen first (content-addressed keys: a rerun after a crash writes
    beside, never over); the rows, journal events and state change are one transaction that
    only applies while the document is still in ``expect_state``. Returns ``None`` when
    another worker got there first.
    """
    with session_scope(archive.engine, read_only=True) as session:
        document = session.get(Document, document_id)
        if document is None or document.state != expect_state:
            return None
        company = session.get(Company, document.company_id)
        assert company is not None
    parts: dict[str, tuple[bytes, str, str]] = {}
    evidence: dict[str, dict[str, Any]] = {}
    if completion.archival_pdf is not None:
        sealed = run_sync(archive.sealer_for(company).seal_pdf(completion.archival_pdf))
        parts[completion.archival_name] = (sealed.data, PDF_MEDIA_TYPE, "content")
        evidence[completion.archival_name] = _seal_facts(sealed, f"PAdES-{sealed.level}")
    for item in completion.derived:
        parts[item.name] = (item.data, item.media_type, "derived")
    stored = _store(archive, company, document.original_sha256, parts)

    with session_scope(archive.engine) as session:
        current = session.exec(
            select(Document).where(Document.id == document_id).with_for_update()
        ).one()
        if current.state != expect_state:
            return None
        original = session.exec(
            select(Artifact).where(Artifact.document_id == document_id, Artifact.name == "original")
        ).one()
        subject = f"document:{current.id}"

        def log(action: str, payload: dict[str, Any]) -> None:
            archive.journal.append(
                session, actor=actor, action=action, subject=subject, payload=payload
            )

        for action, payload in completion.events:
            log(action, payload)
        _add_artifacts(session, current, stored, evidence, log, original)
        _add_invoice(session, current, completion.invoice, actor, log)
        _add_flags(session, current, completion.flags, log)
        _change_state(current, completion.state, log)
        index_document(
            session,
            current,
            text=document_text(completion.derived),
            invoice=completion.invoice or Latest.RECORDED,
        )
        session.flush()
        due = archive.journal.anchor_due(session)
        session.expunge(current)
    if due:
        anchor_if_due(archive)
    return current


def fail(
    archive: Archive,
    document_id: uuid.UUID,
    flag: Flag,
    *,
    actor: str,
    expect_state: str = DocumentState.received.value,
    state: str = DocumentState.failed.value,
) -> bool:
    """Processing gave up on a received document: flag it with the reason and move it to
    ``failed``. The original stays archived with its seal; nothing is dropped."""
    with session_scope(archive.engine) as session:
        current = session.exec(
            select(Document).where(Document.id == document_id).with_for_update()
        ).one_or_none()
        if current is None or current.state != expect_state:
            return False
        subject = f"document:{current.id}"

        def log(action: str, payload: dict[str, Any]) -> None:
            archive.journal.append(
                session, actor=actor, action=action, subject=subject, payload=payload
            )

        _add_flags(session, current, (flag,), log)
        _change_state(current, state, log)
        index_document(session, current)
    return True


def _invoice_source(invoice: InvoiceData) -> str:
    sources = {p.source.value for p in invoice.provenance.values()}
    return sources.pop() if len(sources) == 1 else "mixed" if sources else "xml"
