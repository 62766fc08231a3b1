"""Private plumbing of the validator: does an invoice fall under the French e-invoicing
mandate, so that the BR-FR rules bind it? Reads the parties' countries, the issue date and
the business process (BT-23) from the invoice XML; pure functions, no I/O.

The rule itself is explained in ``validate.py``'s docstring.
"""

from __future__ import annotations

import re
from datetime import date

from lxml import etree

from capture.einvoice._rulesets import RuleProfile, Syntax

#: Start of the French e-invoicing mandate (reception for all, issuance for large and
#: mid-sized companies).
FRENCH_CTC_START = date(2026, 9, 1)

#: BT-23 billing framework codes of XP Z12-012 (the list BR-FR-08 checks).
_FRENCH_BILLING_FRAMEWORKS = frozenset(
    f"{kind}{n}"
    for kind, numbers in (("B", "124789"), ("S", "123456789"), ("M", "12489"))
    for n in numbers
)

_NAMESPACES = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


def french_mandate(
    root: etree._Element, syntax: Syntax, profile: RuleProfile, start: date
) -> tuple[bool, str]:
    """Whether BR-FR binds this invoice, and why (see the module docstring)."""
    if profile is RuleProfile.EXTENDED_CTC_FR:
        return True, "BR-FR binding: the invoice declares the French CTC profile EXTENDED-CTC-FR"
    if syntax is Syntax.CII:
        framework = _first(
            root,
            "rsm:ExchangedDocumentContext/ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID",
        )
        trade = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/"
        seller = _cii_country(root, trade + "ram:SellerTradeParty")
        buyer = _cii_country(root, trade + "ram:BuyerTradeParty")
        issued = _parse_date(
            _first(root, "rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString")
        )
    else:
        framework = _first(root, "cbc:ProfileID")
        seller = _ubl_country(root, "cac:AccountingSupplierParty/cac:Party")
        buyer = _ubl_country(root, "cac:AccountingCustomerParty/cac:Party")
        issued = _parse_date(_first(root, "cbc:IssueDate"))
    if framework is not None and framework.upper() in _FRENCH_BILLING_FRAMEWORKS:
        return True, f"BR-FR binding: BT-23 declares the French billing framework {framework}"
    if seller != "FR" or buyer != "FR":
        return False, (
            f"BR-FR for information only: seller in {seller or 'unknown country'}, buyer in "
            f"{buyer or 'unknown country'}; the French mandate covers sales between parties "
            "established in France"
        )
    if issued is not None and issued < start:
        return False, (
            f"BR-FR for information only: issued on {issued.isoformat()}, before the French "
            f"mandate started on {start.isoformat()}"
        )
    return True, "BR-FR binding: seller and buyer in France, issued under the French mandate"


def _first(root: etree._Element, path: str) -> str | None:
    found = root.xpath(f"{path}/text()", namespaces=_NAMESPACES)
    if isinstance(found, list) and found:
        text = str(found[0]).strip()
        return text or None
    return None


def _cii_country(root: etree._Element, party: str) -> str | None:
    country = _first(root, f"{party}/ram:PostalTradeAddress/ram:CountryID")
    vat = _first(root, f"{party}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']")
    return _country(country, vat)


def _ubl_country(root: etree._Element, party: str) -> str | None:
    country = _first(root, f"{party}/cac:PostalAddress/cac:Country/cbc:IdentificationCode")
    vat = _first(root, f"{party}/cac:PartyTaxScheme/cbc:CompanyID")
    return _country(country, vat)


def _country(country: str | None, vat: str | None) -> str | None:
    if country:
        return country.upper()
    if vat and len(vat) > 2 and vat[:2].isalpha():
        return vat[:2].upper()
    return None


def _parse_date(text: str | None) -> date | None:
    if text is None:
        return None
    digits = re.sub(r"\D", "", text)[:8]
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None
