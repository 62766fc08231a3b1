"""Tables of the capture room: intake tickets, the work items the workers claim, worker
heartbeats and the supplier directory.

The document's ``state`` (archive) is the truth about where a capture stands; these tables
only say who submitted what (``capture``), who is working on it right now (``work_item``,
a lease that a killed worker leaves to expire) and which workers are alive.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class Capture(SQLModel, table=True):
    """One file received through the capture intake (upload, hot folder, CLI).

    Either ``document_id`` (admitted: the original is archived and its processing is the
    document's state) or ``quarantine_id`` (refused at intake, with the reason) is set.
    """

    __table_args__ = (UniqueConstraint("actor", "idempotency_key"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    actor: str
    station: str | None = None
    source: str
    idempotency_key: str | None = None
    filename: str | None = None
    sha256: str = Field(max_length=64, index=True)
    size: int
    document_id: uuid.UUID | None = Field(default=None, foreign_key="document.id", index=True)
    quarantine_id: uuid.UUID | None = Field(default=None, foreign_key="quarantine.id")
    reason_code: str | None = None
    reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WorkItem(SQLModel, table=True):
    """Processing of one received document: claimed with a lease, retried when it lapses."""

    __tablename__ = "work_item"

    document_id: uuid.UUID = Field(foreign_key="document.id", primary_key=True)
    attempts: int = 0
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    leased_by: str | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WorkerHeartbeat(SQLModel, table=True):
    __tablename__ = "worker_heartbeat"

    name: str = Field(primary_key=True)
    host: str
    pid: int
    concurrency: int
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Supplier(SQLModel, table=True):
    """A known supplier of one company: confirms or fills what OCR read."""

    __table_args__ = (UniqueConstraint("company_id", "siren"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    siren: str | None = Field(default=None, max_length=9, index=True)
    vat: str | None = Field(default=None, index=True)
    name: str
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    ibans: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
