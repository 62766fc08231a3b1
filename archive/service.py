"""Use cases of the archive: deposit, show, read an artifact, quarantine, companies.

Each use case owns its transaction. Slow work (sealing, timestamping, storing) happens
before the transaction opens, so the journal's write lock is held only for the inserts.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

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
    DocumentFlag,
    Evidence,
    InvoiceRecord,
    JournalEvent,
    LifecycleStatus,
    Quarantine,
)
from storage import session_scope
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


# -- deposit helpers ------------------------------------------------------------------------
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


def fiscal_year(session: Session, document: Document) -> int:
    """The fiscal year a document belongs to: the calendar year of its invoice's issue date
    (latest invoice data version), else of its receipt."""
    issue = session.exec(
        select(InvoiceRecord.data)
        .where(InvoiceRecord.document_id == document.id)
        .order_by(col(InvoiceRecord.version).desc())
        .limit(1)
    ).first()
    if issue and issue.get("issue_date"):
        return int(str(issue["issue_date"])[:4])
    return document.received_at.year


def artifacts_of(session: Session, document_id: uuid.UUID) -> list[Artifact]:
    query = select(Artifact).where(Artifact.document_id == document_id)
    return list(session.exec(query.order_by(col(Artifact.created_at), col(Artifact.name))))


def evidence_of(session: Session, artifact_ids: list[uuid.UUID]) -> dict[uuid.UUID, Evidence]:
    rows = session.exec(select(Evidence).where(col(Evidence.artifact_id).in_(artifact_ids)))
    return {row.artifact_id: row for row in rows}


def describe(session: Session, document_id: uuid.UUID | str) -> dict[str, Any]:
    """The document with its artifacts, evidence, invoice data, flags, lifecycle statuses
    and journal events, JSON-ready."""
    from archive.journal import Journal

    document = get_document(session, document_id)
    artifacts = artifacts_of(session, document.id)
    evidence = evidence_of(session, [a.id for a in artifacts])

    def rows(model: Any, order: Any) -> list[dict[str, Any]]:
        query = select(model).where(model.document_id == document.id).order_by(order)
        return [row.model_dump(mode="json") for row in session.exec(query)]

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
        "invoice": rows(InvoiceRecord, col(InvoiceRecord.version)),
        "flags": rows(DocumentFlag, col(DocumentFlag.created_at)),
        "lifecycle": rows(LifecycleStatus, col(LifecycleStatus.recorded_at)),
        "journal": [
            e.model_dump(mode="json")
            for e in Journal.events_for(session, f"document:{document.id}")
        ],
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
