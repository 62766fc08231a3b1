"""Use cases of the archive: deposit, show, read an artifact, quarantine, companies.

Each use case owns its transaction. Slow work (sealing, timestamping, storing) happens
before the transaction opens, so the journal's write lock is held only for the inserts.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from archive._aio import run_sync
from archive.context import Archive, retention_until
from archive.errors import (
    ArtifactNotFound,
    BadInput,
    DocumentNotFound,
    UnknownCompany,
)
from archive.models import (
    Artifact,
    Company,
    Document,
    DocumentKind,
    DocumentState,
    Evidence,
    JournalEvent,
    Quarantine,
)
from archive.pdf_input import PDF_MEDIA_TYPE, check_pdf
from storage import ObjectStore, StoredObject, session_scope
from storage.types import utcnow

CMS_MEDIA_TYPE = "application/pkcs7-signature"
TSR_MEDIA_TYPE = "application/timestamp-reply"


# -- companies ------------------------------------------------------------------------------
def ensure_default_company(session: Session, *, name: str, siren: str | None = None) -> Company:
    company = session.exec(select(Company).where(col(Company.is_default))).first()
    if company is None:
        company = Company(name=name, siren=siren, is_default=True)
        session.add(company)
        session.flush()
    return company


def create_company(
    session: Session, *, name: str, siren: str | None, retention_years: int = 10
) -> Company:
    if siren is not None:
        from stdnum.fr import siren as siren_check

        siren = siren_check.validate(siren)
    company = Company(name=name, siren=siren, retention_years=retention_years)
    session.add(company)
    session.flush()
    return company


def resolve_company(session: Session, ref: str | None) -> Company:
    """A company by id or SIREN; the default company when ``ref`` is None."""
    if ref is None:
        company = session.exec(select(Company).where(col(Company.is_default))).first()
    else:
        try:
            company = session.get(Company, uuid.UUID(ref))
        except ValueError:
            company = session.exec(select(Company).where(Company.siren == ref)).first()
    if company is None:
        raise UnknownCompany(f"no company {ref!r}" if ref else "no default company", ref=ref)
    return company


# -- deposit --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DepositOutcome:
    document: Document
    created: bool


@dataclass(frozen=True)
class _Prepared:
    """Everything produced outside the transaction for one new document."""

    sha256: str
    size: int
    stored: dict[str, tuple[StoredObject, str]]  # name -> (object, media type)
    seal_info: dict[str, Any]  # sealed-PDF seal facts
    detached_info: dict[str, Any]  # original's detached seal facts
    original_tst: Any  # TimestampToken over the original


def _key(company: Company, sha256: str, name: str, digest: str) -> str:
    # Content-addressed under the document's fingerprint: a retried deposit that seals
    # again (new signature bytes) writes beside the first attempt, never over it.
    return f"documents/{company.id}/{sha256}/{name}/{digest}"


def _put(store: ObjectStore, key: str, data: bytes, until: datetime, media: str) -> StoredObject:
    return store.put(key, data, retain_until=until, content_type=media)


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
    """Fingerprint → seal → timestamp → store → journal a PDF taken as it is.

    Idempotent on the SHA-256 within a company. Bad input is quarantined and re-raised.
    """
    kind = DocumentKind(kind).value
    sha256 = hashlib.sha256(data).hexdigest()
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
        check_pdf(data)
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
    prepared = _prepare(archive, company, data, sha256)
    try:
        with session_scope(archive.engine) as session:
            document = _record(
                archive,
                session,
                company,
                prepared,
                filename=filename,
                kind=kind,
                actor=actor,
                source=source,
            )
    except IntegrityError:
        # Another process archived the same bytes meanwhile: theirs is the document.
        with session_scope(archive.engine) as session:
            existing = _find(session, company.id, sha256)
        if existing is None:
            raise
        return DepositOutcome(existing, created=False)
    anchor_if_due(archive)
    return DepositOutcome(document, created=True)


def _find(session: Session, company_id: uuid.UUID, sha256: str) -> Document | None:
    query = select(Document).where(
        Document.company_id == company_id, Document.original_sha256 == sha256
    )
    return session.exec(query).first()


def _prepare(archive: Archive, company: Company, data: bytes, sha256: str) -> _Prepared:
    sealer = archive.sealer_for(company)

    async def crypto() -> tuple[Any, Any, Any]:
        sealed = await sealer.seal_pdf(data)
        detached = await sealer.seal_detached(data)
        token = await archive.timestamper.stamp(bytes.fromhex(sha256))
        return sealed, detached, token

    sealed, detached, token = run_sync(crypto())
    until = retention_until(utcnow(), company.retention_years)
    parts = {
        "original": (data, PDF_MEDIA_TYPE),
        "original.p7s": (detached.cms_der, CMS_MEDIA_TYPE),
        "original.tsr": (token.response_der, TSR_MEDIA_TYPE),
        "sealed": (sealed.data, PDF_MEDIA_TYPE),
    }
    stored: dict[str, tuple[StoredObject, str]] = {}
    for name, (blob, media) in parts.items():
        key = _key(company, sha256, name, hashlib.sha256(blob).hexdigest())
        stored[name] = (_put(archive.store, key, blob, until, media), media)
    return _Prepared(
        sha256=sha256,
        size=len(data),
        stored=stored,
        seal_info=_seal_facts(sealed, f"PAdES-{sealed.level}"),
        detached_info=_seal_facts(detached, "CAdES-detached"),
        original_tst=token,
    )


def _seal_facts(seal: Any, seal_format: str) -> dict[str, Any]:
    return {
        "seal_format": seal_format,
        "seal_cert_sha256": seal.cert_sha256,
        "signature_algorithm": seal.signature_algorithm,
        "timestamp_serial": str(seal.timestamp.serial),
        "timestamp_time": seal.timestamp.gen_time,
        "tsa_cert_sha256": seal.timestamp.tsa_cert_sha256,
    }


def _record(
    archive: Archive,
    session: Session,
    company: Company,
    prepared: _Prepared,
    *,
    filename: str | None,
    kind: str,
    actor: str,
    source: str,
) -> Document:
    journal = archive.journal
    document = Document(
        company_id=company.id,
        kind=kind,
        source=source,
        state=DocumentState.received.value,
        original_sha256=prepared.sha256,
        original_filename=filename,
        media_type=PDF_MEDIA_TYPE,
        size=prepared.size,
        deposited_by=actor,
    )
    session.add(document)
    subject = f"document:{document.id}"
    journal.append(
        session,
        actor=actor,
        action="document.deposited",
        subject=subject,
        payload={
            "company_id": company.id,
            "kind": kind,
            "source": source,
            "filename": filename,
            "sha256": prepared.sha256,
            "size": prepared.size,
        },
    )
    artifacts: dict[str, Artifact] = {}
    for name, (obj, media) in prepared.stored.items():
        role = {"original.p7s": "seal", "original.tsr": "timestamp"}.get(name, "content")
        artifact = Artifact(
            document_id=document.id,
            name=name,
            role=role,
            sha256=obj.sha256,
            size=obj.size,
            media_type=media,
            backend=obj.backend,
            storage_key=obj.key,
            storage_version=obj.version_id,
            retain_until=obj.retain_until,
            of_artifact_id=None,
        )
        if role != "content":
            artifact.of_artifact_id = artifacts["original"].id
        session.add(artifact)
        artifacts[name] = artifact

    tst = prepared.original_tst
    original_facts = dict(prepared.detached_info)
    # The original's own RFC 3161 token (original.tsr) is its timestamp of record.
    original_facts.update(
        timestamp_serial=str(tst.serial),
        timestamp_time=tst.gen_time,
        tsa_cert_sha256=tst.tsa_cert_sha256,
    )
    evidence_facts = {"original": original_facts, "sealed": prepared.seal_info}
    for name, facts in evidence_facts.items():
        artifact = artifacts[name]
        evidence = Evidence(
            artifact_id=artifact.id,
            sha256=artifact.sha256,
            storage_key=artifact.storage_key,
            storage_version=artifact.storage_version,
            retain_until=artifact.retain_until,
            signature_artifact_id=artifacts["original.p7s"].id if name == "original" else None,
            timestamp_artifact_id=artifacts["original.tsr"].id if name == "original" else None,
            **facts,
        )
        session.add(evidence)
        journal.append(
            session,
            actor=actor,
            action="artifact.sealed",
            subject=subject,
            payload={
                "artifact": name,
                "sha256": artifact.sha256,
                "seal_format": facts["seal_format"],
                "seal_cert_sha256": facts["seal_cert_sha256"],
                "signature_algorithm": facts["signature_algorithm"],
            },
        )
        journal.append(
            session,
            actor=actor,
            action="artifact.timestamped",
            subject=subject,
            payload={
                "artifact": name,
                "timestamp_serial": facts["timestamp_serial"],
                "timestamp_time": facts["timestamp_time"],
                "tsa_cert_sha256": facts["tsa_cert_sha256"],
            },
        )
    for artifact in artifacts.values():
        journal.append(
            session,
            actor=actor,
            action="artifact.stored",
            subject=subject,
            payload=artifact_store_facts(artifact),
        )
    document.state = DocumentState.archived.value
    journal.append(
        session,
        actor=actor,
        action="document.state_changed",
        subject=subject,
        payload={"from": DocumentState.received.value, "to": DocumentState.archived.value},
    )
    session.flush()
    return document


def artifact_store_facts(artifact: Artifact) -> dict[str, Any]:
    """What the journal records of a stored artifact (and what verification compares)."""
    return {
        "artifact": artifact.name,
        "role": artifact.role,
        "sha256": artifact.sha256,
        "size": artifact.size,
        "backend": artifact.backend,
        "storage_key": artifact.storage_key,
        "storage_version": artifact.storage_version,
        "retain_until": artifact.retain_until,
    }


def anchor_if_due(archive: Archive, *, force: bool = False) -> Any:
    """Put the journal head under a timestamp when N events or a day have passed."""
    if not force:
        with session_scope(archive.engine, read_only=True) as session:
            if not archive.journal.anchor_due(session):
                return None
    with session_scope(archive.engine) as session:
        if not force and not archive.journal.anchor_due(session):
            return None
        return archive.journal.anchor(
            session, lambda digest: run_sync(archive.timestamper.stamp(digest))
        )


# -- quarantine -----------------------------------------------------------------------------
def quarantine(
    archive: Archive,
    *,
    data: bytes,
    filename: str | None,
    company: Company | None,
    reason: BadInput,
    actor: str,
    source: str,
) -> Quarantine:
    """Keep refused bytes, write-once, with why they were refused; never lose them."""
    sha256 = hashlib.sha256(data).hexdigest()
    years = company.retention_years if company else archive.default_retention_years
    obj = archive.store.put(
        f"quarantine/{sha256}", data, retain_until=retention_until(utcnow(), years)
    )
    with session_scope(archive.engine) as session:
        row = Quarantine(
            company_id=company.id if company else None,
            filename=filename,
            sha256=sha256,
            size=len(data),
            reason_code=reason.code,
            reason=reason.message,
            backend=obj.backend,
            storage_key=obj.key,
            storage_version=obj.version_id,
            source=source,
            actor=actor,
        )
        session.add(row)
        session.flush()
        archive.journal.append(
            session,
            actor=actor,
            action="input.quarantined",
            subject=f"quarantine:{row.id}",
            payload={
                "sha256": sha256,
                "size": len(data),
                "filename": filename,
                "reason_code": reason.code,
                "reason": reason.message,
                "storage_key": obj.key,
                "storage_version": obj.version_id,
            },
        )
    reason.data.update(quarantine_id=str(row.id), sha256=sha256)
    return row


# -- reading --------------------------------------------------------------------------------
def get_document(session: Session, document_id: uuid.UUID | str) -> Document:
    try:
        key = document_id if isinstance(document_id, uuid.UUID) else uuid.UUID(document_id)
    except ValueError as exc:
        raise DocumentNotFound(f"no document {document_id!r}", document_id=document_id) from exc
    document = session.get(Document, key)
    if document is None:
        raise DocumentNotFound(f"no document {document_id}", document_id=str(document_id))
    return document


def artifacts_of(session: Session, document_id: uuid.UUID) -> list[Artifact]:
    query = select(Artifact).where(Artifact.document_id == document_id)
    return list(session.exec(query.order_by(col(Artifact.created_at), col(Artifact.name))))


def evidence_of(session: Session, artifact_ids: list[uuid.UUID]) -> dict[uuid.UUID, Evidence]:
    rows = session.exec(select(Evidence).where(col(Evidence.artifact_id).in_(artifact_ids)))
    return {row.artifact_id: row for row in rows}


def describe(session: Session, document_id: uuid.UUID | str) -> dict[str, Any]:
    """The document with its artifacts, evidence and journal events, JSON-ready."""
    document = get_document(session, document_id)
    artifacts = artifacts_of(session, document.id)
    evidence = evidence_of(session, [a.id for a in artifacts])
    from archive.journal import Journal

    events = Journal.events_for(session, f"document:{document.id}")
    return {
        "document": document.model_dump(mode="json"),
        "artifacts": [
            {
                **artifact.model_dump(mode="json"),
                "evidence": evidence[artifact.id].model_dump(mode="json")
                if artifact.id in evidence
                else None,
            }
            for artifact in artifacts
        ],
        "journal": [event.model_dump(mode="json") for event in events],
    }


def read_artifact(
    archive: Archive, *, document_id: uuid.UUID | str, name: str, actor: str
) -> tuple[Artifact, bytes]:
    """The stored bytes of one artifact; every read is journaled."""
    with session_scope(archive.engine) as session:
        document = get_document(session, document_id)
        artifact = session.exec(
            select(Artifact).where(Artifact.document_id == document.id, Artifact.name == name)
        ).first()
        if artifact is None:
            names = [a.name for a in artifacts_of(session, document.id)]
            raise ArtifactNotFound(
                f"document {document.id} has no artifact {name!r} (it has {', '.join(names)})",
                name=name,
                available=names,
            )
        data = archive.store.get(artifact.storage_key, artifact.storage_version)
        archive.journal.append(
            session,
            actor=actor,
            action="artifact.read",
            subject=f"document:{document.id}",
            payload={
                "artifact": name,
                "sha256": artifact.sha256,
                "read_sha256": hashlib.sha256(data).hexdigest(),
            },
        )
    return artifact, data


# -- configuration --------------------------------------------------------------------------
def record_configuration(archive: Archive, session: Session, config: dict[str, Any]) -> bool:
    """Journal the running configuration when it differs from the last one recorded.

    ``config`` must hold no secret. Returns True when a change was journaled.
    """
    from archive.canonical import canonical_digest, to_jsonable

    current = to_jsonable(config)
    last = session.exec(
        select(JournalEvent)
        .where(JournalEvent.action == "configuration.changed")
        .order_by(col(JournalEvent.seq).desc())
        .limit(1)
    ).first()
    if last is not None and canonical_digest(last.payload) == canonical_digest(current):
        return False
    archive.journal.append(
        session,
        actor="system",
        action="configuration.changed",
        subject="configuration",
        payload=current,
    )
    return True
