"""Canonical serialisation and digests for everything Coffre hashes.

A canonical form is JSON with sorted keys, no insignificant whitespace, UTF-8, and only
JSON-native values: instants as ISO 8601 UTC with microseconds and a ``Z``, Decimals and
UUIDs as strings. Hashing ``str(...)`` joins would be ambiguous; this is not.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

HASH_ALG = "sha256"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetime in a canonical payload")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} has no canonical form")


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    ).encode("utf-8")


def to_jsonable(value: Any) -> Any:
    """The value as it will read back from a JSON column (so digests match after a round trip)."""
    return json.loads(canonical_json(value))


def digest(data: bytes, alg: str = HASH_ALG) -> str:
    return hashlib.new(alg, data).hexdigest()


def canonical_digest(value: Any, alg: str = HASH_ALG) -> str:
    return digest(canonical_json(value), alg)


def instant(value: datetime) -> str:
    return str(_default(value))
