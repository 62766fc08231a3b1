"""The archive's collaborators, assembled once by the composition root and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from archive.journal import Journal

if TYPE_CHECKING:
    from archive.models import Company
    from archive.seal import Sealer
    from archive.timestamp import Timestamper
    from storage import ObjectStore


@dataclass
class Archive:
    engine: Engine
    store: ObjectStore
    sealer: Sealer
    timestamper: Timestamper
    journal: Journal
    #: Certificates a seal or a timestamp must chain to (cryptography x509 objects).
    trust_roots: list[Any]
    #: CRLs (DER bytes) known to the deployment, used offline during validation.
    crls: list[bytes] = field(default_factory=list)
    default_retention_years: int = 10
    max_upload_bytes: int = 200 * 1024 * 1024
    #: Sealers of companies that have their own seal, built on first use.
    company_sealers: dict[str, Sealer] = field(default_factory=dict)
    company_sealer_factory: Any = None

    def sealer_for(self, company: Company) -> Sealer:
        if not company.seal_pkcs12_path or self.company_sealer_factory is None:
            return self.sealer
        key = str(company.id)
        if key not in self.company_sealers:
            self.company_sealers[key] = self.company_sealer_factory(company)
        return self.company_sealers[key]


def retention_until(received: datetime, years: int) -> datetime:
    """Kept until the end of the ``years``-th calendar year after receipt.

    Code de commerce L123-22 counts ten years from the close of the fiscal year; ending on
    31 December of receipt year + N covers any fiscal year closing in the receipt year.
    """
    end = date(received.astimezone(UTC).year + years, 12, 31)
    return datetime(end.year, end.month, end.day, 23, 59, 59, tzinfo=UTC)
