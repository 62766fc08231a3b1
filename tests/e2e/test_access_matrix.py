"""No role sees outside its scope: every endpoint × every kind of caller, in and out of scope.

Callers: admin, station, approver, accountant, an auditor in scope (company and fiscal
year of the document), an auditor of another company, an auditor of another fiscal year,
an expired auditor, and nobody. Each cell says what the endpoint must answer.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from archive.access import create_token
from archive.models import Role
from archive.service import create_company
from coffre.app import create_app
from coffre.runtime import build_runtime
from storage import session_scope
from storage.types import utcnow
from tests.conftest import make_settings
from tests.pdfs import make_pdfa

OK, DENIED, ANON = "ok", 403, 401

CALLERS = (
    "admin",
    "station",
    "approver",
    "accountant",
    "auditor",
    "auditor_other_company",
    "auditor_other_year",
    "auditor_expired",
    "nobody",
)
READ = {
    "admin": OK,
    "station": DENIED,
    "approver": OK,
    "accountant": OK,
    "auditor": OK,
    "auditor_other_company": DENIED,
    "auditor_other_year": DENIED,
    "auditor_expired": ANON,
    "nobody": ANON,
}
WRITE = {
    **{c: DENIED for c in CALLERS},
    "admin": OK,
    "station": OK,
    "auditor_expired": ANON,
    "nobody": ANON,
}
JOURNAL = {**READ, "approver": DENIED, "accountant": DENIED, "auditor_other_year": OK}
JOURNAL["auditor_other_company"] = OK  # the chain itself holds no document's content
SEARCH = {**READ, "auditor_other_company": OK, "auditor_other_year": OK}  # empty results

ENDPOINTS = {
    "GET document": ("get", "/api/v1/documents/{doc}", READ),
    "GET artifact": ("get", "/api/v1/documents/{doc}/artifacts/original", READ),
    "GET evidence.zip": ("get", "/api/v1/documents/{doc}/evidence.zip", READ),
    "POST verify": ("post", "/api/v1/documents/{doc}/verify", READ),
    "GET journal/verify": ("get", "/api/v1/journal/verify", JOURNAL),
    "GET search": ("get", "/api/v1/search?number=", SEARCH),
    "POST documents": ("post-file", "/api/v1/documents", WRITE),
    "POST captures": ("post-file", "/api/v1/captures", WRITE),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, pki_template):
    tmp = tmp_path_factory.mktemp("matrix")
    runtime = build_runtime(make_settings(tmp / "data", pki_template))
    with TestClient(create_app(runtime=runtime)) as client:
        headers = {}
        pdf = make_pdfa("MATRIX", seed=99)
        with session_scope(runtime.archive.engine) as session:
            admin, _ = create_token(session, name="root", role=Role.admin)
        created = client.post(
            "/api/v1/documents",
            headers={"Authorization": f"Bearer {admin}"},
            files={"file": ("m.pdf", pdf, "application/pdf")},
        )
        assert created.status_code == 201, created.text
        document = created.json()["document"]
        year = int(document["received_at"][:4])
        with session_scope(runtime.archive.engine) as session:
            own = document["company_id"]
            other = create_company(session, name="Autre SA", siren="732829320").id

            def token(name, role, **scope):
                plain, _ = create_token(session, name=name, role=role, **scope)
                return {"Authorization": f"Bearer {plain}"}

            headers = {
                "admin": {"Authorization": f"Bearer {admin}"},
                "station": token("st", Role.station),
                "approver": token("ap", Role.approver),
                "accountant": token("ac", Role.accountant),
                "auditor": token("au", Role.auditor, company_id=_uuid(own), fiscal_years=[year]),
                "auditor_other_company": token(
                    "au2", Role.auditor, company_id=other, fiscal_years=[year]
                ),
                "auditor_other_year": token(
                    "au3", Role.auditor, company_id=_uuid(own), fiscal_years=[year - 3]
                ),
                "auditor_expired": token(
                    "au4",
                    Role.auditor,
                    company_id=_uuid(own),
                    fiscal_years=[year],
                    expires_at=utcnow() - timedelta(minutes=1),
                ),
                "nobody": {},
            }
        yield client, headers, document
    runtime.archive.engine.dispose()


def _uuid(value):
    import uuid

    return uuid.UUID(str(value))


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_access(world, endpoint, caller):
    client, headers, document = world
    method, path, expected = ENDPOINTS[endpoint]
    url = path.format(doc=document["id"])
    if method == "post-file":
        response = client.post(
            url,
            headers=headers[caller],
            files={"file": (f"{caller}.pdf", make_pdfa(caller, seed=7), "application/pdf")},
        )
    else:
        response = getattr(client, method)(url, headers=headers[caller])
    want = expected[caller]
    if want == OK:
        assert response.status_code < 300, (endpoint, caller, response.text)
    else:
        assert response.status_code == want, (endpoint, caller, response.text)
    if endpoint == "GET search" and want == OK:
        ids = {item["document_id"] for item in response.json()["items"]}
        visible = READ[caller] == OK
        assert (document["id"] in ids) == visible, (caller, ids)
