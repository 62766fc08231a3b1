"""Reader of OASIS UBL 2.1 ``Invoice`` and ``CreditNote`` documents into :class:`InvoiceData`.

Follows the EN 16931 UBL binding (Peppol BIS 3, XRechnung UBL and the French CTC
profiles use it too). Amounts are kept as written; for a credit note the type code
(BT-3, ``CreditNoteTypeCode``) says so, amounts stay positive as in the document.

Provenance XPaths use the prefixes of :data:`INVOICE_NAMESPACES` or
:data:`CREDITNOTE_NAMESPACES` (the root element is ``ubl:Invoice`` / ``ubl:CreditNote``).
This module reads; it does not validate and never touches bytes.
"""

from __future__ import annotations

from lxml import etree

from archive.invoice import InvoiceData, InvoiceLine, VatBreakdown
from capture.einvoice._xpath import (
    UBL_CREDITNOTE_NAMESPACES,
    UBL_INVOICE_NAMESPACES,
    Collector,
    Element,
    child,
    decimal_or_none,
    in_currency,
    parse_iso_date,
    put_company_ids,
    text_of,
)
from capture.errors import NotAnInvoice

INVOICE_NAMESPACES = UBL_INVOICE_NAMESPACES
CREDITNOTE_NAMESPACES = UBL_CREDITNOTE_NAMESPACES
INVOICE_ROOT = f"{{{INVOICE_NAMESPACES['ubl']}}}Invoice"
CREDITNOTE_ROOT = f"{{{CREDITNOTE_NAMESPACES['ubl']}}}CreditNote"

__all__ = [
    "CREDITNOTE_NAMESPACES",
    "CREDITNOTE_ROOT",
    "INVOICE_NAMESPACES",
    "INVOICE_ROOT",
    "guideline_id",
    "parse_ubl",
]


def guideline_id(root: Element) -> str | None:
    """BT-24 (``cbc:CustomizationID``), or ``None``."""
    return text_of(root.find("cbc:CustomizationID", _namespaces(root)))


def parse_ubl(root: Element) -> InvoiceData:
    """Read a UBL 2.1 Invoice or CreditNote into InvoiceData."""
    ns = _namespaces(root)
    credit_note = root.tag == CREDITNOTE_ROOT
    kind = "CreditNote" if credit_note else "Invoice"
    out = Collector(ns)

    out.text("invoice_number", root.find("cbc:ID", ns))
    _date(out, "issue_date", root.find("cbc:IssueDate", ns))
    out.text("type_code", root.find(f"cbc:{kind}TypeCode", ns))
    currency_element = root.find("cbc:DocumentCurrencyCode", ns)
    out.text("currency", currency_element)
    currency = text_of(currency_element)
    # BT-9: cbc:DueDate in an Invoice; a CreditNote has it only under PaymentMeans.
    _date(out, "due_date", root.find("cbc:DueDate", ns))
    _date(out, "due_date", root.find("cac:PaymentMeans/cbc:PaymentDueDate", ns))
    out.text("po_reference", root.find("cac:OrderReference/cbc:ID", ns))

    _party(out, root.find("cac:AccountingSupplierParty/cac:Party", ns), "seller", ns)
    _party(out, root.find("cac:AccountingCustomerParty/cac:Party", ns), "buyer", ns)

    totals = root.find("cac:LegalMonetaryTotal", ns)
    if totals is not None:
        out.amount("total_lines", totals.find("cbc:LineExtensionAmount", ns))
        out.amount("total_allowances", totals.find("cbc:AllowanceTotalAmount", ns))
        out.amount("total_charges", totals.find("cbc:ChargeTotalAmount", ns))
        out.amount("total_ht", totals.find("cbc:TaxExclusiveAmount", ns))
        out.amount("total_ttc", totals.find("cbc:TaxInclusiveAmount", ns))
        out.amount("prepaid", totals.find("cbc:PrepaidAmount", ns))
        out.amount("rounding", totals.find("cbc:PayableRoundingAmount", ns))
        out.amount("amount_due", totals.find("cbc:PayableAmount", ns))

    # BT-110 is the TaxTotal in the document currency; BT-111 repeats it in the tax
    # currency, without subtotals.
    tax_amount = in_currency(root.findall("cac:TaxTotal/cbc:TaxAmount", ns), currency)
    out.amount("total_vat", tax_amount)
    tax_total = None if tax_amount is None else tax_amount.getparent()
    if tax_total is not None:
        _vat_breakdown(out, tax_total, ns)

    _payment(out, root, ns)
    _lines(out, root, kind, ns)
    return out.build()


def _namespaces(root: Element) -> dict[str, str]:
    if root.tag == INVOICE_ROOT:
        return dict(INVOICE_NAMESPACES)
    if root.tag == CREDITNOTE_ROOT:
        return dict(CREDITNOTE_NAMESPACES)
    raise NotAnInvoice(
        f"the XML root {etree.QName(root).text} is not a UBL 2 Invoice or CreditNote",
        root=etree.QName(root).text,
    )


def _date(out: Collector, field: str, element: Element | None) -> None:
    value = text_of(element)
    if element is None or value is None or field in out.values:
        return
    xpath = out.path(element)
    out.put(field, parse_iso_date(value, field=field, xpath=xpath), xpath)


def _party(out: Collector, party: Element | None, role: str, ns: dict[str, str]) -> None:
    if party is None:
        return
    out.text(f"{role}_name", party.find("cac:PartyLegalEntity/cbc:RegistrationName", ns))
    for scheme in party.iterfind("cac:PartyTaxScheme", ns):
        if text_of(scheme.find("cac:TaxScheme/cbc:ID", ns)) == "VAT":
            out.text(f"{role}_vat", scheme.find("cbc:CompanyID", ns))
            break
    put_company_ids(
        out,
        party,
        role,
        legal=party.find("cac:PartyLegalEntity/cbc:CompanyID", ns),
        identifiers=party.iterfind("cac:PartyIdentification/cbc:ID", ns),
    )


def _payment(out: Collector, root: Element, ns: dict[str, str]) -> None:
    for means in root.iterfind("cac:PaymentMeans", ns):
        account = means.find("cac:PayeeFinancialAccount/cbc:ID", ns)
        if text_of(account) is None:
            continue
        out.compact_text("iban", account)
        out.compact_text(
            "bic", means.find("cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID", ns)
        )
        return


def _vat_breakdown(out: Collector, tax_total: Element, ns: dict[str, str]) -> None:
    groups = tax_total.findall("cac:TaxSubtotal", ns)
    items = []
    for subtotal in groups:
        base = decimal_or_none(
            subtotal.find("cbc:TaxableAmount", ns), field="vat_base", collector=out
        )
        amount = decimal_or_none(
            subtotal.find("cbc:TaxAmount", ns), field="vat_amount", collector=out
        )
        if base is None or amount is None:
            continue  # mandatory in EN 16931: validation reports it, nothing is invented
        category = subtotal.find("cac:TaxCategory", ns)
        items.append(
            VatBreakdown(
                category=text_of(child(category, "cbc:ID", ns)),
                rate=decimal_or_none(
                    child(category, "cbc:Percent", ns), field="vat_rate", collector=out
                ),
                base=base,
                amount=amount,
                exemption_reason=text_of(child(category, "cbc:TaxExemptionReason", ns)),
            )
        )
    out.collection("vat_breakdown", tuple(items), groups)


def _lines(out: Collector, root: Element, kind: str, ns: dict[str, str]) -> None:
    quantity_name = "cbc:CreditedQuantity" if kind == "CreditNote" else "cbc:InvoicedQuantity"
    elements = root.findall(f"cac:{kind}Line", ns)
    lines = []
    for line in elements:
        quantity = line.find(quantity_name, ns)
        tax = line.find("cac:Item/cac:ClassifiedTaxCategory", ns)
        lines.append(
            InvoiceLine(
                line_id=text_of(line.find("cbc:ID", ns)),
                name=text_of(line.find("cac:Item/cbc:Name", ns)),
                quantity=decimal_or_none(quantity, field="line_quantity", collector=out),
                unit=None if quantity is None else quantity.get("unitCode"),
                net_price=decimal_or_none(
                    line.find("cac:Price/cbc:PriceAmount", ns),
                    field="line_net_price",
                    collector=out,
                ),
                net_amount=decimal_or_none(
                    line.find("cbc:LineExtensionAmount", ns),
                    field="line_net_amount",
                    collector=out,
                ),
                vat_category=text_of(child(tax, "cbc:ID", ns)),
                vat_rate=decimal_or_none(
                    child(tax, "cbc:Percent", ns), field="line_vat_rate", collector=out
                ),
            )
        )
    out.collection("lines", tuple(lines), elements)
