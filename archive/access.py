"""API tokens and roles. Tokens are random, shown once, and stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from archive.errors import AccessDenied, NotAuthenticated
from archive.models import ApiToken, Role
from storage.types import utcnow

TOKEN_PREFIX = "cof_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Principal:
    """Who is calling: the identity every journal event names."""

    token_id: uuid.UUID | None
    name: str
    role: Role
    company_id: uuid.UUID | None = None
    fiscal_years: tuple[int, ...] | None = None
    #: When the token stops working; a Principal kept beyond it (a web session) is refused.
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.name}"

    def require_live(self) -> None:
        if self.expires_at is not None and self.expires_at <= utcnow():
            raise NotAuthenticated("this API token has expired")

    def require(self, *roles: Role) -> None:
        if self.role is not Role.admin and self.role not in roles:
            needed = ", ".join(r.value for r in roles)
            raise AccessDenied(
                f"role {self.role.value!r} may not do this (needs {needed})", role=self.role.value
            )

    def require_company(self, company_id: uuid.UUID) -> None:
        if self.company_id is not None and self.company_id != company_id:
            raise AccessDenied("this token is limited to another company", role=self.role.value)

    def require_fiscal_year(self, year: int) -> None:
        """Auditors see only the fiscal years under review."""
        if self.fiscal_years is not None and year not in self.fiscal_years:
            raise AccessDenied(
                f"this token is limited to the fiscal years {list(self.fiscal_years)}",
                role=self.role.value,
            )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session,
    *,
    name: str,
    role: Role | str,
    company_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
    fiscal_years: list[int] | None = None,
    created_by: str = "system",
) -> tuple[str, ApiToken]:
    """A new token; the plain text is returned once and never stored."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        role=Role(role).value,
        token_hash=hash_token(plain),
        company_id=company_id,
        expires_at=expires_at,
        fiscal_years=fiscal_years,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return plain, row


def authenticate(session: Session, plain: str | None) -> Principal:
    if not plain:
        raise NotAuthenticated("an API token is required (Authorization: Bearer …)")
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(plain))).first()
    if row is None or row.revoked_at is not None:
        raise NotAuthenticated("unknown or revoked API token")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise NotAuthenticated("this API token has expired")
    return Principal(
        token_id=row.id,
        name=row.name,
        role=Role(row.role),
        company_id=row.company_id,
        # An empty list limits the token to no year at all, never to every year.
        fiscal_years=tuple(row.fiscal_years) if row.fiscal_years is not None else None,
        expires_at=row.expires_at,
    )


#: The identity of the command line run by someone with access to the server itself.
OPERATOR = Principal(token_id=None, name="cli", role=Role.admin)
