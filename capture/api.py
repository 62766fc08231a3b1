"""Capture's HTTP API: e-invoices pushed by an approved platform (PA), and the lifecycle
statuses it sends later. Mounted by the composition root."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile, status
from pydantic import BaseModel, Field

from archive import Archive, Role, describe
from archive.api import Caller, read_upload
from capture.einvoice.service import receive_einvoice, record_lifecycle_status
from capture.einvoice.validate import Validator
from storage import session_scope
from storage.types import utcnow


class StatusIn(BaseModel):
    code: int = Field(ge=200, le=228, description="CDAR lifecycle status (200 Déposée ...)")
    status_at: datetime | None = None
    reason: str | None = None
    platform_message_id: str | None = None


def make_router(archive: Archive, validator: Callable[[], Validator]) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.post("/einvoices", status_code=status.HTTP_201_CREATED)
    def post_einvoice(
        caller: Caller,
        response: Response,
        file: Annotated[UploadFile, File(description="Factur-X PDF, CII or UBL, as received")],
        company: Annotated[str | None, Form(description="company id or SIREN")] = None,
    ) -> dict[str, Any]:
        caller.require(Role.station)
        data = read_upload(archive, file)
        outcome = receive_einvoice(
            archive,
            validator,
            data=data,
            filename=file.filename,
            company_ref=company,
            actor=caller.actor,
            source="einvoice-platform",
        )
        if not outcome.created:
            response.status_code = status.HTTP_200_OK
        with session_scope(archive.engine, read_only=True) as session:
            body = describe(session, outcome.document.id)
        return {"created": outcome.created, **body}

    @router.post("/einvoices/{document_id}/status", status_code=status.HTTP_201_CREATED)
    def post_status(caller: Caller, document_id: str, body: StatusIn) -> dict[str, Any]:
        caller.require(Role.station)
        row = record_lifecycle_status(
            archive,
            document_id=document_id,
            code=body.code,
            status_at=body.status_at or utcnow(),
            reason=body.reason,
            platform_message_id=body.platform_message_id,
            actor=caller.actor,
        )
        return row.model_dump(mode="json")

    return router
