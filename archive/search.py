"""Search over archived documents for tax auditors and accountants.

One narrow row per document in ``search_index`` (:class:`~archive.models.SearchEntry`):
the invoice fields, state and scope, what is filtered, counted and sorted. Beside it, in
``search_text`` (:class:`~archive.models.SearchText`), the document's text (OCR text of a
scan, text of an e-invoice's XML) and ``terms``, the folded words a full-text index covers.
Both are derived and mutable, not evidence: deposit rewrites them when a document is
archived or its invoice data or state changes (:func:`index_document`), and
:func:`reindex` rebuilds every row from the registry and the stored artifacts.

Full text is one code path over two engines. Words are folded here, in Python (lower case,
accents and ligatures removed, split on anything that is not a letter or a digit), for the
index and for the query alike, so "échéance", "ECHEANCE" and "echeance" are one word on
both databases and no ``unaccent`` extension is needed. SQLite matches with FTS5,
PostgreSQL with a GIN index on a stored ``to_tsvector('simple', terms)``. The ``simple``
configuration, not ``french``: invoices are names, numbers and references that a French
stemmer would mangle ("Durand" and "durant" stem alike, SIRET/IBAN fragments are not
words), and SQLite has no French stemmer, so ``simple`` is what gives the same answers on
both databases.

Pages are limit/offset over a total order (the sort key, then the row id), so a page is
stable while the index does not change; ``total`` counts every match in scope.

Scope is enforced here, never left to the caller: a token limited to a company sees only
that company, one limited to fiscal years only those years (the calendar year of the
issue date, else of receipt, as :func:`archive.service.fiscal_year`), an expired token
nothing. Every search by an auditor is journaled with what was asked and how many matched.
This module reads the registry and the store; it never changes a document or an artifact.
"""

from __future__ import annotations

import html
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import ColumnElement, Table, column, func, literal_column, table
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from archive.access import Principal
from archive.context import Archive
from archive.errors import AccessDenied, UnknownCompany
from archive.invoice import InvoiceData
from archive.models import (
    Artifact,
    Document,
    DocumentKind,
    DocumentState,
    InvoiceRecord,
    Role,
    SearchEntry,
    SearchText,
)
from archive.service import resolve_company
from storage import session_scope
from storage.types import utcnow

#: Who may search (admin always may).
SEARCHERS = (Role.accountant, Role.approver, Role.auditor)
#: Text kept per document; beyond it the rest is not searchable (a PostgreSQL tsvector
#: holds at most 1 MiB, and a few pages of OCR text are far below this).
MAX_TEXT_CHARS = 200_000
#: Longer "words" are base64 or binary noise, not something anyone types.
MAX_WORD_CHARS = 64
MAX_LIMIT = 200
MAX_OFFSET = 100_000

#: The FTS5 table (SQLite), the tsvector column of ``search_text`` and its GIN index
#: (PostgreSQL) of migration 0004: full-text DDL that no model describes. SQLite adds
#: shadow tables named ``search_fts_*``.
FTS_TABLE = "search_fts"
FTS_COLUMN = "fts_vector"
FTS_INDEX = "ix_search_text_fts"
_TS_CONFIG = "'simple'::regconfig"
# The tables, for Core upserts (SQLModel does not type ``__table__``).
_ENTRY = cast(Table, SearchEntry.metadata.tables[SearchEntry.__tablename__])
_TEXT = cast(Table, SearchText.metadata.tables[SearchText.__tablename__])


def is_fulltext_object(name: str | None) -> bool:
    """Whether a schema object is full-text DDL outside the models (for schema checks)."""
    return name is not None and (
        name in (FTS_TABLE, FTS_COLUMN, FTS_INDEX) or name.startswith(f"{FTS_TABLE}_")
    )


# -- words --------------------------------------------------------------------------------
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff]")
_WORD = re.compile(r"[^\W_]+")
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"})


def fold(value: str) -> str:
    """Lower case, without accents, ligatures spelt out: "Cœur ÉCHÉANCE" → "coeur echeance"."""
    decomposed = unicodedata.normalize("NFKD", value.translate(_LIGATURES).casefold())
    return _COMBINING.sub("", decomposed)


def words(value: str) -> list[str]:
    """The folded words of ``value``: what the full-text index holds and a query matches."""
    return [w for w in _WORD.findall(fold(value)) if len(w) <= MAX_WORD_CHARS]


def _squash(value: str) -> str:
    return re.sub(r"[\s.\-]", "", value).upper()


# -- text of a document ---------------------------------------------------------------------
class Part(Protocol):
    """A file of a document (``archive.deposit.Derived`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def media_type(self) -> str: ...


XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")
_XML_NOISE = re.compile(
    r"<!--.*?-->|<\?.*?\?>|<!DOCTYPE[^>]*>"
    # Attachments (UBL EmbeddedDocumentBinaryObject, CII AttachmentBinaryObject): base64.
    r"|<((?:[\w.-]+:)?\w*BinaryObject)\b[^>]*>.*?</\1\s*>",
    re.DOTALL,
)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def xml_text(data: bytes) -> str:
    """The character data of an XML document, one space between elements.

    Tags are stripped with expressions, never parsed: nothing here resolves an entity or a
    DTD, so no XML received can reach outside itself through the indexer.
    """
    declared = _XML_ENCODING.match(data[:200])
    encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        document = data.decode(encoding, errors="replace")
    except LookupError:
        document = data.decode("utf-8", errors="replace")
    document = _XML_NOISE.sub(" ", document.lstrip("\ufeff"))
    document = _CDATA.sub(lambda m: html.escape(m.group(1)), document)
    return " ".join(html.unescape(_TAG.sub(" ", document)).split())


def _is_text(name: str, media_type: str) -> bool:
    return name == "ocr.txt" or media_type.startswith("text/plain") or media_type in XML_MEDIA_TYPES


def document_text(
    parts: Iterable[Part],
    *,
    original: bytes | None = None,
    original_media_type: str | None = None,
) -> str | None:
    """What a document says, for full-text search: the OCR text (``ocr.txt``) of a scan,
    the XML of an e-invoice (the original CII/UBL, or the XML embedded in a Factur-X
    PDF). None when nothing among ``parts`` is text (the index then keeps what it had)."""
    texts: list[str] = []
    if original is not None and original_media_type in XML_MEDIA_TYPES:
        texts.append(xml_text(original))
    # By name, so that a reindex from the store puts the pieces in the same order.
    for part in sorted(parts, key=lambda p: p.name):
        if not _is_text(part.name, part.media_type):
            continue
        if part.media_type in XML_MEDIA_TYPES:
            texts.append(xml_text(part.data))
        else:
            texts.append(part.data.decode("utf-8", errors="replace"))
    if not texts:
        return None
    return "\n".join(texts)[:MAX_TEXT_CHARS]


# -- keeping the index ----------------------------------------------------------------------
def _latest_invoice(session: Session, document_id: uuid.UUID) -> InvoiceData | None:
    data = session.exec(
        select(InvoiceRecord.data)
        .where(InvoiceRecord.document_id == document_id)
        .order_by(col(InvoiceRecord.version).desc())
        .limit(1)
    ).first()
    return InvoiceData.model_validate(data) if data is not None else None


def _invoice_words(invoice: InvoiceData | None, document: Document) -> list[str]:
    if invoice is None:
        values: list[str | None] = []
    else:
        values = [
            invoice.invoice_number,
            invoice.seller_name,
            invoice.seller_siren,
            invoice.seller_siret,
            invoice.seller_vat,
            invoice.buyer_name,
            invoice.buyer_siren,
            invoice.buyer_vat,
            invoice.po_reference,
            invoice.iban,
            *(line.name for line in invoice.lines),
        ]
    values.append(document.original_filename)
    return words(" ".join(v for v in values if v))


def entry_values(document: Document, invoice: InvoiceData | None) -> dict[str, Any]:
    """The ``search_index`` row of ``document`` (every column but ``id``)."""
    issue = invoice.issue_date if invoice else None
    supplier = invoice.seller_name if invoice else None
    return {
        "document_id": document.id,
        "company_id": document.company_id,
        "kind": document.kind,
        "state": document.state,
        "supplier_name": supplier,
        "supplier_key": " ".join(words(supplier)) if supplier else None,
        "siren": invoice.seller_siren if invoice else None,
        "vat": _squash(invoice.seller_vat) if invoice and invoice.seller_vat else None,
        "invoice_number": invoice.invoice_number if invoice else None,
        "issue_date": issue,
        # The same rule as archive.service.fiscal_year, which guards a document's pages.
        "fiscal_year": issue.year if issue else document.received_at.astimezone(UTC).year,
        "total_ttc": invoice.total_ttc if invoice else None,
        "currency": invoice.currency if invoice else None,
        "received_at": document.received_at,
        "indexed_at": utcnow(),
    }


def text_values(document: Document, invoice: InvoiceData | None, text: str) -> dict[str, Any]:
    """The ``search_text`` row of ``document`` (every column but ``entry_id``)."""
    return {"text": text, "terms": " ".join([*_invoice_words(invoice, document), *words(text)])}


class Latest(Enum):
    """Read the document's latest recorded invoice data from the database."""

    RECORDED = "recorded"


def index_document(
    session: Session,
    document: Document,
    *,
    text: str | None = None,
    invoice: InvoiceData | Latest | None = Latest.RECORDED,
) -> None:
    """Write ``document``'s index rows from its state, its invoice data and ``text`` (None
    keeps the text already indexed), inside the caller's transaction.

    ``invoice`` is the document's latest invoice data when the caller has just recorded it
    (or knows there is none); by default it is read back.
    """
    session.flush()
    if text is None:
        text = session.exec(
            select(SearchText.text)
            .join(SearchEntry, col(SearchEntry.id) == col(SearchText.entry_id))
            .where(SearchEntry.document_id == document.id)
        ).first()
    if isinstance(invoice, Latest):
        invoice = _latest_invoice(session, document.id)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # Upserts: a reindex and a deposit may race on the same document.
    entry = entry_values(document, invoice)
    entry_id = session.execute(
        insert(_ENTRY)
        .values(**entry)
        .on_conflict_do_update(
            index_elements=["document_id"],
            set_={k: v for k, v in entry.items() if k != "document_id"},
        )
        .returning(_ENTRY.c.id)
    ).scalar_one()
    found = text_values(document, invoice, text or "")
    session.execute(
        insert(_TEXT)
        .values(entry_id=entry_id, **found)
        .on_conflict_do_update(index_elements=["entry_id"], set_=found)
    )


@dataclass(frozen=True)
class _Stored:
    name: str
    data: bytes
    media_type: str


def _stored_text(archive: Archive, document: Document, artifacts: Sequence[Artifact]) -> str | None:
    """The text of a document as :func:`document_text` reads it, from the stored artifacts."""

    def read(artifact: Artifact) -> bytes:
        return archive.store.get(artifact.storage_key, artifact.storage_version)

    parts = [
        _Stored(a.name, read(a), a.media_type)
        for a in artifacts
        if a.role == "derived" and _is_text(a.name, a.media_type)
    ]
    original = next((a for a in artifacts if a.name == "original"), None)
    xml_original = original is not None and document.media_type in XML_MEDIA_TYPES
    return document_text(
        parts,
        original=read(original) if xml_original and original is not None else None,
        original_media_type=document.media_type,
    )


def reindex(archive: Archive, *, actor: str = "system", batch: int = 200) -> int:
    """Rebuild every document's index row from the registry and the stored text; returns
    how many documents were indexed. Safe to run while documents arrive (upserts, one
    transaction per batch); journaled as "search.reindexed"."""
    done = 0
    after: uuid.UUID | None = None
    while True:
        with session_scope(archive.engine, read_only=True) as session:
            query = select(Document).order_by(col(Document.id)).limit(batch)
            if after is not None:
                query = query.where(col(Document.id) > after)
            documents = list(session.exec(query))
            ids = [d.id for d in documents]
            artifacts: dict[uuid.UUID, list[Artifact]] = {key: [] for key in ids}
            for artifact in session.exec(
                select(Artifact).where(col(Artifact.document_id).in_(ids))
            ):
                artifacts[artifact.document_id].append(artifact)
            session.expunge_all()
        if not documents:
            break
        # Reading the store (S3 maybe) happens before the write transaction opens.
        texts = {d.id: _stored_text(archive, d, artifacts[d.id]) for d in documents}
        with session_scope(archive.engine) as session:
            for key in ids:
                # Read again under the write transaction: the state may have moved meanwhile.
                # No text found keeps the indexed text (artifacts are only ever added).
                current = session.get(Document, key)
                if current is not None:
                    index_document(session, current, text=texts[key])
        done += len(documents)
        after = documents[-1].id
    with session_scope(archive.engine) as session:
        archive.journal.append(
            session,
            actor=actor,
            action="search.reindexed",
            subject="search",
            payload={"documents": done},
        )
    return done


# -- the query ------------------------------------------------------------------------------
class SortKey(StrEnum):
    issue_date = "issue_date"
    total_ttc = "total_ttc"
    received_at = "received_at"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


class SearchQuery(BaseModel):
    """What an auditor or an accountant asks for. Every filter given must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    q: str | None = Field(default=None, max_length=500)
    """Words of the text, the supplier, the number...: each must appear (accents and case
    ignored); a word ending in ``*`` is a prefix; "F-2024-001" matches as a phrase."""
    supplier: str | None = Field(default=None, max_length=200)
    """Start of the supplier's name (accents and case ignored)."""
    siren: str | None = None
    """The supplier's SIREN (9 digits; a SIRET's first 9 are taken)."""
    vat: str | None = Field(default=None, max_length=30)
    """The supplier's VAT number (spaces and case ignored)."""
    number: str | None = Field(default=None, max_length=100)
    """The invoice number, exactly."""
    date_from: date | None = None
    """Issue date on or after (documents without an issue date are left out)."""
    date_to: date | None = None
    """Issue date on or before."""
    amount_min: Decimal | None = None
    """Total TTC (BT-112) at least."""
    amount_max: Decimal | None = None
    """Total TTC at most."""
    kind: DocumentKind | None = None
    state: DocumentState | None = None
    company: str | None = None
    """Company id or SIREN; a token limited to a company may only name its own."""
    sort: SortKey = SortKey.issue_date
    """``issue_date``, ``total_ttc`` (alias ``amount``) or ``received_at``; missing values
    come last either way."""
    order: SortOrder = SortOrder.desc
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)

    @field_validator(
        "q", "supplier", "siren", "vat", "number", "company", "kind", "state", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("siren")
    @classmethod
    def _siren(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = re.sub(r"[\s.]", "", value)
        if not (digits.isdigit() and len(digits) in (9, 14)):
            raise ValueError("a SIREN is 9 digits (or give a 14-digit SIRET)")
        return digits[:9]

    @field_validator("vat")
    @classmethod
    def _vat(cls, value: str | None) -> str | None:
        return _squash(value) if value else None

    @field_validator("amount_min", "amount_max", mode="before")
    @classmethod
    def _french_decimal(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.replace("\u00a0", "").replace(" ", "").replace(",", ".") or None
        return value

    @field_validator("sort", mode="before")
    @classmethod
    def _sort_alias(cls, value: Any) -> Any:
        return SortKey.total_ttc if value == "amount" else value

    @model_validator(mode="after")
    def _ranges(self) -> SearchQuery:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")
        if (
            self.amount_min is not None
            and self.amount_max is not None
            and self.amount_min > self.amount_max
        ):
            raise ValueError("amount_min is above amount_max")
        return self


@dataclass(frozen=True)
class Phrase:
    """Words that must follow each other; the last one may be a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


def phrases(q: str | None) -> list[Phrase]:
    """The parsed ``q``: one phrase per space-separated word of the query."""
    found = []
    for raw in (q or "").split():
        tokens = words(raw)
        if tokens:
            found.append(Phrase(tuple(tokens), prefix=raw.endswith("*")))
    return found


def _fts5_query(parsed: Sequence[Phrase]) -> str:
    # Tokens are letters and digits only, so quoting cannot be broken out of.
    return " AND ".join(f'"{" ".join(p.words)}"' + (" *" if p.prefix else "") for p in parsed)


def _tsquery(parsed: Sequence[Phrase]) -> str:
    def one(p: Phrase) -> str:
        last = p.words[-1] + (":*" if p.prefix else "")
        return "(" + " <-> ".join([*p.words[:-1], last]) + ")"

    return " & ".join(one(p) for p in parsed)


def _matches(dialect: str, parsed: Sequence[Phrase]) -> ColumnElement[bool]:
    if dialect == "postgresql":
        vector: ColumnElement[Any] = literal_column(f"{_TEXT.name}.{FTS_COLUMN}")
        asked = func.to_tsquery(literal_column(_TS_CONFIG), _tsquery(parsed))
        found = select(col(SearchText.entry_id)).where(vector.bool_op("@@")(asked))
        return col(SearchEntry.id).in_(found)
    fts = table(FTS_TABLE, column("rowid"))
    hits = select(fts.c.rowid).where(literal_column(FTS_TABLE).op("MATCH")(_fts5_query(parsed)))
    return col(SearchEntry.id).in_(hits)


def _prefix(dialect: str, key: str) -> ColumnElement[bool]:
    column_ = col(SearchEntry.supplier_key)
    if dialect == "postgresql":
        # Served by the text_pattern_ops index; the key has no % or _ (letters, digits,
        # single spaces).
        return column_.like(f"{key}%")
    # SQLite's LIKE ignores case and skips the index; a range on the binary order is exact.
    return (column_ >= key) & (column_ < key[:-1] + chr(ord(key[-1]) + 1))


# -- scope ----------------------------------------------------------------------------------
def scope_conditions(
    session: Session, principal: Principal, company: str | None
) -> list[ColumnElement[bool]]:
    """What ``principal`` may see, as conditions on ``search_index``.

    Raises when the caller may not search at all (role, expiry, an auditor token not
    limited to a company) or names a company outside its own.
    """
    principal.require(*SEARCHERS)
    principal.require_live()
    if principal.role is Role.auditor and principal.company_id is None:
        raise AccessDenied(
            "an auditor token must be limited to one company to search",
            role=principal.role.value,
        )
    conditions: list[ColumnElement[bool]] = []
    company_id = principal.company_id
    if company is not None:
        try:
            asked = resolve_company(session, company).id
        except UnknownCompany:
            if principal.company_id is None:
                raise
            asked = None  # no telling a limited token which other companies exist
        if asked is None or (principal.company_id is not None and asked != principal.company_id):
            raise AccessDenied(
                "this token is limited to another company", role=principal.role.value
            )
        company_id = asked
    if company_id is not None:
        conditions.append(col(SearchEntry.company_id) == company_id)
    if principal.fiscal_years is not None:
        conditions.append(col(SearchEntry.fiscal_year).in_(principal.fiscal_years))
    return conditions


def filter_conditions(dialect: str, query: SearchQuery) -> list[ColumnElement[bool]]:
    """The query's own filters, as conditions on ``search_index``."""
    e = SearchEntry
    conditions: list[ColumnElement[bool]] = []
    if query.supplier and (key := " ".join(words(query.supplier))):
        conditions.append(_prefix(dialect, key))
    if query.siren:
        conditions.append(col(e.siren) == query.siren)
    if query.vat:
        conditions.append(col(e.vat) == query.vat)
    if query.number:
        conditions.append(col(e.invoice_number) == query.number.strip())
    if query.date_from:
        conditions.append(col(e.issue_date) >= query.date_from)
    if query.date_to:
        conditions.append(col(e.issue_date) <= query.date_to)
    if query.amount_min is not None:
        conditions.append(col(e.total_ttc) >= query.amount_min)
    if query.amount_max is not None:
        conditions.append(col(e.total_ttc) <= query.amount_max)
    if query.kind:
        conditions.append(col(e.kind) == query.kind.value)
    if query.state:
        conditions.append(col(e.state) == query.state.value)
    if parsed := phrases(query.q):
        conditions.append(_matches(dialect, parsed))
    return conditions


# -- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchHit:
    document_id: uuid.UUID
    company_id: uuid.UUID
    supplier: str | None
    siren: str | None
    vat: str | None
    number: str | None
    issue_date: date | None
    total_ttc: Decimal | None
    currency: str | None
    kind: str
    state: str
    received_at: datetime
    #: Some text around the first word of ``q`` found, when there is one.
    snippet: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "document_id": str(self.document_id),
            "company_id": str(self.company_id),
            "supplier": self.supplier,
            "siren": self.siren,
            "vat": self.vat,
            "number": self.number,
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "total_ttc": str(self.total_ttc) if self.total_ttc is not None else None,
            "currency": self.currency,
            "kind": self.kind,
            "state": self.state,
            "received_at": self.received_at.isoformat(),
            "snippet": self.snippet,
        }


@dataclass(frozen=True)
class SearchPage:
    total: int
    items: tuple[SearchHit, ...]
    limit: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "items": [hit.to_json() for hit in self.items],
        }


_SNIPPET_CHARS = 160
#: Every character that folds to a given letter (e → e, E, é, É, è, ê...), to find a folded
#: word in the text as written without folding the whole text.
_VARIANTS: dict[str, str] = {}
for _code in (*range(0x41, 0x5B), *range(0x61, 0x7B), *range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
    if len(_folded := fold(chr(_code))) == 1:
        _VARIANTS[_folded] = _VARIANTS.get(_folded, "") + chr(_code)


def _written(word: str) -> str:
    """A pattern matching ``word`` (folded) as it may be written, accents and case included."""
    return "".join(f"[{re.escape(_VARIANTS[c])}]" if c in _VARIANTS else re.escape(c) for c in word)


def snippet(text: str, parsed: Sequence[Phrase]) -> str | None:
    """The text around the first query word found in ``text``, or None."""
    if not text or not parsed:
        return None
    best: int | None = None
    for phrase in parsed:
        found = re.search(rf"(?<![^\W_]){_written(phrase.words[0])}", text)
        if found and (best is None or found.start() < best):
            best = found.start()
    if best is None:
        return None
    start = max(0, best - _SNIPPET_CHARS // 3)
    end = min(len(text), start + _SNIPPET_CHARS)
    body = " ".join(text[start:end].split())
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")


def _order_by(query: SearchQuery) -> list[Any]:
    key = {
        SortKey.issue_date: col(SearchEntry.issue_date),
        SortKey.total_ttc: col(SearchEntry.total_ttc),
        SortKey.received_at: col(SearchEntry.received_at),
    }[query.sort]
    if query.order is SortOrder.asc:
        return [key.asc().nulls_last(), col(SearchEntry.id).asc()]
    return [key.desc().nulls_last(), col(SearchEntry.id).desc()]


def search(archive: Archive, principal: Principal, query: SearchQuery) -> SearchPage:
    """One page of the documents matching ``query`` within what ``principal`` may see."""
    dialect = archive.engine.dialect.name
    parsed = phrases(query.q)
    with session_scope(archive.engine, read_only=True) as session:
        scope = scope_conditions(session, principal, query.company)
        conditions = [*scope, *filter_conditions(dialect, query)]
        total = session.exec(select(func.count()).select_from(SearchEntry).where(*conditions)).one()
        e = SearchEntry
        shown = [
            col(e.id),
            col(e.document_id),
            col(e.company_id),
            col(e.supplier_name),
            col(e.siren),
            col(e.vat),
            col(e.invoice_number),
            col(e.issue_date),
            col(e.total_ttc),
            col(e.currency),
            col(e.kind),
            col(e.state),
            col(e.received_at),
        ]
        rows = session.execute(
            sa_select(*shown)
            .where(*conditions)
            .order_by(*_order_by(query))
            .limit(query.limit)
            .offset(query.offset)
        ).all()
        texts: dict[int, str] = {}
        if parsed and rows:  # the text only when there are snippets to cut from it
            found = session.execute(
                sa_select(col(SearchText.entry_id), col(SearchText.text)).where(
                    col(SearchText.entry_id).in_([row.id for row in rows])
                )
            )
            texts = {entry_id: text for entry_id, text in found}
        items = tuple(
            SearchHit(
                document_id=row.document_id,
                company_id=row.company_id,
                supplier=row.supplier_name,
                siren=row.siren,
                vat=row.vat,
                number=row.invoice_number,
                issue_date=row.issue_date,
                total_ttc=row.total_ttc,
                currency=row.currency,
                kind=row.kind,
                state=row.state,
                received_at=row.received_at,
                snippet=snippet(texts.get(row.id, ""), parsed) if parsed else None,
            )
            for row in rows
        )
    page = SearchPage(total=total, items=items, limit=query.limit, offset=query.offset)
    if principal.role is Role.auditor:
        _journal(archive, principal, query, page)
    return page


def _journal(archive: Archive, principal: Principal, query: SearchQuery, page: SearchPage) -> None:
    with session_scope(archive.engine) as session:
        archive.journal.append(
            session,
            actor=principal.actor,
            action="search.performed",
            subject=f"token:{principal.token_id}" if principal.token_id else "search",
            payload={
                "query": query.model_dump(mode="json", exclude_none=True),
                "total": page.total,
                "returned": len(page.items),
                "scope": {
                    "company_id": principal.company_id,
                    "fiscal_years": list(principal.fiscal_years)
                    if principal.fiscal_years is not None
                    else None,
                },
            },
        )


__all__ = [
    "SEARCHERS",
    "SearchHit",
    "SearchPage",
    "SearchQuery",
    "SortKey",
    "SortOrder",
    "document_text",
    "fold",
    "index_document",
    "reindex",
    "search",
    "words",
]
