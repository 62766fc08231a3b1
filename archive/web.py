"""The auditors' web pages: sign in with a token, search, a document with its PDF and its
evidence, the evidence bundle to download. Server-rendered HTML (Jinja2), no script.

The token given at sign-in is kept in an HttpOnly, SameSite=Strict cookie and checked on
every request exactly like an API token, with the same scope (company, fiscal years,
expiry); every search, view and download is journaled under the auditor's name by the
same use cases the API calls.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlmodel import col, select

from archive.access import Principal, authenticate
from archive.bundle import build_bundle, bundle_filename
from archive.context import Archive
from archive.errors import AccessDenied, ArchiveError, NotAuthenticated
from archive.models import (
    Artifact,
    Document,
    DocumentFlag,
    DocumentKind,
    Evidence,
    InvoiceRecord,
    Role,
)
from archive.search import SearchQuery, search
from archive.service import fiscal_year, get_document, read_artifact
from archive.verify import verify_document
from storage import session_scope

COOKIE = "coffre_token"
READERS = (Role.accountant, Role.approver, Role.auditor)
HERE = Path(__file__).parent
WEB_STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

FIELD_LABELS = (
    ("invoice_number", "N° facture · Invoice number"),
    ("issue_date", "Date · Issue date"),
    ("due_date", "Échéance · Due date"),
    ("seller_name", "Fournisseur · Supplier"),
    ("seller_siren", "SIREN fournisseur"),
    ("seller_vat", "TVA fournisseur · Supplier VAT"),
    ("buyer_name", "Client · Buyer"),
    ("total_ht", "Total HT"),
    ("total_vat", "TVA · VAT"),
    ("total_ttc", "Total TTC"),
    ("currency", "Devise · Currency"),
    ("iban", "IBAN"),
    ("po_reference", "Bon de commande · PO"),
)


def _principal(archive: Archive, request: Request) -> Principal:
    token = request.cookies.get(COOKIE)
    with session_scope(archive.engine, read_only=True) as session:
        principal = authenticate(session, token)
    principal.require(*READERS)
    return principal


def _login_redirect(message: str | None = None) -> RedirectResponse:
    target = "/audit/login" + (f"?{urlencode({'error': message})}" if message else "")
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(COOKIE, path="/audit")
    return response


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _readable(archive: Archive, principal: Principal, document_id: str) -> Document:
    with session_scope(archive.engine, read_only=True) as session:
        document = get_document(session, document_id)
        principal.require_company(document.company_id)
        if principal.fiscal_years is not None:
            principal.require_fiscal_year(fiscal_year(session, document))
        session.expunge(document)
    return document


def make_web_router(archive: Archive) -> APIRouter:
    router = APIRouter(prefix="/audit", include_in_schema=False)

    def guarded(request: Request, handler: Any) -> Response:
        """Run ``handler(principal)``; unauthenticated → sign-in page, out of scope → 403."""
        try:
            principal = _principal(archive, request)
        except NotAuthenticated as exc:
            return _login_redirect(exc.message if request.cookies.get(COOKIE) else None)
        except AccessDenied as exc:
            return _login_redirect(exc.message)
        try:
            response: Response = handler(principal)
            return response
        except AccessDenied as exc:
            return _page(request, "base.html", 403, principal=principal, error=exc.message)
        except ArchiveError as exc:
            return _page(request, "base.html", exc.status, principal=principal, error=exc.message)

    @router.get("")
    def root() -> RedirectResponse:
        return RedirectResponse("/audit/search", status_code=303)

    @router.get("/login")
    def login_page(request: Request, error: str | None = None) -> HTMLResponse:
        return _page(request, "login.html", principal=None, error=error)

    @router.post("/login")
    def login(request: Request, token: Annotated[str, Form()]) -> Response:
        try:
            with session_scope(archive.engine, read_only=True) as session:
                principal = authenticate(session, token.strip())
            principal.require(*READERS)
        except (NotAuthenticated, AccessDenied) as exc:
            return _page(request, "login.html", 401, principal=None, error=exc.message)
        with session_scope(archive.engine) as session:
            archive.journal.append(
                session,
                actor=principal.actor,
                action="web.signed_in",
                subject=f"token:{principal.token_id}",
                payload={"role": principal.role.value},
            )
        response = RedirectResponse("/audit/search", status_code=303)
        response.set_cookie(
            COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/audit",
        )
        return response

    @router.post("/logout")
    def logout() -> RedirectResponse:
        return _login_redirect()

    @router.get("/search")
    def search_page(request: Request) -> Response:
        params = request.query_params
        form = {key: params.get(key) for key in SEARCH_FIELDS}
        form["sort"] = form["sort"] or "issue_date"
        form["order"] = form["order"] or "desc"
        offset = max(0, int(params.get("offset") or 0))
        limit = 50

        def handler(principal: Principal) -> Response:
            page, error = None, None
            try:  # the landing page lists the latest documents in scope
                query = SearchQuery.model_validate(
                    {**{k: v for k, v in form.items() if v}, "limit": limit, "offset": offset}
                )
                page = search(archive, principal, query)
            except ValidationError as exc:
                error = "; ".join(str(e["msg"]) for e in exc.errors())
            base = {k: v for k, v in form.items() if v}

            def url(at: int) -> str:
                return "/audit/search?" + urlencode({**base, "offset": at})

            return _page(
                request,
                "search.html",
                principal=principal,
                form=form,
                page=page,
                error=error,
                kinds=[k.value for k in DocumentKind],
                sorts=["issue_date", "total_ttc", "received_at"],
                prev_url=url(max(0, offset - limit)) if page and offset > 0 else None,
                next_url=url(offset + limit) if page and offset + limit < page.total else None,
            )

        return guarded(request, handler)

    @router.get("/documents/{document_id}")
    def document_page(request: Request, document_id: str) -> Response:
        def handler(principal: Principal) -> Response:
            document = _readable(archive, principal, document_id)
            with session_scope(archive.engine) as session:
                context = _document_context(session, document)
                archive.journal.append(
                    session,
                    actor=principal.actor,
                    action="document.viewed",
                    subject=f"document:{document.id}",
                    payload={"via": "web"},
                )
            report = verify_document(archive, document.id, actor=principal.actor)
            context["verification"] = {
                "ok": report.ok,
                "count": len(report.checks),
                "failures": [f"{c.name}: {c.detail}" for c in report.failures],
            }
            referer = request.headers.get("referer") or ""
            back = referer if "/audit/search" in referer else "/audit/search"
            return _page(
                request,
                "document.html",
                principal=principal,
                document=document,
                back_url=back,
                **context,
            )

        return guarded(request, handler)

    @router.get("/documents/{document_id}/artifacts/{name}")
    def artifact(request: Request, document_id: str, name: str, inline: int = 0) -> Response:
        def handler(principal: Principal) -> Response:
            document = _readable(archive, principal, document_id)
            row, data = read_artifact(
                archive, document_id=document.id, name=name, actor=principal.actor
            )
            disposition = "inline" if inline else "attachment"
            return Response(
                content=data,
                media_type=row.media_type,
                headers={
                    "Content-Disposition": f'{disposition}; filename="{document.id}-{name}"',
                    "X-Coffre-SHA256": row.sha256,
                    "X-Content-Type-Options": "nosniff",
                },
            )

        return guarded(request, handler)

    @router.get("/documents/{document_id}/evidence.zip")
    def bundle(request: Request, document_id: str) -> Response:
        def handler(principal: Principal) -> Response:
            document = _readable(archive, principal, document_id)
            data = build_bundle(archive, document.id, actor=principal.actor)
            return Response(
                content=data,
                media_type="application/zip",
                headers={
                    "Content-Disposition": f'attachment; filename="{bundle_filename(document.id)}"',
                    "X-Coffre-SHA256": hashlib.sha256(data).hexdigest(),
                },
            )

        return guarded(request, handler)

    return router


SEARCH_FIELDS = (
    "q",
    "supplier",
    "siren",
    "vat",
    "number",
    "date_from",
    "date_to",
    "amount_min",
    "amount_max",
    "kind",
    "sort",
    "order",
)


def _document_context(session: Any, document: Document) -> dict[str, Any]:
    record = session.exec(
        select(InvoiceRecord)
        .where(InvoiceRecord.document_id == document.id)
        .order_by(col(InvoiceRecord.version).desc())
        .limit(1)
    ).first()
    invoice = dict(record.data) if record else {}
    fields = [(label, invoice[key]) for key, label in FIELD_LABELS if invoice.get(key)]
    artifacts = session.exec(
        select(Artifact)
        .where(Artifact.document_id == document.id)
        .order_by(col(Artifact.created_at))
    ).all()
    evidence = {
        e.artifact_id: e
        for e in session.exec(
            select(Evidence).where(col(Evidence.artifact_id).in_([a.id for a in artifacts]))
        )
    }
    rows = []
    for a in artifacts:
        e = evidence.get(a.id)
        rows.append(
            {
                "name": a.name,
                "sha256": a.sha256,
                "seal": e.seal_format if e else None,
                "timestamp": e.timestamp_time.isoformat() if e else None,
            }
        )
    names = {a.name for a in artifacts}
    pdf = "sealed" if "sealed" in names else None
    if pdf is None and document.media_type == "application/pdf":
        pdf = "original"
    flags = session.exec(select(DocumentFlag).where(DocumentFlag.document_id == document.id)).all()
    return {
        "invoice": _Obj(invoice),
        "fields": fields,
        "artifacts": rows,
        "flags": flags,
        "pdf_artifact": pdf,
    }


class _Obj(dict[str, Any]):
    """A dict whose keys read as attributes in templates (missing ones are None)."""

    def __getattr__(self, name: str) -> Any:
        return self.get(name)
