"""The supplier directory of each company, kept in the database.

Extraction asks it to confirm the supplier OCR read (by SIREN, VAT number, IBAN or name)
and to fill what OCR missed; an unknown supplier, or an IBAN the directory does not know
for a known supplier, is flagged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Engine
from sqlmodel import col, select
from stdnum import iban as stdnum_iban
from stdnum.eu import vat as stdnum_vat
from stdnum.fr import siren as stdnum_siren

from capture.errors import CaptureBadInput
from capture.models import Supplier as SupplierRow
from capture.scan.extract import StaticDirectory, Supplier
from storage import session_scope
from storage.types import utcnow


class InvalidSupplier(CaptureBadInput):
    code = "invalid_supplier"


def _row_to_supplier(row: SupplierRow) -> Supplier:
    return Supplier(
        siren=row.siren,
        vat=row.vat,
        name=row.name,
        aliases=tuple(row.aliases),
        ibans=tuple(row.ibans),
    )


class DatabaseDirectory:
    """The suppliers of one company, loaded once (a directory is small) and matched with
    the same rules as :class:`capture.scan.extract.StaticDirectory`."""

    def __init__(self, engine: Engine, company_id: uuid.UUID) -> None:
        with session_scope(engine, read_only=True) as session:
            rows = session.exec(select(SupplierRow).where(SupplierRow.company_id == company_id))
            self._static = StaticDirectory([_row_to_supplier(r) for r in rows])

    def find(
        self,
        *,
        siren: str | None = None,
        vat: str | None = None,
        iban: str | None = None,
        name: str | None = None,
    ) -> Supplier | None:
        return self._static.find(siren=siren, vat=vat, iban=iban, name=name)


def upsert_supplier(
    engine: Engine,
    company_id: uuid.UUID,
    *,
    name: str,
    siren: str | None = None,
    vat: str | None = None,
    ibans: Iterable[str] = (),
    aliases: Iterable[str] = (),
) -> SupplierRow:
    """Add a supplier, or merge IBANs and aliases into the one with the same SIREN."""
    if siren is not None:
        siren = stdnum_siren.compact(siren)
        if not stdnum_siren.is_valid(siren):
            raise InvalidSupplier(f"{siren!r} is not a valid SIREN", siren=siren)
    if vat is not None:
        vat = stdnum_vat.compact(vat)
        if not stdnum_vat.is_valid(vat):
            raise InvalidSupplier(f"{vat!r} is not a valid intra-EU VAT number", vat=vat)
    clean_ibans = []
    for value in ibans:
        compact = stdnum_iban.compact(value)
        if not stdnum_iban.is_valid(compact):
            raise InvalidSupplier(f"{value!r} is not a valid IBAN", iban=value)
        clean_ibans.append(compact)
    with session_scope(engine) as session:
        row = None
        if siren is not None:
            row = session.exec(
                select(SupplierRow).where(
                    SupplierRow.company_id == company_id, SupplierRow.siren == siren
                )
            ).first()
        if row is None:
            row = SupplierRow(company_id=company_id, siren=siren, name=name)
        row.name = name
        row.vat = vat or row.vat
        row.ibans = sorted(set(row.ibans) | set(clean_ibans))
        row.aliases = sorted(set(row.aliases) | set(aliases))
        row.updated_at = utcnow()
        session.add(row)
        session.flush()
        session.expunge(row)
    return row


def list_suppliers(engine: Engine, company_id: uuid.UUID) -> list[SupplierRow]:
    with session_scope(engine, read_only=True) as session:
        rows = list(
            session.exec(
                select(SupplierRow)
                .where(SupplierRow.company_id == company_id)
                .order_by(col(SupplierRow.name))
            )
        )
        for row in rows:
            session.expunge(row)
    return rows
