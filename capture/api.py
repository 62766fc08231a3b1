"""Capture's HTTP API: files from scanning stations (``/captures``), e-invoices pushed by an
approved platform (PA), and the lifecycle statuses it sends later. Mounted by the
composition root."""

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Response, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from archive import Archive, Role, describe
from archive.api import Caller, read_upload
from archive.service import get_document, resolve_company
from capture.einvoice.service import receive_einvoice, record_lifecycle_status
from capture.einvoice.validate import Validator
from capture.pipeline import Pipeline
from storage import session_scope
from storage.types import utcnow


class StatusIn(BaseModel):
    code: int = Field(ge=200, le=228, description="CDAR lifecycle status (200 Déposée ...)")
    status_at: datetime | None = None
    reason: str | None = None
    platform_message_id: str | None = None


def make_router(
    archive: Archive,
    validator: Callable[[], Validator],
    pipeline: Pipeline | None = None,
    enqueue: Callable[[str], None] | None = None,
) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    if pipeline is not None and enqueue is not None:
        _capture_routes(router, archive, pipeline, enqueue)

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
        with session_scope(archive.engine, read_only=True) as session:
            caller.require_company(get_document(session, document_id).company_id)
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


def _capture_routes(
    router: APIRouter, archive: Archive, pipeline: Pipeline, enqueue: Callable[[str], None]
) -> None:
    @router.post("/captures", status_code=status.HTTP_202_ACCEPTED)
    def post_capture(
        caller: Caller,
        file: Annotated[UploadFile, File(description="scan (TIFF, PNG, JPEG, PDF) or e-invoice")],
        company: Annotated[str | None, Form(description="company id or SIREN")] = None,
        kind: Annotated[str | None, Form(description="supplier_invoice, credit_note...")] = None,
        station: Annotated[str | None, Form(description="scanning station name")] = None,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        """Take a file in. 202 while it is processed, 200 when already known or archived at
        once (e-invoices), 422 when refused (the file is kept in quarantine)."""
        caller.require(Role.station)
        if company is None and caller.company_id is not None:
            company = str(caller.company_id)
        with session_scope(archive.engine, read_only=True) as session:
            caller.require_company(resolve_company(session, company).id)
        data = read_upload(archive, file)
        result = pipeline.intake(
            data,
            filename=file.filename,
            actor=caller.actor,
            source="capture-upload",
            company_ref=company,
            kind=kind,
            station=station,
            idempotency_key=idempotency_key,
        )
        if result.needs_processing:
            enqueue(str(result.document_id))
        body = pipeline.status(result.capture.id)
        body["created"] = result.created
        code = (
            status.HTTP_422_UNPROCESSABLE_CONTENT
            if result.status == "quarantined"
            else status.HTTP_202_ACCEPTED
            if result.status == "processing"
            else status.HTTP_200_OK
        )
        headers = {"Location": f"/api/v1/captures/{result.capture.id}"}
        if code == status.HTTP_422_UNPROCESSABLE_CONTENT:
            problem = {
                "type": f"urn:coffre:problem:{result.reason_code}",
                "title": result.reason,
                "status": code,
                "code": result.reason_code,
                "capture": body,
            }
            return JSONResponse(
                problem, status_code=code, headers=headers, media_type="application/problem+json"
            )
        return JSONResponse(body, status_code=code, headers=headers)

    @router.get("/captures/{capture_id}")
    def get_capture(caller: Caller, capture_id: str) -> dict[str, Any]:
        caller.require(Role.station, Role.accountant)
        body = pipeline.status(capture_id)
        caller.require_company(uuid.UUID(body["company_id"]))
        return body
