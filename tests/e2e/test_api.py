"""The HTTP API through the app factory: tokens and roles, deposit, problems for bad input."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from archive.access import create_token
from archive.models import Role
from archive.service import create_company
from coffre.app import create_app
from storage import session_scope
from tests.pdfs import make_pdfa


@pytest.fixture
def api(runtime):
    with TestClient(create_app(runtime=runtime)) as client:
        yield client


@pytest.fixture
def token(archive):
    def make(role: Role, *, company_id=None) -> dict[str, str]:
        with session_scope(archive.engine) as session:
            plain, _ = create_token(
                session, name=f"t-{role.value}", role=role, company_id=company_id
            )
        return {"Authorization": f"Bearer {plain}"}

    return make


def _upload(api, headers, data: bytes, **form):
    return api.post(
        "/api/v1/documents",
        headers=headers,
        files={"file": ("facture.pdf", data, "application/pdf")},
        data=form,
    )


def test_health_needs_no_token_but_everything_else_does(api):
    assert api.get("/health").json()["status"] == "ok"
    response = api.get("/api/v1/documents/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_authenticated"
    bad = api.get("/api/v1/journal/verify", headers={"Authorization": "Bearer cof_nope"})
    assert bad.status_code == 401


def test_station_deposits_reader_reads_and_reads_are_journaled(api, token):
    station, accountant = token(Role.station), token(Role.accountant)
    data = make_pdfa("API 1", seed=11)
    created = _upload(api, station, data, kind="supplier_invoice")
    assert created.status_code == 201, created.text
    doc_id = created.json()["document"]["id"]
    again = _upload(api, station, data)
    assert again.status_code == 200 and again.json()["document"]["id"] == doc_id

    assert _upload(api, accountant, make_pdfa(seed=12)).status_code == 403
    original = api.get(f"/api/v1/documents/{doc_id}/artifacts/original", headers=accountant)
    assert original.status_code == 200 and original.content == data
    assert original.headers["x-coffre-sha256"] == hashlib.sha256(data).hexdigest()
    missing = api.get(f"/api/v1/documents/{doc_id}/artifacts/nope", headers=accountant)
    assert missing.status_code == 404 and "original" in missing.json()["title"]

    view = api.get(f"/api/v1/documents/{doc_id}", headers=accountant).json()
    reads = [e for e in view["journal"] if e["action"] == "artifact.read"]
    assert reads and reads[0]["actor"] == "accountant:t-accountant"
    verified = api.post(f"/api/v1/documents/{doc_id}/verify", headers=accountant)
    assert verified.status_code == 200 and verified.json()["ok"] is True


def test_company_scoped_token_cannot_see_another_company(api, token, archive):
    with session_scope(archive.engine) as session:
        other = create_company(session, name="Autre SAS", siren="552120222")
    doc_id = _upload(api, token(Role.station), make_pdfa(seed=13)).json()["document"]["id"]
    scoped = token(Role.auditor, company_id=other.id)
    assert api.get(f"/api/v1/documents/{doc_id}", headers=scoped).status_code == 403
    assert (
        _upload(api, token(Role.station, company_id=other.id), make_pdfa(seed=14)).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "empty_file"), (b"GIF89a not a pdf", "not_a_pdf"), (b"%PDF-1.4\n%%EOF", "corrupt_pdf")],
)
def test_bad_input_gets_a_problem_body_and_is_quarantined(api, token, archive, content, code):
    response = _upload(api, token(Role.station), content)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == code and body["title"] and body["quarantine_id"]
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
