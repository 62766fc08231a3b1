"""Reading CII and UBL into InvoiceData: exact decimals, dates, French company numbers,
amounts in the invoice currency, provenance that points at the element read."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from archive.invoice import FieldSource
from capture.einvoice import detect, parse_cii, parse_ubl, read_einvoice
from capture.errors import InvalidValue, NotAnInvoice
from capture.safexml import parse_xml

CII_HEAD = (
    '<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
    'CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:'
    'ReusableAggregateBusinessInformationEntity:100" xmlns:udt="urn:un:unece:uncefact:data:'
    'standard:UnqualifiedDataType:100">'
)


def french_cii(
    *,
    seller_legal: str = '<ram:ID schemeID="0002">123456789</ram:ID>',
    seller_global: str = '<ram:GlobalID schemeID="0009">12345678900017</ram:GlobalID>',
    grand_total: str = "120.00",
    issue_date: str = '<udt:DateTimeString format="102">20261105</udt:DateTimeString>',
) -> bytes:
    return (
        CII_HEAD + "<rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>"
        "<ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>"
        "</rsm:ExchangedDocumentContext>"
        "<rsm:ExchangedDocument><ram:ID> FA-2026-042 </ram:ID><ram:TypeCode>380</ram:TypeCode>"
        f"<ram:IssueDateTime>{issue_date}</ram:IssueDateTime></rsm:ExchangedDocument>"
        "<rsm:SupplyChainTradeTransaction>"
        "<ram:IncludedSupplyChainTradeLineItem>"
        "<ram:AssociatedDocumentLineDocument><ram:LineID>1</ram:LineID>"
        "</ram:AssociatedDocumentLineDocument>"
        "<ram:SpecifiedTradeProduct><ram:Name>Café en grains 1 kg</ram:Name>"
        "</ram:SpecifiedTradeProduct>"
        "<ram:SpecifiedLineTradeAgreement><ram:NetPriceProductTradePrice>"
        "<ram:ChargeAmount>12.500</ram:ChargeAmount></ram:NetPriceProductTradePrice>"
        "</ram:SpecifiedLineTradeAgreement>"
        '<ram:SpecifiedLineTradeDelivery><ram:BilledQuantity unitCode="KGM">8.000'
        "</ram:BilledQuantity></ram:SpecifiedLineTradeDelivery>"
        "<ram:SpecifiedLineTradeSettlement><ram:ApplicableTradeTax><ram:TypeCode>VAT"
        "</ram:TypeCode><ram:CategoryCode>S</ram:CategoryCode><ram:RateApplicablePercent>20"
        "</ram:RateApplicablePercent></ram:ApplicableTradeTax>"
        "<ram:SpecifiedTradeSettlementLineMonetarySummation><ram:LineTotalAmount>100.00"
        "</ram:LineTotalAmount></ram:SpecifiedTradeSettlementLineMonetarySummation>"
        "</ram:SpecifiedLineTradeSettlement></ram:IncludedSupplyChainTradeLineItem>"
        "<ram:ApplicableHeaderTradeAgreement>"
        f"<ram:SellerTradeParty>{seller_global}<ram:Name>Torréfaction du Midi</ram:Name>"
        f"<ram:SpecifiedLegalOrganization>{seller_legal}</ram:SpecifiedLegalOrganization>"
        '<ram:SpecifiedTaxRegistration><ram:ID schemeID="FC">123/456</ram:ID>'
        '</ram:SpecifiedTaxRegistration><ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">'
        "FR32123456789</ram:ID></ram:SpecifiedTaxRegistration></ram:SellerTradeParty>"
        "<ram:BuyerTradeParty><ram:Name>Bistrot des Halles</ram:Name>"
        '<ram:SpecifiedLegalOrganization><ram:ID schemeID="0009">98765432100021</ram:ID>'
        "</ram:SpecifiedLegalOrganization></ram:BuyerTradeParty>"
        "<ram:BuyerOrderReferencedDocument><ram:IssuerAssignedID>PO-77</ram:IssuerAssignedID>"
        "</ram:BuyerOrderReferencedDocument></ram:ApplicableHeaderTradeAgreement>"
        "<ram:ApplicableHeaderTradeSettlement>"
        "<ram:TaxCurrencyCode>USD</ram:TaxCurrencyCode>"
        "<ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>"
        "<ram:SpecifiedTradeSettlementPaymentMeans><ram:TypeCode>58</ram:TypeCode>"
        "<ram:PayeePartyCreditorFinancialAccount><ram:IBANID>FR76 3000 6000 0112 3456 7890 189"
        "</ram:IBANID></ram:PayeePartyCreditorFinancialAccount>"
        "<ram:PayeeSpecifiedCreditorFinancialInstitution><ram:BICID>AGRIFRPP</ram:BICID>"
        "</ram:PayeeSpecifiedCreditorFinancialInstitution></ram:SpecifiedTradeSettlementPaymentMeans>"
        "<ram:ApplicableTradeTax><ram:CalculatedAmount>20.00</ram:CalculatedAmount>"
        "<ram:TypeCode>VAT</ram:TypeCode><ram:BasisAmount>100.00</ram:BasisAmount>"
        "<ram:CategoryCode>S</ram:CategoryCode><ram:RateApplicablePercent>20.00"
        "</ram:RateApplicablePercent></ram:ApplicableTradeTax>"
        "<ram:SpecifiedTradePaymentTerms><ram:DueDateDateTime>"
        '<udt:DateTimeString format="102">20261205</udt:DateTimeString></ram:DueDateDateTime>'
        "</ram:SpecifiedTradePaymentTerms>"
        "<ram:SpecifiedTradeSettlementHeaderMonetarySummation>"
        "<ram:LineTotalAmount>100.00</ram:LineTotalAmount>"
        "<ram:TaxBasisTotalAmount>100.00</ram:TaxBasisTotalAmount>"
        '<ram:TaxTotalAmount currencyID="USD">23.40</ram:TaxTotalAmount>'
        '<ram:TaxTotalAmount currencyID="EUR">20.00</ram:TaxTotalAmount>'
        f"<ram:GrandTotalAmount>{grand_total}</ram:GrandTotalAmount>"
        "<ram:TotalPrepaidAmount>20.00</ram:TotalPrepaidAmount>"
        "<ram:DuePayableAmount>100.00</ram:DuePayableAmount>"
        "</ram:SpecifiedTradeSettlementHeaderMonetarySummation>"
        "</ram:ApplicableHeaderTradeSettlement></rsm:SupplyChainTradeTransaction>"
        "</rsm:CrossIndustryInvoice>"
    ).encode()


def french_ubl_credit_note() -> bytes:
    return (
        '<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2" '
        'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" '
        'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
        "<cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>"
        "<cbc:ID>AV-2026-003</cbc:ID><cbc:IssueDate>2026-11-06</cbc:IssueDate>"
        "<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>"
        "<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>"
        "<cac:AccountingSupplierParty><cac:Party>"
        '<cac:PartyIdentification><cbc:ID schemeID="0009">12345678900017</cbc:ID>'
        "</cac:PartyIdentification>"
        "<cac:PartyName><cbc:Name>TDM</cbc:Name></cac:PartyName>"
        "<cac:PartyTaxScheme><cbc:CompanyID>FR32123456789</cbc:CompanyID><cac:TaxScheme>"
        "<cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>"
        "<cac:PartyLegalEntity><cbc:RegistrationName>Torréfaction du Midi</cbc:RegistrationName>"
        '<cbc:CompanyID schemeID="0002">123456789</cbc:CompanyID></cac:PartyLegalEntity>'
        "</cac:Party></cac:AccountingSupplierParty>"
        "<cac:AccountingCustomerParty><cac:Party><cac:PartyLegalEntity>"
        "<cbc:RegistrationName>Bistrot des Halles</cbc:RegistrationName>"
        '<cbc:CompanyID schemeID="0009">98765432100021</cbc:CompanyID>'
        "</cac:PartyLegalEntity></cac:Party></cac:AccountingCustomerParty>"
        "<cac:PaymentMeans><cbc:PaymentMeansCode>30</cbc:PaymentMeansCode>"
        "<cbc:PaymentDueDate>2026-12-06</cbc:PaymentDueDate>"
        "<cac:PayeeFinancialAccount><cbc:ID>FR7630006000011234567890189</cbc:ID>"
        "<cac:FinancialInstitutionBranch><cbc:ID>AGRIFRPP</cbc:ID>"
        "</cac:FinancialInstitutionBranch></cac:PayeeFinancialAccount></cac:PaymentMeans>"
        '<cac:TaxTotal><cbc:TaxAmount currencyID="EUR">2.00</cbc:TaxAmount>'
        '<cac:TaxSubtotal><cbc:TaxableAmount currencyID="EUR">10.00</cbc:TaxableAmount>'
        '<cbc:TaxAmount currencyID="EUR">2.00</cbc:TaxAmount><cac:TaxCategory><cbc:ID>S</cbc:ID>'
        "<cbc:Percent>20</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"
        "</cac:TaxCategory></cac:TaxSubtotal></cac:TaxTotal>"
        '<cac:TaxTotal><cbc:TaxAmount currencyID="USD">2.34</cbc:TaxAmount></cac:TaxTotal>'
        "<cac:LegalMonetaryTotal>"
        '<cbc:LineExtensionAmount currencyID="EUR">10.00</cbc:LineExtensionAmount>'
        '<cbc:TaxExclusiveAmount currencyID="EUR">10.00</cbc:TaxExclusiveAmount>'
        '<cbc:TaxInclusiveAmount currencyID="EUR">12.00</cbc:TaxInclusiveAmount>'
        '<cbc:PayableAmount currencyID="EUR">12.00</cbc:PayableAmount>'
        "</cac:LegalMonetaryTotal>"
        '<cac:CreditNoteLine><cbc:ID>1</cbc:ID><cbc:CreditedQuantity unitCode="KGM">0.800'
        '</cbc:CreditedQuantity><cbc:LineExtensionAmount currencyID="EUR">10.00'
        "</cbc:LineExtensionAmount><cac:Item><cbc:Name>Café en grains 1 kg</cbc:Name>"
        "<cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>20</cbc:Percent>"
        "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>"
        '</cac:Item><cac:Price><cbc:PriceAmount currencyID="EUR">12.500</cbc:PriceAmount>'
        "</cac:Price></cac:CreditNoteLine></CreditNote>"
    ).encode()


def test_cii_header_parties_totals_and_lines():
    invoice = parse_cii(parse_xml(french_cii()))
    assert invoice.invoice_number == "FA-2026-042"
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 11, 5), date(2026, 12, 5))
    assert (invoice.type_code, invoice.currency, invoice.po_reference) == ("380", "EUR", "PO-77")
    assert (invoice.seller_name, invoice.seller_vat) == ("Torréfaction du Midi", "FR32123456789")
    assert (invoice.seller_siren, invoice.seller_siret) == ("123456789", "12345678900017")
    assert (invoice.buyer_name, invoice.buyer_siren) == ("Bistrot des Halles", "987654321")
    assert invoice.total_vat == Decimal("20.00")  # the EUR one, not the USD tax currency one
    assert (invoice.total_ttc, invoice.prepaid, invoice.amount_due) == (
        Decimal("120.00"),
        Decimal("20.00"),
        Decimal("100.00"),
    )
    assert (invoice.iban, invoice.bic) == ("FR7630006000011234567890189", "AGRIFRPP")
    [vat] = invoice.vat_breakdown
    assert (vat.category, vat.rate, vat.base, vat.amount) == (
        "S",
        Decimal("20.00"),
        Decimal("100.00"),
        Decimal("20.00"),
    )
    [line] = invoice.lines
    assert line.model_dump() == {
        "line_id": "1",
        "name": "Café en grains 1 kg",
        "quantity": Decimal("8.000"),
        "unit": "KGM",
        "net_price": Decimal("12.500"),
        "net_amount": Decimal("100.00"),
        "vat_category": "S",
        "vat_rate": Decimal("20"),
    }


def test_decimals_keep_their_written_scale():
    invoice = parse_cii(parse_xml(french_cii()))
    assert str(invoice.lines[0].net_price) == "12.500"
    assert all(not isinstance(v, float) for v in invoice.model_dump().values())


def test_provenance_names_the_element_read():
    invoice = parse_cii(parse_xml(french_cii()))
    prefix = "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction"
    assert invoice.provenance["invoice_number"].xpath == (
        "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:ID"
    )
    assert invoice.provenance["invoice_number"].source == FieldSource.xml
    assert invoice.provenance["total_vat"].xpath == (
        f"{prefix}/ram:ApplicableHeaderTradeSettlement"
        "/ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:TaxTotalAmount[2]"
    )
    assert invoice.provenance["seller_siret"].xpath == (
        f"{prefix}/ram:ApplicableHeaderTradeAgreement/ram:SellerTradeParty/ram:GlobalID"
    )
    assert invoice.provenance["lines"].xpath == f"{prefix}/ram:IncludedSupplyChainTradeLineItem"
    assert "total_charges" not in invoice.provenance  # absent fields have none


@pytest.mark.parametrize(
    ("legal", "global_id", "siren", "siret"),
    [
        ('<ram:ID schemeID="0002">123456789</ram:ID>', "", "123456789", None),
        ('<ram:ID schemeID="0002">12345678900017</ram:ID>', "", "123456789", "12345678900017"),
        ('<ram:ID schemeID="0009">123 456 789 00017</ram:ID>', "", "123456789", "12345678900017"),
        ("<ram:ID>123456789</ram:ID>", "", None, None),
        ('<ram:ID schemeID="0088">4000001123452</ram:ID>', "", None, None),
        ('<ram:ID schemeID="0002">HRB 12345</ram:ID>', "", None, None),
        (
            '<ram:ID schemeID="0002">123456789</ram:ID>',
            '<ram:GlobalID schemeID="0009">99999999900017</ram:GlobalID>',
            "123456789",
            None,  # a SIRET of another company is not this seller's
        ),
    ],
    ids=[
        "siren",
        "siret-labelled-0002",
        "siret-with-spaces",
        "no-scheme",
        "gln",
        "not-digits",
        "foreign-siret",
    ],
)
def test_siren_and_siret_come_from_the_legal_registration_identifier(
    legal, global_id, siren, siret
):
    invoice = parse_cii(parse_xml(french_cii(seller_legal=legal, seller_global=global_id)))
    assert (invoice.seller_siren, invoice.seller_siret) == (siren, siret)


def test_ubl_credit_note_keeps_amounts_as_written_and_finds_bt9_under_payment_means():
    detected, invoice = read_einvoice(french_ubl_credit_note())
    assert detected.syntax == "ubl-creditnote"
    assert (invoice.type_code, invoice.invoice_number) == ("381", "AV-2026-003")
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 11, 6), date(2026, 12, 6))
    assert (invoice.total_ttc, invoice.total_vat) == (Decimal("12.00"), Decimal("2.00"))
    assert (invoice.seller_name, invoice.seller_vat) == ("Torréfaction du Midi", "FR32123456789")
    assert (invoice.seller_siren, invoice.seller_siret) == ("123456789", "12345678900017")
    assert invoice.buyer_siren == "987654321"
    assert (invoice.iban, invoice.bic) == ("FR7630006000011234567890189", "AGRIFRPP")
    assert invoice.lines[0].quantity == Decimal("0.800")
    assert (
        invoice.provenance["due_date"].xpath
        == "/ubl:CreditNote/cac:PaymentMeans/cbc:PaymentDueDate"
    )
    assert detected.namespaces["ubl"] == "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"


@pytest.mark.parametrize("amount", ["NaN", "1e3", "12,50", "Infinity", "1_000", "--1"])
def test_an_amount_that_is_not_a_decimal_is_refused_with_its_place(amount):
    with pytest.raises(InvalidValue) as caught:
        parse_cii(parse_xml(french_cii(grand_total=amount)))
    assert caught.value.data["field"] == "total_ttc"
    assert caught.value.data["xpath"].endswith("/ram:GrandTotalAmount")
    assert amount in str(caught.value)


@pytest.mark.parametrize(
    "issue_date",
    [
        '<udt:DateTimeString format="102">2026-11-05</udt:DateTimeString>',
        '<udt:DateTimeString format="102">20261305</udt:DateTimeString>',
        '<udt:DateTimeString format="610">202611</udt:DateTimeString>',
    ],
    ids=["iso-in-102", "month-13", "format-610"],
)
def test_a_date_that_is_not_ccyymmdd_is_refused(issue_date):
    with pytest.raises(InvalidValue, match="issue_date"):
        parse_cii(parse_xml(french_cii(issue_date=issue_date)))


def test_readers_refuse_the_other_syntax():
    with pytest.raises(NotAnInvoice):
        parse_ubl(parse_xml(french_cii()))
    with pytest.raises(NotAnInvoice):
        parse_cii(parse_xml(french_ubl_credit_note()))


def test_detect_and_read_agree_on_bare_cii():
    detected, invoice = read_einvoice(french_cii())
    assert detected == detect(french_cii())
    assert invoice.invoice_number == "FA-2026-042"
