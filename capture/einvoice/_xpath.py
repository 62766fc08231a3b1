"""Private plumbing shared by the CII and UBL readers: namespaces, typed values read
exactly from element text (``Decimal``, ``date``; never ``float``), readable XPaths, and a
collector that pairs every filled header field with its provenance.

Nothing here knows a syntax's structure; that lives in ``cii.py`` and ``ubl.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, TypeAlias

from lxml import etree

from archive.invoice import FieldSource, InvoiceData, Provenance
from capture.errors import InvalidValue

Element: TypeAlias = etree._Element

CII_NAMESPACES: Mapping[str, str] = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
}
#: ZUGFeRD 1.0 ("CrossIndustryDocument"), an earlier CII draft with its own namespaces.
ZUGFERD1_NAMESPACES: Mapping[str, str] = {
    "rsm": "urn:ferd:CrossIndustryDocument:invoice:1p0",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:15",
}
_UBL_COMMON = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
UBL_INVOICE_NAMESPACES: Mapping[str, str] = {
    "ubl": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    **_UBL_COMMON,
}
UBL_CREDITNOTE_NAMESPACES: Mapping[str, str] = {
    "ubl": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    **_UBL_COMMON,
}

# xsd:decimal lexical space; Decimal() alone would also accept "NaN", "1e3" or "1_000".
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_DATE_102 = re.compile(r"(\d{4})(\d{2})(\d{2})")
# xsd:date, optionally with a time zone (which does not change the calendar date).
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:Z|[+-]\d{2}:\d{2})?")


def text_of(element: Element | None) -> str | None:
    """The element's text stripped of surrounding white space; ``None`` if absent or empty."""
    if element is None or element.text is None:
        return None
    value = element.text.strip()
    return value or None


def xpath_of(element: Element, namespaces: Mapping[str, str]) -> str:
    """An absolute XPath to ``element`` written with the prefixes of ``namespaces``.

    A position predicate is added only where siblings share the name, so the path reads
    like the specification (``/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:ID``).
    """
    prefixes = {uri: prefix for prefix, uri in namespaces.items()}
    steps: list[str] = []
    node: Element | None = element
    while node is not None:
        parent = node.getparent()
        steps.append(_step(node, parent, prefixes))
        node = parent
    return "/" + "/".join(reversed(steps))


def _step(node: Element, parent: Element | None, prefixes: Mapping[str, str]) -> str:
    """``node``'s step in :func:`xpath_of` (``prefixes`` maps a namespace to its prefix)."""
    qname = etree.QName(node)
    prefix = prefixes.get(qname.namespace or "")
    step = f"{prefix}:{qname.localname}" if prefix else _unprefixed(qname)
    if parent is not None:
        same = [child for child in parent if child.tag == node.tag]
        if len(same) > 1:
            step += f"[{same.index(node) + 1}]"
    return step


def _unprefixed(qname: etree.QName) -> str:
    if not qname.namespace:
        return qname.localname
    return f"*[local-name()='{qname.localname}' and namespace-uri()='{qname.namespace}']"


def parse_decimal(text: str, *, field: str, where: Callable[[], str]) -> Decimal:
    """``text`` as an exact Decimal; ``where`` gives the XPath for the error only."""
    if not _DECIMAL.fullmatch(text):
        xpath = where()
        raise InvalidValue(
            f"{field}: {text!r} at {xpath} is not a decimal number",
            field=field,
            xpath=xpath,
            value=text,
        )
    return Decimal(text)


def parse_date_102(text: str, *, field: str, xpath: str, fmt: str | None) -> date:
    """A CII ``udt:DateTimeString``; EN 16931 allows only format 102 (CCYYMMDD)."""
    match = _DATE_102.fullmatch(text)
    if fmt not in (None, "102") or match is None:
        raise InvalidValue(
            f"{field}: {text!r} (format {fmt!r}) at {xpath} is not a CCYYMMDD date (format 102)",
            field=field,
            xpath=xpath,
            value=text,
        )
    return _make_date(match, text, field=field, xpath=xpath)


def parse_iso_date(text: str, *, field: str, xpath: str) -> date:
    match = _ISO_DATE.fullmatch(text)
    if match is None:
        raise InvalidValue(
            f"{field}: {text!r} at {xpath} is not an ISO date (YYYY-MM-DD)",
            field=field,
            xpath=xpath,
            value=text,
        )
    return _make_date(match, text, field=field, xpath=xpath)


def _make_date(match: re.Match[str], text: str, *, field: str, xpath: str) -> date:
    year, month, day = (int(part) for part in match.groups())
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise InvalidValue(
            f"{field}: {text!r} at {xpath} is not a calendar date",
            field=field,
            xpath=xpath,
            value=text,
        ) from exc


def compact(value: str) -> str:
    """Drop the spaces people put in IBANs and BICs for reading."""
    return "".join(value.split())


def french_company_ids(value: str, scheme: str | None) -> tuple[str | None, str | None]:
    """(SIREN, SIRET) from a legal registration identifier (BT-30 / BT-47).

    Only ISO 6523 schemes 0002 (SIREN) and 0009 (SIRET) are French registration numbers;
    the length decides, because real files label a 14-digit SIRET as 0002. A SIREN is the
    first 9 digits of a SIRET. Anything else (a German register number...) gives nothing.
    """
    if scheme not in ("0002", "0009"):
        return None, None
    digits = compact(value)
    if not digits.isdigit():
        return None, None
    if len(digits) == 14:
        return digits[:9], digits
    if len(digits) == 9:
        return digits, None
    return None, None


class Collector:
    """Gathers InvoiceData fields with their provenance while a reader walks a document."""

    def __init__(self, namespaces: Mapping[str, str]) -> None:
        self.namespaces = namespaces
        self.values: dict[str, Any] = {}
        self.provenance: dict[str, Provenance] = {}
        self._prefixes = {uri: prefix for prefix, uri in namespaces.items()}
        # Fields share ancestors (every line's under the same transaction): each element's
        # path is worked out once. lxml hands back the same proxy for a node while one is
        # referenced, as the keys here are.
        self._paths: dict[Element, str] = {}

    def path(self, element: Element) -> str:
        """:func:`xpath_of` ``element`` with this collector's namespaces."""
        path = self._paths.get(element)
        if path is None:
            parent = element.getparent()
            base = "" if parent is None else self.path(parent)
            path = self._paths[element] = f"{base}/{_step(element, parent, self._prefixes)}"
        return path

    def put(self, field: str, value: Any, xpath: str) -> None:
        if value is None or field in self.values:
            return
        self.values[field] = value
        self.provenance[field] = Provenance(source=FieldSource.xml, xpath=xpath)

    def text(self, field: str, element: Element | None) -> None:
        value = text_of(element)
        if element is not None and value is not None:
            self.put(field, value, self.path(element))

    def compact_text(self, field: str, element: Element | None) -> None:
        value = text_of(element)
        if element is not None and value is not None:
            self.put(field, compact(value), self.path(element))

    def amount(self, field: str, element: Element | None) -> None:
        value = text_of(element)
        if element is not None and value is not None:
            xpath = self.path(element)
            self.put(field, parse_decimal(value, field=field, where=lambda: xpath), xpath)

    def collection(self, field: str, items: tuple[Any, ...], elements: list[Element]) -> None:
        """A repeated group (VAT breakdown, lines): the XPath selects all its elements."""
        if not items:
            return
        parent = elements[0].getparent()
        qname = etree.QName(elements[0])
        step = f"{self._prefixes[qname.namespace or '']}:{qname.localname}"
        base = "" if parent is None else self.path(parent)
        self.put(field, items, f"{base}/{step}")

    def build(self) -> InvoiceData:
        return InvoiceData(**self.values, provenance=self.provenance)


def decimal_or_none(element: Element | None, *, field: str, collector: Collector) -> Decimal | None:
    """A decimal from a repeated group's element (no provenance of its own)."""
    value = text_of(element)
    if element is None or value is None:
        return None
    return parse_decimal(value, field=field, where=lambda: collector.path(element))


def child(parent: Element | None, path: str, namespaces: Mapping[str, str]) -> Element | None:
    """``parent.find(path)``, or ``None`` when there is no parent."""
    return None if parent is None else parent.find(path, namespaces)


def first(elements: Iterable[Element]) -> Element | None:
    return next(iter(elements), None)


def in_currency(elements: list[Element], currency: str | None) -> Element | None:
    """Among amounts repeated per currency (BT-110 and BT-111), the one in ``currency``.

    Falls back to an amount without ``currencyID``, then to the first one.
    """
    if currency is not None:
        for element in elements:
            if element.get("currencyID") == currency:
                return element
    for element in elements:
        if element.get("currencyID") is None:
            return element
    return first(elements)


def put_company_ids(
    out: Collector,
    party: etree._Element,
    role: str,
    *,
    legal: etree._Element | None,
    identifiers: Iterable[etree._Element],
) -> None:
    """BT-30 (BT-47 for the buyer) as SIREN/SIRET; for the seller, a SIRET from BT-29
    (scheme 0009) when BT-30 gave the SIREN only, as the French CTC does."""
    legal_text = text_of(legal)
    if legal is None or legal_text is None:
        return
    siren, siret = french_company_ids(legal_text, legal.get("schemeID"))
    xpath = out.path(legal)
    out.put(f"{role}_siren", siren, xpath)
    if role != "seller":
        return
    out.put("seller_siret", siret, xpath)
    if siren is not None and siret is None:
        for identifier in identifiers:
            value = text_of(identifier)
            if identifier.get("schemeID") == "0009" and value is not None:
                found_siren, found_siret = french_company_ids(value, "0009")
                if found_siret is not None and found_siren == siren:
                    out.put("seller_siret", found_siret, out.path(identifier))
                    break
