"""E-invoices through the whole path: detected from content, archived byte for byte with a
detached seal and timestamp beside them, read, validated, flagged when invalid, lifecycle
statuses journaled. Runs on SQLite + local store and PostgreSQL + S3."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from archive.access import create_token
from archive.errors import BadInput
from archive.models import InvoiceRecord, Role
from archive.service import describe, read_artifact
from archive.verify import verify_document
from capture.einvoice.validate import Validator
from capture.service import receive_file
from coffre.app import create_app
from storage import session_scope
from tests.tamper import tamper

ACTOR = "station:pa-test"
CII = "en16931/cii/examples/CII_example1.xml"
FACTURX = "facturx/zugferd-corpus/ZUGFeRDv2/correct/FNFE-factur-x-examples/Facture_FR_BASICWL.pdf"


@pytest.fixture(scope="session")
def shared_validator(corpora: Path) -> Validator:
    return Validator(corpora)


@pytest.fixture
def rt(runtime, shared_validator):
    runtime._validator = shared_validator  # compile the stylesheets once per session
    return runtime


def _receive(rt, data: bytes, name: str = "invoice.xml"):
    return receive_file(
        rt.archive,
        rt.validator,
        data=data,
        filename=name,
        company_ref=None,
        actor=ACTOR,
        source="test",
    )


def _body(rt, document_id):
    with session_scope(rt.archive.engine, read_only=True) as session:
        return describe(session, document_id)


def test_cii_is_archived_byte_for_byte_read_and_validated(rt, corpora):
    data = (corpora / CII).read_bytes()
    outcome = _receive(rt, data)
    body = _body(rt, outcome.document.id)
    doc = body["document"]
    assert doc["format"] == "cii" and doc["media_type"] == "application/xml"
    assert doc["state"] == "archived"
    names = {a["name"] for a in body["artifacts"]}
    assert names == {"original", "original.p7s", "original.tsr", "invoice.json", "validation.json"}
    _, original = read_artifact(rt.archive, document_id=doc["id"], name="original", actor=ACTOR)
    assert original == data and doc["original_sha256"] == hashlib.sha256(data).hexdigest()
    (invoice,) = body["invoice"]
    assert invoice["source"] == "xml" and invoice["data"]["invoice_number"]
    assert body["flags"] == []
    _, report = read_artifact(
        rt.archive, document_id=doc["id"], name="validation.json", actor=ACTOR
    )
    assert json.loads(report)["valid"] is True
    assert verify_document(rt.archive, doc["id"], actor=ACTOR).ok
    assert _receive(rt, data).created is False  # idempotent on the bytes


def test_facturx_pdf_is_not_signed_in_place(rt, corpora):
    data = (corpora / FACTURX).read_bytes()
    body = _body(rt, _receive(rt, data, "f.pdf").document.id)
    assert body["document"]["format"] == "facturx-pdf"
    assert body["document"]["profile"] == "BASIC WL"
    names = {a["name"] for a in body["artifacts"]}
    assert "sealed" not in names and "embedded/factur-x.xml" in names
    original = next(a for a in body["artifacts"] if a["name"] == "original")
    assert original["sha256"] == hashlib.sha256(data).hexdigest()


def test_invalid_invoice_is_archived_and_flagged(rt, corpora):
    root = etree.fromstring((corpora / CII).read_bytes())
    ns = {"ram": root.nsmap["ram"]}
    (total,) = root.xpath(
        "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount", namespaces=ns
    )
    total.text = "999999.99"
    outcome = _receive(rt, etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    body = _body(rt, outcome.document.id)
    assert body["document"]["state"] == "archived"
    (flag,) = body["flags"]
    assert flag["code"] == "einvoice_invalid" and "BR-CO-15" in flag["message"]
    assert any(e["action"] == "document.flagged" for e in body["journal"])


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"<Invoice><unclosed></Invoice>", "malformed_xml"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "unsafe_xml"),
    ],
)
def test_unreadable_einvoice_goes_to_quarantine(rt, content, code):
    with pytest.raises(BadInput) as caught:
        _receive(rt, content)
    assert caught.value.code == code and caught.value.data["quarantine_id"]
    assert rt.archive.store.get(f"quarantine/{hashlib.sha256(content).hexdigest()}") == content


def test_plain_pdf_still_gets_its_pades_copy(rt):
    from tests.pdfs import make_pdfa

    body = _body(rt, _receive(rt, make_pdfa(seed=31), "scan.pdf").document.id)
    assert body["document"]["format"] == "pdf"
    assert "sealed" in {a["name"] for a in body["artifacts"]}


def test_edited_invoice_data_is_caught(rt, corpora):
    doc_id = _receive(rt, (corpora / CII).read_bytes()).document.id
    key = doc_id.hex if rt.archive.engine.dialect.name == "sqlite" else doc_id
    tamper(
        rt.archive.engine,
        "invoice_data",
        "UPDATE invoice_data SET invoice_number = 'X', data = :d WHERE document_id = :i",
        d=json.dumps({"invoice_number": "FORGED"}),
        i=key,
    )
    report = verify_document(rt.archive, doc_id, actor=ACTOR)
    assert any(f.name == "invoice data v1" for f in report.failures)
    with session_scope(rt.archive.engine, read_only=True) as session:
        assert session.exec(InvoiceRecord.__table__.select()).first().invoice_number == "X"  # type: ignore[attr-defined]


def test_platform_pushes_an_einvoice_and_its_lifecycle_statuses(rt, corpora):
    with session_scope(rt.archive.engine) as session:
        plain, _ = create_token(session, name="pa", role=Role.station)
        reader, _ = create_token(session, name="compta", role=Role.accountant)
    station = {"Authorization": f"Bearer {plain}"}
    data = (corpora / CII).read_bytes()
    with TestClient(create_app(runtime=rt)) as api:
        pushed = api.post(
            "/api/v1/einvoices",
            headers=station,
            files={"file": ("inv.xml", data, "application/xml")},
        )
        assert pushed.status_code == 201, pushed.text
        doc_id = pushed.json()["document"]["id"]
        refused = api.post(
            "/api/v1/einvoices",
            headers={"Authorization": f"Bearer {reader}"},
            files={"file": ("inv.xml", data, "application/xml")},
        )
        assert refused.status_code == 403
        for code in (200, 212):
            sent = api.post(
                f"/api/v1/einvoices/{doc_id}/status",
                headers=station,
                json={"code": code, "reason": "test"},
            )
            assert sent.status_code == 201 and sent.json()["code"] == code
        assert (
            api.post(
                f"/api/v1/einvoices/{doc_id}/status", headers=station, json={"code": 299}
            ).status_code
            == 422
        )
        assert (
            api.post(
                f"/api/v1/einvoices/{doc_id}/status", headers=station, json={"code": 219}
            ).json()["code"]
            == "unknown_lifecycle_status"
        )
        bad = api.post(
            "/api/v1/einvoices",
            headers=station,
            files={"file": ("x.xml", b"<x", "application/xml")},
        )
        assert bad.status_code == 422 and bad.json()["code"] == "malformed_xml"
    body = _body(rt, doc_id)
    assert [s["label"] for s in body["lifecycle"]] == ["Déposée", "Encaissée"]
    assert [
        e["payload"]["code"] for e in body["journal"] if e["action"] == "einvoice.lifecycle_status"
    ] == [200, 212]


def test_missing_rule_artefacts_still_archive_the_invoice_flagged(runtime, corpora, tmp_path):
    runtime.settings.capture.rules_dir = tmp_path / "no-rules"  # a deployment fault
    data = (corpora / CII).read_bytes()
    body = _body(runtime, _receive(runtime, data).document.id)
    (flag,) = body["flags"]
    assert flag["code"] == "einvoice_not_validated" and "missing" in flag["message"]
    assert "validation.json" not in {a["name"] for a in body["artifacts"]}
    assert body["invoice"][0]["data"]["invoice_number"]
