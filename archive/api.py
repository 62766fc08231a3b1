"""The archive's HTTP API (mounted by the composition root): documents, artifacts,
verification. Handlers are plain ``def``: they run in the threadpool, where the use cases
may block on the database, the store and the seal."""

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Header,
    Query,
    Request,
    Response,
    UploadFile,
    status,
)

from archive.access import Principal, authenticate
from archive.bundle import build_bundle, bundle_filename
from archive.context import Archive
from archive.deposit import deposit
from archive.errors import BadInput
from archive.models import DocumentKind, Role
from archive.search import SearchQuery, search
from archive.service import describe, fiscal_year, get_document, read_artifact, resolve_company
from archive.verify import verify_document, verify_journal_report
from storage import session_scope

READERS = (Role.accountant, Role.approver, Role.auditor)


def current_principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """Who is calling. The composition root puts the :class:`Archive` on ``app.state``."""
    archive: Archive = request.app.state.archive
    token = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    with session_scope(archive.engine, read_only=True) as session:
        return authenticate(session, token)


#: The caller of an endpoint, for the routers of every room.
Caller = Annotated[Principal, Depends(current_principal)]


def read_upload(archive: Archive, file: UploadFile) -> bytes:
    """The uploaded bytes, refused beyond the configured size."""
    data = file.file.read(archive.max_upload_bytes + 1)
    if len(data) > archive.max_upload_bytes:
        raise BadInput(
            f"the file is larger than the {archive.max_upload_bytes // 2**20} MiB limit",
            limit=archive.max_upload_bytes,
        )
    return data


def make_router(archive: Archive) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    def _readable(caller: Principal, document_id: str) -> uuid.UUID:
        caller.require(*READERS)
        with session_scope(archive.engine, read_only=True) as session:
            document = get_document(session, document_id)
            caller.require_company(document.company_id)
            if caller.fiscal_years is not None:
                caller.require_fiscal_year(fiscal_year(session, document))
        return document.id

    @router.post("/documents", status_code=status.HTTP_201_CREATED)
    def post_document(
        caller: Caller,
        response: Response,
        file: Annotated[UploadFile, File(description="the PDF, taken as it is")],
        kind: Annotated[DocumentKind, Form()] = DocumentKind.supplier_invoice,
        company: Annotated[str | None, Form(description="company id or SIREN")] = None,
    ) -> dict[str, Any]:
        caller.require(Role.station)
        data = read_upload(archive, file)
        if caller.company_id is not None:
            with session_scope(archive.engine, read_only=True) as session:
                caller.require_company(resolve_company(session, company).id)
        outcome = deposit(
            archive,
            data=data,
            filename=file.filename,
            kind=kind.value,
            company_ref=company,
            actor=caller.actor,
            source="api",
        )
        if not outcome.created:
            response.status_code = status.HTTP_200_OK
        with session_scope(archive.engine) as session:
            body = describe(session, outcome.document.id)
        return {"created": outcome.created, **body}

    @router.get("/documents/{document_id}")
    def get_document_view(caller: Caller, document_id: str) -> dict[str, Any]:
        key = _readable(caller, document_id)
        with session_scope(archive.engine, read_only=True) as session:
            body = describe(session, key)
            archive.journal.append(
                session,
                actor=caller.actor,
                action="document.viewed",
                subject=f"document:{key}",
                payload={},
            )
        return body

    @router.get("/documents/{document_id}/artifacts/{name}")
    def get_artifact(caller: Caller, document_id: str, name: str) -> Response:
        key = _readable(caller, document_id)
        artifact, data = read_artifact(archive, document_id=key, name=name, actor=caller.actor)
        return Response(
            content=data,
            media_type=artifact.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{key}-{name}"',
                "X-Coffre-SHA256": artifact.sha256,
            },
        )

    @router.get("/documents/{document_id}/evidence.zip")
    def get_evidence_bundle(caller: Caller, document_id: str) -> Response:
        """The document's evidence bundle for an auditor (same access as its artifacts);
        the export is journaled with the bundle's SHA-256."""
        key = _readable(caller, document_id)
        data = build_bundle(archive, key, actor=caller.actor)
        return Response(
            content=data,
            media_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{bundle_filename(key)}"',
                "X-Coffre-SHA256": hashlib.sha256(data).hexdigest(),
            },
        )

    @router.post("/documents/{document_id}/verify")
    def post_verify(caller: Caller, document_id: str) -> dict[str, Any]:
        key = _readable(caller, document_id)
        return verify_document(archive, key, actor=caller.actor).to_json()

    @router.get("/journal/verify")
    def get_journal_verify(caller: Caller) -> dict[str, Any]:
        caller.require(Role.auditor)
        return verify_journal_report(archive).to_json()

    @router.get("/search")
    def get_search(caller: Caller, query: Annotated[SearchQuery, Query()]) -> dict[str, Any]:
        """Documents matching the query within the caller's scope (company, fiscal years),
        one page of them: ``{total, limit, offset, items}``. Auditors' searches are
        journaled."""
        return search(archive, caller, query).to_json()

    return router
