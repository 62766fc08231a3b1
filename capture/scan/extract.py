"""Invoice fields from the words of a scanned (OCR'd) or born-digital invoice.

This room turns :class:`~capture.scan.text.PageText` into an
:class:`~archive.invoice.InvoiceData` with a :class:`~archive.invoice.Provenance` per field,
and says what looks wrong (flags). It reads labels and the geometry of the page (a value is
on the label's line, to its right, or in the cell just below it), parses French and English
number and date formats, repairs OCR confusions only where a checksum or the arithmetic of
the totals confirms the repair, and cross-checks the totals. It does not OCR, store or
decide anything: a flag is information for the workflow, not a rejection.

The supplier directory (who the company's suppliers are, with their known bank accounts)
is a collaborator behind the :class:`SupplierDirectory` protocol; :class:`StaticDirectory`
is the in-memory implementation and test double.

The reading itself is done by private modules, in the order of their dependencies:
:mod:`~capture.scan._lines` (a line's text, views and geometry), :mod:`~capture.scan._values`
(amounts, rates, dates), :mod:`~capture.scan._identifiers` (SIREN, SIRET, VAT, IBAN, BIC),
:mod:`~capture.scan._labels` (the label vocabulary), :mod:`~capture.scan._document` (the
pages read and the result written), then the field readers :mod:`~capture.scan._fields`,
:mod:`~capture.scan._breakdown`, :mod:`~capture.scan._totals` and
:mod:`~capture.scan._parties`. This module keeps the public API and the order of the
readings.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from archive.invoice import InvoiceData
from capture.scan._breakdown import _breakdown_rows, _pick_breakdown
from capture.scan._document import _best, _Builder, _confidence, _Document
from capture.scan._fields import (
    _date_candidates,
    _pick_currency,
    _pick_type_code,
    _reference_candidates,
    _unlabelled_issue_date,
)
from capture.scan._identifiers import _siren_of_vat
from capture.scan._parties import _buyer_block, _pick_ids, _seller_name_candidates, normalise_name
from capture.scan._totals import _pick_totals
from capture.scan.text import PageText

__all__ = [
    "Extraction",
    "StaticDirectory",
    "Supplier",
    "SupplierDirectory",
    "extract",
    "normalise_name",
]


# --- the supplier directory ----------------------------------------------------------------


@dataclass(frozen=True)
class Supplier:
    """A known supplier of the company."""

    siren: str | None
    #: Intra-EU VAT number, compact (``FR40303265045``).
    vat: str | None
    name: str
    #: Other names the supplier prints (brand, former name).
    aliases: tuple[str, ...] = ()
    #: Bank accounts the supplier is known to be paid on (compact IBANs).
    ibans: tuple[str, ...] = ()


class SupplierDirectory(Protocol):
    """Looks a supplier up by any of its identifiers, or by name."""

    def find(
        self,
        *,
        siren: str | None = None,
        vat: str | None = None,
        iban: str | None = None,
        name: str | None = None,
    ) -> Supplier | None: ...


def _compact(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


class StaticDirectory:
    """An in-memory :class:`SupplierDirectory`."""

    def __init__(self, suppliers: Iterable[Supplier]) -> None:
        self._suppliers = tuple(suppliers)
        self._by_siren: dict[str, Supplier] = {}
        self._by_vat: dict[str, Supplier] = {}
        self._by_iban: dict[str, Supplier] = {}
        self._by_name: dict[str, Supplier] = {}
        for supplier in self._suppliers:
            if supplier.siren:
                self._by_siren.setdefault(_compact(supplier.siren), supplier)
            if supplier.vat:
                self._by_vat.setdefault(_compact(supplier.vat), supplier)
                siren = _siren_of_vat(_compact(supplier.vat))
                if siren:
                    self._by_siren.setdefault(siren, supplier)
            for iban in supplier.ibans:
                self._by_iban.setdefault(_compact(iban), supplier)
            for name in (supplier.name, *supplier.aliases):
                self._by_name.setdefault(normalise_name(name), supplier)

    def find(
        self,
        *,
        siren: str | None = None,
        vat: str | None = None,
        iban: str | None = None,
        name: str | None = None,
    ) -> Supplier | None:
        """The first supplier matching, trying SIREN, VAT, IBAN, then name, in that order."""
        if siren and (found := self._by_siren.get(_compact(siren)[:9])):
            return found
        if vat and (found := self._by_vat.get(_compact(vat))):
            return found
        if iban and (found := self._by_iban.get(_compact(iban))):
            return found
        if name:
            return self._by_name.get(normalise_name(name))
        return None


# --- the result ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extraction:
    """What was read from the scan, and what looked wrong."""

    invoice: InvoiceData
    #: (code, message), codes: ``totals_inconsistent`` (the totals, or the VAT breakdown, do
    #: not add up as read), ``iban_changed`` (not an account known for the supplier: fraud
    #: risk), ``unknown_supplier``, ``supplier_mismatch`` (the VAT number or IBAN belongs to a
    #: supplier with another SIREN), ``no_text`` (nothing to read).
    flags: tuple[tuple[str, str], ...] = ()

    @property
    def flag_codes(self) -> frozenset[str]:
        return frozenset(code for code, _ in self.flags)


def _apply_directory(directory: SupplierDirectory, out: _Builder) -> None:
    values = out.values
    siren = values.get("seller_siren")
    vat = values.get("seller_vat")
    iban = values.get("iban")
    name = values.get("seller_name")
    supplier = None
    confirmed_by = None
    for key, value in (("siren", siren), ("vat", vat), ("iban", iban)):
        if isinstance(value, str) and (supplier := directory.find(**{key: value})):
            confirmed_by = key
            break
    if supplier is None and isinstance(name, str):
        supplier = directory.find(name=name)
    if supplier is None:
        out.flag(
            "unknown_supplier", "no known supplier matches the seller's SIREN, VAT, IBAN or name"
        )
        return
    if confirmed_by:
        known_siren = supplier.siren or (
            _siren_of_vat(_compact(supplier.vat)) if supplier.vat else None
        )
        if isinstance(siren, str) and known_siren and siren != known_siren:
            out.flag(
                "supplier_mismatch",
                f"the {confirmed_by} belongs to {supplier.name} (SIREN {known_siren}), "
                f"but the invoice shows SIREN {siren}",
            )
        else:
            printed = out.provenance.get("seller_name")
            names = {normalise_name(n) for n in (supplier.name, *supplier.aliases)}
            if printed is not None and isinstance(name, str) and normalise_name(name) in names:
                out.values["seller_name"] = supplier.name
                out.provenance["seller_name"] = printed.model_copy(update={"confidence": 0.99})
            else:
                out.set("seller_name", supplier.name, 0.95, None)
            if known_siren:
                if siren is None:
                    out.set("seller_siren", known_siren, 0.9, None)
                else:
                    out.raise_to("seller_siren", 0.99)
            if supplier.vat:
                if vat is None:
                    out.set("seller_vat", _compact(supplier.vat), 0.9, None)
                elif vat == _compact(supplier.vat):
                    out.raise_to("seller_vat", 0.99)
    known_ibans = {_compact(i) for i in supplier.ibans}
    if isinstance(iban, str) and known_ibans:
        if iban in known_ibans:
            out.raise_to("iban", 0.99)
        else:
            out.flag(
                "iban_changed",
                f"IBAN {iban} is not one of the accounts known for {supplier.name}: "
                "check the change of bank details with the supplier before paying",
            )


def extract(
    pages: Sequence[PageText],
    *,
    directory: SupplierDirectory | None = None,
    own_sirens: Collection[str] = (),
) -> Extraction:
    """Read the invoice fields from ``pages``.

    ``own_sirens`` are the SIRENs of the archive's own company (or group): one of them on
    the page names the buyer, never the seller. With a ``directory``, the seller is looked
    up by SIREN, VAT number or IBAN to fill and confirm its fields.
    """
    doc = _Document(pages)
    out = _Builder()
    own = {_compact(s)[:9] for s in own_sirens}
    if not doc.lines:
        return Extraction(InvoiceData(), (("no_text", "the document has no text layer"),))

    for name in ("invoice_number", "po_reference"):
        cands = _best(_reference_candidates(doc, name))
        if name == "po_reference" and "invoice_number" in out.values:
            cands = [c for c in cands if c.value != out.values["invoice_number"]]
        if cands:
            out.set(name, cands[0].value, _confidence(cands[0].score), cands[0])
    issue = _best(_date_candidates(doc, "issue_date"))
    due = _best(_date_candidates(doc, "due_date"))
    if due:
        out.set("due_date", due[0].value, _confidence(due[0].score), due[0])
    issue = [c for c in issue if not due or (c.line, c.start) != (due[0].line, due[0].start)]
    if not issue and (fallback := _unlabelled_issue_date(doc, due[0] if due else None)):
        issue = [fallback]
    if issue:
        out.set("issue_date", issue[0].value, _confidence(issue[0].score), issue[0])
    issue_v, due_v = out.values.get("issue_date"), out.values.get("due_date")
    if isinstance(issue_v, date) and isinstance(due_v, date) and due_v < issue_v:
        out.scale(("issue_date", "due_date"), 0.6)

    rows = _breakdown_rows(doc)
    _pick_totals(doc, rows, out)
    _pick_breakdown(doc, rows, out)
    _pick_currency(doc, out)
    _pick_type_code(doc, out)

    parties = _buyer_block(doc)
    _pick_ids(doc, parties, own, out)
    buyer_name = parties.buyer_name.value if parties.buyer_name else None
    if parties.buyer_name is not None:
        name = " ".join(str(parties.buyer_name.value).split())
        out.set("buyer_name", name, parties.buyer_name.score, parties.buyer_name)
    names = _seller_name_candidates(
        doc, parties, buyer_name if isinstance(buyer_name, str) else None
    )
    if names:
        agreeing = len(names) > 1 and len({normalise_name(str(c.value)) for c in names}) == 1
        # The legal mentions name the company; when the letterhead agrees, its larger print
        # is the better reading of the same name.
        chosen = max(names, key=lambda c: (c.label == "header") if agreeing else c.score)
        confidence = chosen.score + (0.25 if agreeing else 0)
        out.set("seller_name", " ".join(str(chosen.value).split()), confidence, chosen)

    if directory is not None:
        _apply_directory(directory, out)

    invoice = InvoiceData(**out.values, provenance=out.provenance)  # type: ignore[arg-type]
    return Extraction(invoice=invoice, flags=tuple(out.flags))
