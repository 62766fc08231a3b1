"""Search for auditors and accountants, on SQLite + local store and PostgreSQL + S3.

The index is filled only through the real archive paths: documents received with their
invoice data and OCR text, scans received then completed or failed, e-invoices from the
corpora. A small ledger of two companies over three years is searched by every filter,
by words of the text, page by page, and through tokens of limited scope.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import delete
from sqlmodel import col, select

from archive.access import OPERATOR, Principal, authenticate, create_token
from archive.deposit import Completion, Derived, Flag, Submission, complete, fail, receive
from archive.errors import AccessDenied, NotAuthenticated, UnknownCompany
from archive.invoice import InvoiceData
from archive.models import (
    Company,
    DocumentKind,
    DocumentState,
    JournalEvent,
    Role,
    SearchEntry,
    SearchText,
)
from archive.search import SearchQuery, fold, reindex, search, words
from archive.service import create_company
from capture.einvoice.validate import Validator
from capture.service import receive_file
from coffre.app import create_app
from storage import session_scope
from storage.types import utcnow
from tests.pdfs import make_plain_pdf

ACTOR = "station:scanner-1"
TEXT = "text/plain; charset=utf-8"
CII = "en16931/cii/examples/CII_example1.xml"
FACTURX = "facturx/zugferd-corpus/ZUGFeRDv2/correct/FNFE-factur-x-examples/Facture_FR_BASICWL.pdf"


@dataclass
class Ledger:
    """Two companies' documents: Durand's electricity bill of 2023 mentions its due date
    (échéance); 2024 has stationery and a credit note; a 2025 scan was completed by
    processing, another scan failed; company B has its own Durand bill."""

    a: Company
    b: Company
    electricity: str  # A, 2023, 1 200.00, text with "échéance"
    stationery: str  # A, 2024, 89.90
    credit_note: str  # A, 2024, 4 500.00, credit note
    garage: str  # A, 2025, 350.00, a scan completed by processing
    failed: str  # A, no invoice data, failed: fiscal year of receipt
    b_electricity: str  # B, 2024, 640.00, text with "échéance"

    def name(self, document_id: str) -> str:
        return next(k for k, v in vars(self).items() if v == document_id)


def _invoice(
    supplier: str, siren: str, number: str, issued: date, ttc: str, vat: str | None = None
) -> InvoiceData:
    return InvoiceData(
        invoice_number=number,
        issue_date=issued,
        currency="EUR",
        seller_name=supplier,
        seller_siren=siren,
        seller_vat=vat,
        total_ttc=Decimal(ttc),
    )


def _receive(
    archive,
    company: Company,
    seed: int,
    *,
    invoice: InvoiceData | None = None,
    text: str | None = None,
    kind: str = DocumentKind.supplier_invoice.value,
    state: str = DocumentState.archived.value,
) -> str:
    derived = (Derived("ocr.txt", text.encode(), TEXT),) if text is not None else ()

    def admit(_data: bytes) -> Submission:
        return Submission(kind=kind, derived=derived, invoice=invoice, state=state)

    outcome = receive(
        archive,
        data=make_plain_pdf(f"scan {seed}", seed=seed),
        filename=f"scan-{seed}.pdf",
        company_ref=str(company.id),
        actor=ACTOR,
        source="test",
        admit=admit,
    )
    return str(outcome.document.id)


@pytest.fixture
def ledger(archive) -> Ledger:
    with session_scope(archive.engine) as session:
        a = create_company(session, name="Hôtel du Lac SAS", siren="443061841")
        b = create_company(session, name="Boulangerie Petit", siren="732829320")
    durand = ("Électricité Durand SARL", "552120222")
    electricity = _receive(
        archive,
        a,
        1,
        invoice=_invoice(*durand, "ED-2023-0412", date(2023, 3, 15), "1200.00", "FR40552120222"),
        text="FACTURE Électricité Durand\nConsommation hiver\nDate d'échéance : 15/04/2023",
    )
    stationery = _receive(
        archive,
        a,
        2,
        invoice=_invoice("Papeterie Martin", "417626389", "PM-24-118", date(2024, 6, 30), "89.90"),
        text="Fournitures de bureau : ramettes, classeurs et stylos",
    )
    credit_note = _receive(
        archive,
        a,
        3,
        invoice=_invoice("Durand & Fils", "356000000", "DF-2024-077", date(2024, 11, 2), "4500.00"),
        text="Avoir sur la facture DF-2024-031, remise exceptionnelle",
        kind=DocumentKind.credit_note.value,
    )
    # Scans: received first, then processing completes one and gives up on the other.
    garage = _receive(archive, a, 4, state=DocumentState.received.value)
    failed = _receive(archive, a, 5, state=DocumentState.received.value)
    done = complete(
        archive,
        uuid.UUID(garage),
        Completion(
            derived=(Derived("ocr.txt", "Garage Lefèvre — réparation du véhicule".encode(), TEXT),),
            invoice=_invoice("Garage Lefèvre", "542065479", "GL-881", date(2025, 1, 20), "350.00"),
        ),
        actor="worker:test",
    )
    assert done is not None
    assert fail(archive, uuid.UUID(failed), Flag("unreadable", "blank page"), actor="w")
    b_electricity = _receive(
        archive,
        b,
        6,
        invoice=_invoice(*durand, "ED-2024-0077", date(2024, 2, 1), "640.00"),
        text="Électricité Durand — échéance au 1er mars 2024",
    )
    return Ledger(a, b, electricity, stationery, credit_note, garage, failed, b_electricity)


def _ids(page) -> list[str]:
    return [str(hit.document_id) for hit in page.items]


def _found(archive, ledger: Ledger, principal: Principal = OPERATOR, **query) -> set[str]:
    page = search(archive, principal, SearchQuery(**query))
    assert page.total == len(page.items)  # the ledger fits on one page
    return {ledger.name(i) for i in _ids(page)}


def _principal(archive, role: Role, **scope) -> Principal:
    with session_scope(archive.engine) as session:
        plain, _ = create_token(session, name=f"t-{role.value}", role=role, **scope)
    with session_scope(archive.engine, read_only=True) as session:
        return authenticate(session, plain)


# -- filters ----------------------------------------------------------------------------
def test_each_field_filter_narrows_the_result(archive, ledger):
    a = str(ledger.a.id)
    find = lambda **q: _found(archive, ledger, **q)  # noqa: E731
    assert find(company=a) == {"electricity", "stationery", "credit_note", "garage", "failed"}
    assert find(company=ledger.b.siren) == {"b_electricity"}  # by SIREN too
    assert find(supplier="electricite") == {"electricity", "b_electricity"}
    assert find(supplier="ÉLECTRICITÉ dur", company=a) == {"electricity"}
    assert find(supplier="durand") == {"credit_note"}  # a prefix of the name
    assert find(siren="552 120 222") == {"electricity", "b_electricity"}
    assert find(siren="55212022200015") == {"electricity", "b_electricity"}  # a SIRET
    assert find(vat="fr 40 552120222") == {"electricity"}
    assert find(number="PM-24-118") == {"stationery"}
    assert find(number="PM-24") == set()  # exact
    assert find(date_from=date(2024, 1, 1), date_to=date(2024, 12, 31), company=a) == {
        "stationery",
        "credit_note",
    }
    assert find(date_from=date(2024, 11, 2)) == {"credit_note", "garage"}
    assert find(date_to=date(2024, 2, 1)) == {"electricity", "b_electricity"}
    assert find(amount_min="350", amount_max="1 200,00") == {
        "electricity",
        "garage",
        "b_electricity",
    }
    assert find(amount_min=Decimal("4500.01")) == set()
    assert find(kind="credit_note") == {"credit_note"}
    assert find(state="failed") == {"failed"}
    assert find(state="archived", company=a) == {
        "electricity",
        "stationery",
        "credit_note",
        "garage",
    }
    assert find(kind="supplier_invoice", date_from=date(2024, 1, 1), amount_max=500) == {
        "stationery",
        "garage",
    }


def test_query_values_are_checked():
    for bad in (
        {"siren": "12345"},
        {"date_from": date(2024, 2, 1), "date_to": date(2024, 1, 1)},
        {"amount_min": 10, "amount_max": 5},
        {"limit": 0},
        {"limit": 1000},
        {"offset": -1},
        {"sort": "supplier"},
        {"kind": "receipt"},
        {"colour": "red"},
    ):
        with pytest.raises(ValidationError):
            SearchQuery(**bad)
    assert SearchQuery(sort="amount").sort == "total_ttc"


# -- full text ------------------------------------------------------------------------------
def test_words_fold_accents_case_and_ligatures():
    assert fold("ÉCHÉANCE Cœur") == "echeance coeur"
    assert words("Date d'échéance : 15/04/2023") == ["date", "d", "echeance", "15", "04", "2023"]


def test_full_text_finds_words_whatever_their_accents(archive, ledger):
    a = str(ledger.a.id)
    find = lambda **q: _found(archive, ledger, **q)  # noqa: E731
    assert find(q="echeance") == {"electricity", "b_electricity"}
    assert find(q="ÉCHÉANCE", company=a) == {"electricity"}
    assert find(q="éché*", company=a) == {"electricity"}  # a prefix
    assert find(q="eche", company=a) == set()  # whole words unless asked
    assert find(q="fournitures bureau") == {"stationery"}  # every word must appear
    assert find(q="fournitures avoir") == set()
    assert find(q="DF-2024-031") == {"credit_note"}  # a reference, as a phrase
    assert find(q="2024-031-DF") == set()
    assert find(q="durand", company=a) == {"electricity", "credit_note"}  # supplier names
    assert find(q="lefevre") == {"garage"}  # OCR text added when processing completed
    assert find(q="GL-881") == {"garage"}  # invoice number from the completion
    assert find(q="echeance", date_from=date(2024, 1, 1)) == {"b_electricity"}
    page = search(archive, OPERATOR, SearchQuery(q="echeance", company=a))
    (hit,) = page.items
    assert hit.snippet is not None and "échéance" in hit.snippet  # the text as written
    assert search(archive, OPERATOR, SearchQuery(company=a)).items[0].snippet is None


@pytest.fixture
def no_rules(tmp_path: Path):
    """E-invoices archived without the rule artefacts (flagged "not validated"): the
    validation is not what these tests are about, and compiling it is slow."""
    return lambda: Validator(tmp_path)


def test_einvoices_are_found_by_the_text_of_their_xml(archive, corpora, no_rules):
    found = {}
    for path in (CII, FACTURX):
        outcome = receive_file(
            archive,
            no_rules,
            data=(corpora / path).read_bytes(),
            filename=Path(path).name,
            company_ref=None,
            actor="station:pa",
            source="test",
        )
        found[path] = str(outcome.document.id)

    def ids(**q) -> set[str]:
        return set(_ids(search(archive, OPERATOR, SearchQuery(**q))))

    # Words that only the XML holds (a note, a city), not the invoice fields.
    assert ids(q="betalingstermijn") == {found[CII]}
    assert ids(q="malaucene") == {found[FACTURX]}  # "Malaucène" in the embedded XML
    assert ids(q="franco") == {found[CII], found[FACTURX]}
    assert ids(q="franco port") == {found[FACTURX]}
    assert ids(number="12115118") == {found[CII]}
    assert ids(number="FA-2017-0010") == {found[FACTURX]}
    assert ids(supplier="au bon") == {found[FACTURX]}
    assert ids(date_from=date(2017, 11, 13), date_to=date(2017, 11, 13)) == {found[FACTURX]}


# -- pages and order ------------------------------------------------------------------------
def test_pages_follow_the_sort_and_cover_the_result_once(archive, ledger):
    a = str(ledger.a.id)

    def names(**q) -> tuple[int, list[str]]:
        page = search(archive, OPERATOR, SearchQuery(company=a, **q))
        return page.total, [ledger.name(i) for i in _ids(page)]

    by_amount = ["stationery", "garage", "electricity", "credit_note", "failed"]
    assert names(sort="total_ttc", order="asc") == (5, by_amount)
    assert names(sort="amount", order="desc") == (5, [*by_amount[3::-1], "failed"])
    pages = [names(sort="total_ttc", order="asc", limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert [total for total, _ in pages] == [5, 5, 5, 5]
    assert [p for _, p in pages] == [by_amount[0:2], by_amount[2:4], by_amount[4:], []]
    # Missing values come last both ways.
    assert names(sort="issue_date", order="desc")[1] == [
        "garage",
        "credit_note",
        "stationery",
        "electricity",
        "failed",
    ]
    assert names(sort="issue_date", order="asc")[1] == [
        "electricity",
        "stationery",
        "credit_note",
        "garage",
        "failed",
    ]
    received = ["electricity", "stationery", "credit_note", "garage", "failed"]
    assert names(sort="received_at", order="asc")[1] == received
    assert names(sort="received_at", order="desc")[1] == received[::-1]


# -- scope ----------------------------------------------------------------------------------
def test_an_auditor_sees_only_their_company_and_fiscal_years(archive, ledger):
    auditor = _principal(archive, Role.auditor, company_id=ledger.a.id, fiscal_years=[2024])
    find = lambda **q: _found(archive, ledger, auditor, **q)  # noqa: E731
    assert find() == {"stationery", "credit_note"}
    assert find(q="echeance") == set()  # 2023 in A, and B's is another company
    assert find(supplier="electricite") == set()
    assert find(date_from=date(2023, 1, 1), date_to=date(2023, 12, 31)) == set()
    assert find(company=str(ledger.a.id)) == {"stationery", "credit_note"}
    with pytest.raises(AccessDenied):
        find(company=str(ledger.b.id))
    with pytest.raises(AccessDenied):  # not "unknown": no telling which companies exist
        find(company="999999999")
    with pytest.raises(UnknownCompany):
        _found(archive, ledger, company="999999999")
    # A document without an issue date belongs to the year it was received.
    this_year = _principal(
        archive, Role.auditor, company_id=ledger.a.id, fiscal_years=[utcnow().year]
    )
    assert _found(archive, ledger, this_year) == {"failed"}
    nothing = _principal(archive, Role.auditor, company_id=ledger.a.id, fiscal_years=[])
    assert _found(archive, ledger, nothing) == set()


def test_a_company_token_never_sees_another_company(archive, ledger):
    accountant = _principal(archive, Role.accountant, company_id=ledger.b.id)
    assert _found(archive, ledger, accountant) == {"b_electricity"}
    assert _found(archive, ledger, accountant, q="durand") == {"b_electricity"}
    unlimited = _principal(archive, Role.accountant)
    assert len(_found(archive, ledger, unlimited, q="durand")) == 3


def test_who_may_search(archive, ledger):
    with pytest.raises(AccessDenied):
        search(archive, _principal(archive, Role.station), SearchQuery())
    with pytest.raises(AccessDenied):  # an auditor must be limited to a company
        search(archive, _principal(archive, Role.auditor), SearchQuery())
    for role in (Role.accountant, Role.approver, Role.admin):
        assert search(archive, _principal(archive, role), SearchQuery()).total == 6


def test_an_expired_token_cannot_search(archive, ledger):
    with session_scope(archive.engine) as session:
        plain, _ = create_token(
            session,
            name="auditor-2024",
            role=Role.auditor,
            company_id=ledger.a.id,
            fiscal_years=[2024],
            expires_at=utcnow() - timedelta(seconds=1),
        )
    with session_scope(archive.engine, read_only=True) as session, pytest.raises(NotAuthenticated):
        authenticate(session, plain)
    # A principal kept beyond its token's expiry (a web session) is refused too.
    auditor = _principal(
        archive,
        Role.auditor,
        company_id=ledger.a.id,
        expires_at=utcnow() + timedelta(hours=1),
    )
    assert _found(archive, ledger, auditor)
    expired = replace(auditor, expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(NotAuthenticated):
        search(archive, expired, SearchQuery())


# -- journal --------------------------------------------------------------------------------
def _search_events(archive) -> list[JournalEvent]:
    with session_scope(archive.engine, read_only=True) as session:
        query = select(JournalEvent).where(JournalEvent.action == "search.performed")
        return list(session.exec(query.order_by(col(JournalEvent.seq))))


def test_every_search_by_an_auditor_is_journaled(archive, ledger):
    auditor = _principal(archive, Role.auditor, company_id=ledger.a.id, fiscal_years=[2024])
    page = search(archive, auditor, SearchQuery(q="bureau", amount_max=Decimal("100")))
    assert page.total == 1
    search(archive, auditor, SearchQuery(siren="000000000"))
    first, second = _search_events(archive)
    assert first.actor == "auditor:t-auditor"
    assert first.subject == f"token:{auditor.token_id}"
    assert first.payload["query"]["q"] == "bureau"
    assert first.payload["query"]["amount_max"] == "100"
    assert first.payload["total"] == 1
    assert first.payload["scope"] == {"company_id": str(ledger.a.id), "fiscal_years": [2024]}
    assert second.payload["query"]["siren"] == "000000000" and second.payload["total"] == 0
    # Accountants' searches are not journaled (their reads of documents are).
    search(archive, _principal(archive, Role.accountant), SearchQuery(q="bureau"))
    assert len(_search_events(archive)) == 2
    # Refused searches leave no event and return nothing.
    with pytest.raises(AccessDenied):
        search(archive, auditor, SearchQuery(company=str(ledger.b.id)))
    assert len(_search_events(archive)) == 2


# -- the index itself -----------------------------------------------------------------------
def _index(archive) -> dict[str, dict]:
    """Each document's index rows, as one dict of their columns."""
    with session_scope(archive.engine, read_only=True) as session:
        query = select(SearchEntry, SearchText).join(
            SearchText, col(SearchText.entry_id) == col(SearchEntry.id)
        )
        return {
            str(entry.document_id): {**entry.model_dump(), **words_.model_dump()}
            for entry, words_ in session.exec(query)
        }


def test_the_index_follows_each_document_and_can_be_rebuilt(archive, ledger):
    rows = _index(archive)
    assert len(rows) == 6
    garage, failed = rows[ledger.garage], rows[ledger.failed]
    assert (garage["state"], garage["supplier_name"], garage["fiscal_year"]) == (
        "archived",
        "Garage Lefèvre",
        2025,
    )
    assert "réparation" in garage["text"] and "reparation" in garage["terms"].split()
    assert (failed["state"], failed["supplier_name"], failed["text"]) == ("failed", None, "")
    assert failed["fiscal_year"] == failed["received_at"].year
    before = search(archive, OPERATOR, SearchQuery(q="echeance", sort="received_at"))

    with session_scope(archive.engine) as session:
        session.execute(delete(SearchText))
        session.execute(delete(SearchEntry))
    assert search(archive, OPERATOR, SearchQuery()).total == 0
    assert search(archive, OPERATOR, SearchQuery(q="echeance")).total == 0
    assert reindex(archive, actor="cli") == 6

    after = search(archive, OPERATOR, SearchQuery(q="echeance", sort="received_at"))
    assert after == before  # text read back from the store, snippets included
    again = _index(archive)
    fields = ("state", "supplier_name", "siren", "total_ttc", "fiscal_year", "text", "terms")
    for key, row in rows.items():
        assert [again[key][f] for f in fields] == [row[f] for f in fields]
    assert reindex(archive) == 6  # again: rows are rewritten, never duplicated
    assert len(_index(archive)) == 6
    assert search(archive, OPERATOR, SearchQuery()).total == 6


# -- HTTP -----------------------------------------------------------------------------------
def test_the_search_endpoint(runtime, ledger):
    archive = runtime.archive
    with session_scope(archive.engine) as session:
        auditor, _ = create_token(
            session, name="cabinet", role=Role.auditor, company_id=ledger.a.id, fiscal_years=[2024]
        )
        station, _ = create_token(session, name="scanner", role=Role.station)
    with TestClient(create_app(runtime=runtime)) as api:

        def get(token: str, **params):
            return api.get(
                "/api/v1/search", params=params, headers={"Authorization": f"Bearer {token}"}
            )

        response = get(auditor, q="echeance ramettes", sort="issue_date")
        assert response.status_code == 200 and response.json()["total"] == 0
        response = get(auditor, amount_min="50", sort="amount", order="asc", limit=1)
        body = response.json()
        assert (body["total"], body["limit"], body["offset"]) == (2, 1, 0)
        (item,) = body["items"]
        assert item == {
            "document_id": ledger.stationery,
            "company_id": str(ledger.a.id),
            "supplier": "Papeterie Martin",
            "siren": "417626389",
            "vat": None,
            "number": "PM-24-118",
            "issue_date": "2024-06-30",
            "total_ttc": "89.90",
            "currency": "EUR",
            "kind": "supplier_invoice",
            "state": "archived",
            "received_at": item["received_at"],
            "snippet": None,
        }
        assert get(station).status_code == 403
        assert get(auditor, company=str(ledger.b.id)).status_code == 403
        assert get(auditor, siren="123").status_code == 422
        assert get(auditor, colour="red").status_code == 422
        assert api.get("/api/v1/search").status_code == 401
    assert len(_search_events(archive)) == 2
