"""The invoice vocabulary every source fills the same way (EN 16931 terms).

Scan extraction (OCR), e-invoice parsing (XML) and human corrections all produce an
:class:`InvoiceData`; workflow and the accounting bridge read it. It lives in ``archive``
because both ``capture`` and ``accounting_bridge`` need it and neither may import the
other. Money is ``Decimal``, dates are ``date``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FieldSource(StrEnum):
    xml = "xml"
    ocr = "ocr"
    human = "human"


class Provenance(BaseModel):
    """Where one field's value was read, and how sure we are of it."""

    model_config = ConfigDict(frozen=True)

    source: FieldSource
    confidence: float = Field(ge=0.0, le=1.0, default=1.0)
    #: An XPath for XML; for OCR, the page (1-based) and a box in PDF points.
    xpath: str | None = None
    page: int | None = None
    bbox: tuple[float, float, float, float] | None = None


class VatBreakdown(BaseModel):
    """BG-23: one VAT category and rate with its taxable base and tax."""

    model_config = ConfigDict(frozen=True)

    category: str | None = None  # BT-118 (S, Z, E, AE, K, G, O, L, M)
    rate: Decimal | None = None  # BT-119, percent
    base: Decimal  # BT-116
    amount: Decimal  # BT-117
    exemption_reason: str | None = None  # BT-120


class InvoiceLine(BaseModel):
    """BG-25."""

    model_config = ConfigDict(frozen=True)

    line_id: str | None = None  # BT-126
    name: str | None = None  # BT-153
    quantity: Decimal | None = None  # BT-129
    unit: str | None = None  # BT-130
    net_price: Decimal | None = None  # BT-146
    net_amount: Decimal | None = None  # BT-131
    vat_category: str | None = None  # BT-151
    vat_rate: Decimal | None = None  # BT-152


class InvoiceData(BaseModel):
    """Header, parties, totals, VAT breakdown and lines of one invoice or credit note."""

    model_config = ConfigDict(frozen=True)

    invoice_number: str | None = None  # BT-1
    issue_date: date | None = None  # BT-2
    type_code: str | None = None  # BT-3 (380 invoice, 381 credit note, 384, 389...)
    currency: str | None = None  # BT-5
    due_date: date | None = None  # BT-9
    po_reference: str | None = None  # BT-13
    seller_name: str | None = None  # BT-27
    seller_siren: str | None = None  # from BT-30 (SIREN, or the first 9 digits of a SIRET)
    seller_siret: str | None = None  # BT-30 when it is a SIRET
    seller_vat: str | None = None  # BT-31
    buyer_name: str | None = None  # BT-44
    buyer_siren: str | None = None  # BT-47
    buyer_vat: str | None = None  # BT-48
    total_lines: Decimal | None = None  # BT-106
    total_allowances: Decimal | None = None  # BT-107
    total_charges: Decimal | None = None  # BT-108
    total_ht: Decimal | None = None  # BT-109
    total_vat: Decimal | None = None  # BT-110
    total_ttc: Decimal | None = None  # BT-112
    prepaid: Decimal | None = None  # BT-113
    rounding: Decimal | None = None  # BT-114
    amount_due: Decimal | None = None  # BT-115
    vat_breakdown: tuple[VatBreakdown, ...] = ()  # BG-23
    iban: str | None = None  # BT-84
    bic: str | None = None  # BT-86
    lines: tuple[InvoiceLine, ...] = ()  # BG-25
    #: Field name -> where it was read (absent for fields left empty).
    provenance: dict[str, Provenance] = Field(default_factory=dict)
