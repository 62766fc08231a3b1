"""Tables of the archive room: companies, documents, artifacts, evidence, quarantine, the
journal and its anchors, API tokens.

Artifacts, evidence and journal rows are append-only (database triggers refuse UPDATE and
DELETE; verification detects what a trigger cannot prevent). Only a document's ``state``
moves, and every move is journaled.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Numeric, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.objects import StoredObject
from storage.types import UTCDateTime, utcnow


class Role(StrEnum):
    admin = "admin"
    station = "station"
    approver = "approver"
    accountant = "accountant"
    auditor = "auditor"


class DocumentKind(StrEnum):
    supplier_invoice = "supplier_invoice"
    customer_invoice = "customer_invoice"
    credit_note = "credit_note"
    other = "other"


class DocumentState(StrEnum):
    received = "received"
    converted = "converted"
    extracted = "extracted"
    archived = "archived"
    in_review = "in_review"
    approved = "approved"
    rejected = "rejected"
    booked = "booked"
    paid = "paid"
    quarantined = "quarantined"
    failed = "failed"


class Company(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str
    siren: str | None = Field(default=None, unique=True, index=True, max_length=9)
    retention_years: int = 10
    #: PKCS#12 file of the company's own seal; None means the organisation's default seal.
    seal_pkcs12_path: str | None = None
    seal_password_file: str | None = None
    is_default: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Document(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("company_id", "original_sha256"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    kind: str = DocumentKind.other.value
    source: str = "upload"
    state: str = DocumentState.received.value
    original_sha256: str = Field(max_length=64, index=True)
    original_filename: str | None = None
    media_type: str = "application/pdf"
    #: What the bytes are: "pdf", "facturx-pdf", "cii", "ubl-invoice", "ubl-creditnote"...
    format: str = "pdf"
    #: E-invoice profile (MINIMUM ... EXTENDED-CTC-FR) when there is one.
    profile: str | None = None
    size: int = 0
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    deposited_by: str = "system"


class Artifact(SQLModel, table=True):
    """An immutable stored object of a document."""

    __table_args__ = (UniqueConstraint("document_id", "name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    document_id: uuid.UUID = Field(foreign_key="document.id", index=True)
    #: "original", "sealed", "original.p7s", "original.tsr", ...
    name: str
    #: "content" for what the company archives, "seal" / "timestamp" for evidence beside it.
    role: str = "content"
    of_artifact_id: uuid.UUID | None = Field(default=None, foreign_key="artifact.id")
    sha256: str = Field(max_length=64, index=True)
    size: int
    media_type: str
    backend: str
    storage_key: str
    storage_version: str
    retain_until: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @classmethod
    def stored(
        cls,
        document_id: uuid.UUID,
        name: str,
        role: str,
        media_type: str,
        obj: StoredObject,
        of_artifact_id: uuid.UUID | None = None,
    ) -> Artifact:
        """The row for an object just written to the store."""
        return cls(
            document_id=document_id,
            name=name,
            role=role,
            of_artifact_id=of_artifact_id,
            sha256=obj.sha256,
            size=obj.size,
            media_type=media_type,
            backend=obj.backend,
            storage_key=obj.key,
            storage_version=obj.version_id,
            retain_until=obj.retain_until,
        )


class Evidence(SQLModel, table=True):
    """What proves one content artifact: fingerprint, seal, timestamp, where it is kept."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    artifact_id: uuid.UUID = Field(foreign_key="artifact.id", unique=True)
    sha256: str = Field(max_length=64)
    seal_format: str  # "PAdES-B-LT" (embedded) or "CAdES-detached"
    seal_cert_sha256: str = Field(max_length=64)
    signature_algorithm: str
    timestamp_serial: str
    timestamp_time: datetime = Field(sa_type=UTCDateTime)
    tsa_cert_sha256: str = Field(max_length=64)
    signature_artifact_id: uuid.UUID | None = Field(default=None, foreign_key="artifact.id")
    timestamp_artifact_id: uuid.UUID | None = Field(default=None, foreign_key="artifact.id")
    storage_key: str
    storage_version: str
    retain_until: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Quarantine(SQLModel, table=True):
    """Bytes that could not be archived, kept with the reason."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    company_id: uuid.UUID | None = Field(default=None, foreign_key="company.id")
    filename: str | None = None
    sha256: str = Field(max_length=64, index=True)
    size: int
    reason_code: str
    reason: str
    backend: str
    storage_key: str
    storage_version: str
    source: str = "upload"
    actor: str = "system"
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class VerificationRun(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    document_id: uuid.UUID | None = Field(default=None, foreign_key="document.id", index=True)
    verified_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ok: bool
    report: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class JournalEvent(SQLModel, table=True):
    """One row of the hash-chained audit trail (piste d'audit fiable)."""

    __tablename__ = "journal_event"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    actor: str
    action: str = Field(index=True)
    subject: str = Field(index=True)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    payload_digest: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
    hash_alg: str = "sha256"


class JournalAnchor(SQLModel, table=True):
    """An RFC 3161 token over the journal head; each anchor chains to the previous one."""

    __tablename__ = "journal_anchor"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    head_seq: int
    head_hash: str = Field(max_length=64)
    prev_anchor_hash: str = Field(max_length=64)
    anchor_hash: str = Field(max_length=64, unique=True)
    hash_alg: str = "sha256"
    tst: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    tst_serial: str
    tst_time: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str
    role: str
    token_hash: str = Field(max_length=64, unique=True)
    company_id: uuid.UUID | None = Field(default=None, foreign_key="company.id")
    fiscal_years: list[int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_by: str = "system"


class InvoiceRecord(SQLModel, table=True):
    """One version of a document's invoice data (EN 16931 vocabulary, see archive.invoice).

    Corrections are new versions, never overwrites.
    """

    __tablename__ = "invoice_data"
    __table_args__ = (UniqueConstraint("document_id", "version"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    document_id: uuid.UUID = Field(foreign_key="document.id", index=True)
    version: int = 1
    source: str  # "xml", "ocr", "human"
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    data_digest: str = Field(max_length=64)
    seller_siren: str | None = Field(default=None, index=True, max_length=9)
    invoice_number: str | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = "system"


class DocumentFlag(SQLModel, table=True):
    """Something a person must look at (invalid e-invoice, suspected duplicate...)."""

    __tablename__ = "document_flag"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    document_id: uuid.UUID = Field(foreign_key="document.id", index=True)
    code: str
    message: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LifecycleStatus(SQLModel, table=True):
    """A lifecycle status of an e-invoice received from its platform (CDAR codes 200-228)."""

    __tablename__ = "lifecycle_status"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    document_id: uuid.UUID = Field(foreign_key="document.id", index=True)
    code: int
    label: str
    status_at: datetime = Field(sa_type=UTCDateTime)
    reason: str | None = None
    platform_message_id: str | None = None
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    recorded_by: str = "system"


class SearchEntry(SQLModel, table=True):
    """One document as auditors search it (see archive.search).

    A derived, mutable, rebuildable table, not evidence: ``archive.search`` rewrites a row
    whenever its document is archived or its invoice data or state changes, and
    ``archive.search.reindex`` rebuilds every row from the registry and the stored text.
    The text is in :class:`SearchText`, so that the rows filtered, counted and sorted stay
    narrow (a few hundred bytes instead of a few kilobytes).
    """

    __tablename__ = "search_index"
    __table_args__ = (
        Index("ix_search_index_company_issue_date", "company_id", "issue_date"),
        Index("ix_search_index_company_received_at", "company_id", "received_at"),
        Index("ix_search_index_company_total_ttc", "company_id", "total_ttc"),
        Index(
            "ix_search_index_supplier_key",
            "supplier_key",
            postgresql_ops={"supplier_key": "text_pattern_ops"},
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    document_id: uuid.UUID = Field(foreign_key="document.id", unique=True)
    #: Indexed by the composite indexes above, each led by the company.
    company_id: uuid.UUID = Field(foreign_key="company.id")
    kind: str
    state: str = Field(index=True)
    supplier_name: str | None = None
    #: ``supplier_name`` folded (lower case, no accents, words joined by one space).
    supplier_key: str | None = None
    siren: str | None = Field(default=None, index=True, max_length=9)
    vat: str | None = Field(default=None, index=True)
    invoice_number: str | None = Field(default=None, index=True)
    issue_date: date | None = None
    #: Calendar year of ``issue_date``, else of ``received_at`` (UTC): what a token's
    #: ``fiscal_years`` limit.
    fiscal_year: int = Field(index=True)
    total_ttc: Decimal | None = Field(default=None, sa_column=Column(Numeric(18, 2)))
    currency: str | None = None
    received_at: datetime = Field(sa_type=UTCDateTime)
    indexed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SearchText(SQLModel, table=True):
    """The words of one :class:`SearchEntry`, derived and rebuildable like it.

    The full-text index over ``terms`` is dialect-specific DDL of migration 0004: an FTS5
    table whose rowid is ``entry_id``, kept in step by triggers, on SQLite; a stored
    tsvector column with a GIN index on PostgreSQL.
    """

    __tablename__ = "search_text"

    #: An INTEGER PRIMARY KEY: the stable rowid SQLite's FTS5 table points at.
    entry_id: int = Field(
        primary_key=True, foreign_key="search_index.id", sa_column_kwargs={"autoincrement": False}
    )
    #: The document's text as read (OCR text, e-invoice XML text), for snippets.
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    #: Folded words of the invoice fields and ``text``: what the full-text index covers.
    terms: str = Field(default="", sa_column=Column(Text, nullable=False))
