"""Reader of UN/CEFACT Cross Industry Invoice (CII) documents into :class:`InvoiceData`.

Reads CII D16B and D22B (``CrossIndustryInvoice:100``: Factur-X, ZUGFeRD 2, XRechnung,
the French EXTENDED-CTC-FR) and ZUGFeRD 1.0 (``CrossIndustryDocument``), whose element
names differ but whose meaning maps onto the same EN 16931 terms. Amounts are kept as
written, sign included; the type code (BT-3) says whether it is a credit note.

Provenance XPaths use the prefixes of :data:`NAMESPACES` (or :data:`ZUGFERD1_NAMESPACES`).
This module reads; it does not validate (``validate.py`` does) and never touches bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from archive.invoice import InvoiceData, InvoiceLine, VatBreakdown
from capture.einvoice._xpath import (
    CII_NAMESPACES,
    ZUGFERD1_NAMESPACES,
    Collector,
    Element,
    child,
    decimal_or_none,
    first,
    in_currency,
    parse_date_102,
    put_company_ids,
    text_of,
)
from capture.errors import NotAnInvoice

NAMESPACES = CII_NAMESPACES
__all__ = [
    "NAMESPACES",
    "ZUGFERD1_NAMESPACES",
    "guideline_id",
    "is_cii",
    "is_zugferd1",
    "parse_cii",
]


@dataclass(frozen=True)
class _Dialect:
    """Element paths of one CII generation, relative to the element named in each comment."""

    namespaces: dict[str, str]
    root: str
    context: str  # root -> guideline parameter ID (BT-24)
    document: str  # root -> header document
    transaction: str  # root -> trade transaction
    agreement: str  # transaction ->
    settlement: str  # transaction ->
    order_reference: str  # agreement -> BT-13
    summation: str  # settlement ->
    rate: str  # ApplicableTradeTax -> percent (BT-119, BT-152)
    line_agreement: str  # line ->
    line_delivery: str  # line ->
    line_settlement: str  # line ->
    line_summation: str  # line settlement ->


_CII_100 = _Dialect(
    namespaces=dict(CII_NAMESPACES),
    root=f"{{{CII_NAMESPACES['rsm']}}}CrossIndustryInvoice",
    context="rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID",
    document="rsm:ExchangedDocument",
    transaction="rsm:SupplyChainTradeTransaction",
    agreement="ram:ApplicableHeaderTradeAgreement",
    settlement="ram:ApplicableHeaderTradeSettlement",
    order_reference="ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID",
    summation="ram:SpecifiedTradeSettlementHeaderMonetarySummation",
    rate="ram:RateApplicablePercent",
    line_agreement="ram:SpecifiedLineTradeAgreement",
    line_delivery="ram:SpecifiedLineTradeDelivery",
    line_settlement="ram:SpecifiedLineTradeSettlement",
    line_summation="ram:SpecifiedTradeSettlementLineMonetarySummation",
)
_ZUGFERD_1 = _Dialect(
    namespaces=dict(ZUGFERD1_NAMESPACES),
    root=f"{{{ZUGFERD1_NAMESPACES['rsm']}}}CrossIndustryDocument",
    context=(
        "rsm:SpecifiedExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter"
        "/ram:ID"
    ),
    document="rsm:HeaderExchangedDocument",
    transaction="rsm:SpecifiedSupplyChainTradeTransaction",
    agreement="ram:ApplicableSupplyChainTradeAgreement",
    settlement="ram:ApplicableSupplyChainTradeSettlement",
    order_reference="ram:BuyerOrderReferencedDocument/ram:ID",
    summation="ram:SpecifiedTradeSettlementMonetarySummation",
    rate="ram:ApplicablePercent",
    line_agreement="ram:SpecifiedSupplyChainTradeAgreement",
    line_delivery="ram:SpecifiedSupplyChainTradeDelivery",
    line_settlement="ram:SpecifiedSupplyChainTradeSettlement",
    line_summation="ram:SpecifiedTradeSettlementMonetarySummation",
)
_DIALECTS = {dialect.root: dialect for dialect in (_CII_100, _ZUGFERD_1)}


def is_cii(root: Element) -> bool:
    return root.tag in _DIALECTS


def is_zugferd1(root: Element) -> bool:
    """Whether the root is a ZUGFeRD 1.0 ``CrossIndustryDocument``."""
    return root.tag == _ZUGFERD_1.root


def guideline_id(root: Element) -> str | None:
    """BT-24, the specification identifier, or ``None``."""
    dialect = _dialect(root)
    return text_of(root.find(dialect.context, dialect.namespaces))


def parse_cii(root: Element) -> InvoiceData:
    """Read a CII invoice or credit note (D16B/D22B or ZUGFeRD 1.0) into InvoiceData."""
    dialect = _dialect(root)
    ns = dialect.namespaces
    out = Collector(ns)

    document = root.find(dialect.document, ns)
    transaction = root.find(dialect.transaction, ns)
    agreement = child(transaction, dialect.agreement, ns)
    settlement = child(transaction, dialect.settlement, ns)

    if document is not None:
        out.text("invoice_number", document.find("ram:ID", ns))
        out.text("type_code", document.find("ram:TypeCode", ns))
        _date(out, "issue_date", document.find("ram:IssueDateTime/udt:DateTimeString", ns))

    currency_element = child(settlement, "ram:InvoiceCurrencyCode", ns)
    out.text("currency", currency_element)
    currency = text_of(currency_element)

    if settlement is not None:
        _date(
            out,
            "due_date",
            first(
                settlement.iterfind(
                    "ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString", ns
                )
            ),
        )
    out.text("po_reference", child(agreement, dialect.order_reference, ns))

    _party(out, child(agreement, "ram:SellerTradeParty", ns), "seller", ns)
    _party(out, child(agreement, "ram:BuyerTradeParty", ns), "buyer", ns)

    summation = child(settlement, dialect.summation, ns)
    if summation is not None:
        out.amount("total_lines", summation.find("ram:LineTotalAmount", ns))
        out.amount("total_allowances", summation.find("ram:AllowanceTotalAmount", ns))
        out.amount("total_charges", summation.find("ram:ChargeTotalAmount", ns))
        out.amount(
            "total_ht",
            in_currency(summation.findall("ram:TaxBasisTotalAmount", ns), currency),
        )
        out.amount("total_vat", in_currency(summation.findall("ram:TaxTotalAmount", ns), currency))
        out.amount(
            "total_ttc", in_currency(summation.findall("ram:GrandTotalAmount", ns), currency)
        )
        out.amount("prepaid", summation.find("ram:TotalPrepaidAmount", ns))
        out.amount("rounding", summation.find("ram:RoundingAmount", ns))
        out.amount(
            "amount_due", in_currency(summation.findall("ram:DuePayableAmount", ns), currency)
        )

    if settlement is not None:
        _payment(out, settlement, ns)
        _vat_breakdown(out, settlement, dialect)
    if transaction is not None:
        _lines(out, transaction, dialect)
    return out.build()


def _dialect(root: Element) -> _Dialect:
    dialect = _DIALECTS.get(root.tag)
    if dialect is None:
        raise NotAnInvoice(
            f"the XML root {etree.QName(root).text} is not a CII invoice "
            "(CrossIndustryInvoice or ZUGFeRD 1 CrossIndustryDocument)",
            root=etree.QName(root).text,
        )
    return dialect


def _date(out: Collector, field: str, element: Element | None) -> None:
    value = text_of(element)
    if element is None or value is None:
        return
    xpath = out.path(element)
    out.put(
        field, parse_date_102(value, field=field, xpath=xpath, fmt=element.get("format")), xpath
    )


def _party(out: Collector, party: Element | None, role: str, ns: dict[str, str]) -> None:
    if party is None:
        return
    out.text(f"{role}_name", party.find("ram:Name", ns))
    for registration in party.iterfind("ram:SpecifiedTaxRegistration/ram:ID", ns):
        if registration.get("schemeID") == "VA":
            out.text(f"{role}_vat", registration)
            break
    put_company_ids(
        out,
        party,
        role,
        legal=party.find("ram:SpecifiedLegalOrganization/ram:ID", ns),
        identifiers=party.iterfind("ram:GlobalID", ns),
    )


def _payment(out: Collector, settlement: Element, ns: dict[str, str]) -> None:
    for means in settlement.iterfind("ram:SpecifiedTradeSettlementPaymentMeans", ns):
        account = means.find("ram:PayeePartyCreditorFinancialAccount/ram:IBANID", ns)
        if text_of(account) is None:
            account = means.find("ram:PayeePartyCreditorFinancialAccount/ram:ProprietaryID", ns)
        if text_of(account) is None:
            continue
        out.compact_text("iban", account)
        out.compact_text(
            "bic", means.find("ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID", ns)
        )
        return


def _vat_breakdown(out: Collector, settlement: Element, dialect: _Dialect) -> None:
    ns = dialect.namespaces
    groups = settlement.findall("ram:ApplicableTradeTax", ns)
    items = []
    for tax in groups:
        base = decimal_or_none(tax.find("ram:BasisAmount", ns), field="vat_base", collector=out)
        amount = decimal_or_none(
            tax.find("ram:CalculatedAmount", ns), field="vat_amount", collector=out
        )
        if base is None or amount is None:
            # BT-116 and BT-117 are mandatory: validation reports the gap; no number is
            # invented for it here.
            continue
        items.append(
            VatBreakdown(
                category=text_of(tax.find("ram:CategoryCode", ns)),
                rate=decimal_or_none(tax.find(dialect.rate, ns), field="vat_rate", collector=out),
                base=base,
                amount=amount,
                exemption_reason=text_of(tax.find("ram:ExemptionReason", ns)),
            )
        )
    out.collection("vat_breakdown", tuple(items), groups)


def _lines(out: Collector, transaction: Element, dialect: _Dialect) -> None:
    ns = dialect.namespaces
    elements = transaction.findall("ram:IncludedSupplyChainTradeLineItem", ns)
    lines = []
    for line in elements:
        settlement = line.find(dialect.line_settlement, ns)
        tax = child(settlement, "ram:ApplicableTradeTax", ns)
        quantity = child(line.find(dialect.line_delivery, ns), "ram:BilledQuantity", ns)
        price = child(
            line.find(dialect.line_agreement, ns),
            "ram:NetPriceProductTradePrice/ram:ChargeAmount",
            ns,
        )
        lines.append(
            InvoiceLine(
                line_id=text_of(line.find("ram:AssociatedDocumentLineDocument/ram:LineID", ns)),
                name=text_of(line.find("ram:SpecifiedTradeProduct/ram:Name", ns)),
                quantity=decimal_or_none(quantity, field="line_quantity", collector=out),
                unit=None if quantity is None else quantity.get("unitCode"),
                net_price=decimal_or_none(price, field="line_net_price", collector=out),
                net_amount=decimal_or_none(
                    child(
                        settlement,
                        f"{dialect.line_summation}/ram:LineTotalAmount",
                        ns,
                    ),
                    field="line_net_amount",
                    collector=out,
                ),
                vat_category=text_of(child(tax, "ram:CategoryCode", ns)),
                vat_rate=decimal_or_none(
                    child(tax, dialect.rate, ns), field="line_vat_rate", collector=out
                ),
            )
        )
    out.collection("lines", tuple(lines), elements)
