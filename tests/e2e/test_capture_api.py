"""Scanning stations through the HTTP API: upload, idempotency, status, the embedded worker
turning the upload into an archived document."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from archive.access import create_token
from archive.models import Role
from archive.service import create_company
from coffre.app import create_app
from coffre.runtime import build_runtime
from storage import session_scope
from tests.conftest import make_settings
from tests.scans import scan_png

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ocr")]


@pytest.fixture
def served(tmp_path, pki_template):
    settings = make_settings(
        tmp_path / "data", pki_template, queue={"embedded_worker": True, "concurrency": 1}
    )
    runtime = build_runtime(settings)
    with TestClient(create_app(runtime=runtime)) as client:
        yield client, runtime
    runtime.archive.engine.dispose()


def _token(runtime, role, company_id=None):
    with session_scope(runtime.archive.engine) as session:
        plain, _ = create_token(session, name=f"t-{role.value}", role=role, company_id=company_id)
    return {"Authorization": f"Bearer {plain}"}


def _post(client, headers, data, name="scan.png", **extra_headers):
    return client.post(
        "/api/v1/captures",
        headers={**headers, **extra_headers},
        files={"file": (name, data, "application/octet-stream")},
        data={"station": "mailroom-1"},
    )


def test_station_uploads_a_scan_and_sees_it_archived(served):
    client, runtime = served
    station = _token(runtime, Role.station)
    png = scan_png(["FACTURE API-9"], seed=21, size=(800, 600))
    first = _post(client, station, png, **{"Idempotency-Key": "scan-21"})
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["status"] == "processing" and body["document_id"]
    assert first.headers["location"] == f"/api/v1/captures/{body['id']}"
    # Retried upload with the same key: the same capture, not a second one.
    again = _post(client, station, png, **{"Idempotency-Key": "scan-21"})
    assert again.json()["id"] == body["id"] and again.json()["created"] is False
    conflict = _post(client, station, scan_png(["x"], seed=22), **{"Idempotency-Key": "scan-21"})
    assert conflict.status_code == 409

    deadline = time.monotonic() + 120
    status = body
    while status["status"] == "processing" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = client.get(f"/api/v1/captures/{body['id']}", headers=station).json()
    assert status["status"] == "archived", status
    assert status["document_state"] == "archived"


def test_refused_upload_is_a_problem_naming_the_capture(served):
    client, runtime = served
    station = _token(runtime, Role.station)
    response = _post(client, station, b"", name="empty.png")
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "empty_input"
    capture = client.get(f"/api/v1/captures/{problem['capture']['id']}", headers=station).json()
    assert capture["status"] == "quarantined"


def test_roles_and_company_scope(served):
    client, runtime = served
    with session_scope(runtime.archive.engine) as session:
        other = create_company(session, name="Autre SAS", siren="732829320")
    png = scan_png(["scope"], seed=23, size=(600, 400))
    assert _post(client, _token(runtime, Role.accountant), png).status_code == 403
    scoped = _token(runtime, Role.station, company_id=other.id)
    assert _post(client, scoped, png, **{"Idempotency-Key": "a"}).status_code in (200, 202)
    default_station = _token(runtime, Role.station)
    created = _post(client, default_station, scan_png(["d"], seed=24, size=(600, 400)))
    capture_id = created.json()["id"]
    assert client.get(f"/api/v1/captures/{capture_id}", headers=scoped).status_code == 403
