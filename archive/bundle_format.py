"""The evidence bundle's layout and row format, shared by its writer (``archive.bundle``) and
its offline verifier (``archive.bundle_verify``).

Only names, paths and pure functions over JSON live here: no database, no storage, no
crypto. A journal event is written as a JSON row whose ``recorded_at`` is already the
canonical instant string, so its hash is recomputed from the row alone, with the same
canonical serialisation as :mod:`archive.journal` (see :func:`row_hash`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from archive.canonical import canonical_json, instant
from archive.models import JournalEvent

FORMAT = "coffre-evidence-bundle"
VERSION = 1
#: Hash algorithms a bundle may name (for events, anchors and file lists).
HASH_ALGS = frozenset({"sha256", "sha384", "sha512"})

MANIFEST = "manifest.json"
SHA256SUMS = "SHA256SUMS"
README_FR = "README.fr.txt"
README_EN = "README.en.txt"
DOCUMENT = "document.json"
INVOICE_DATA = "invoice-data.json"
VALIDATION_REPORT = "validation-report.json"
ROOTS = "certificates/root.pem"
SEAL_CERTS = "certificates/seal.pem"
TSA_CERTS = "certificates/tsa.pem"
CRLS = "certificates/crls.pem"
ROOTS_AND_CRLS = "certificates/root-and-crls.pem"
EVENTS = "journal/events.json"
CHAIN = "journal/chain.jsonl"
ANCHOR = "journal/anchor.json"
ANCHOR_BODY = "journal/anchor-body.json"
ANCHOR_TOKEN = "journal/anchor.tsr"  # noqa: S105 - a file name, not a secret
CHAIN_CHECK = "journal/check_chain.py"
ARTIFACTS_DIR = "artifacts"

#: Role of each file in the manifest (artifacts have role "artifact").
ROLES: dict[str, str] = {
    README_FR: "readme",
    README_EN: "readme",
    DOCUMENT: "document",
    INVOICE_DATA: "invoice-data",
    VALIDATION_REPORT: "validation-report",
    ROOTS: "trust-roots",
    SEAL_CERTS: "seal-certificates",
    TSA_CERTS: "tsa-certificates",
    CRLS: "crls",
    ROOTS_AND_CRLS: "trust-roots-and-crls",
    EVENTS: "journal-document-events",
    CHAIN: "journal-chain",
    ANCHOR: "journal-anchor",
    ANCHOR_BODY: "journal-anchor-body",
    ANCHOR_TOKEN: "journal-anchor-token",
    CHAIN_CHECK: "journal-chain-check",
}
ARTIFACT_ROLE = "artifact"

#: Fields of an event row that its hash covers (the payload is covered by its digest).
HASHED_FIELDS = (
    "seq",
    "recorded_at",
    "actor",
    "action",
    "subject",
    "payload_digest",
    "prev_hash",
    "hash_alg",
)

_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "application/json": ".json",
    "text/plain": ".txt",
    "image/tiff": ".tif",
    "image/png": ".png",
    "image/jpeg": ".jpg",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def top_directory(document_id: str) -> str:
    """The one folder every file of the bundle sits in (what ``unzip`` creates)."""
    return f"evidence-{document_id}"


def artifact_path(name: str, media_type: str) -> str:
    """Where an artifact goes: its name made safe for any unzip, plus an extension when it
    has none (``original`` → ``artifacts/original.pdf``).

    Names can come from received files (a Factur-X attachment name): no part may be
    empty, ``.``, ``..`` or hold anything but letters, digits, ``.``, ``_`` and ``-``.
    """
    parts = [_UNSAFE.sub("_", part) for part in name.split("/")]
    parts = [part if part.strip(".") else "_" for part in parts]
    if "." not in parts[-1]:
        parts[-1] += _EXTENSIONS.get(media_type.split(";")[0].strip(), ".bin")
    return "/".join([ARTIFACTS_DIR, *parts])


def event_row(event: JournalEvent, *, with_payload: bool) -> dict[str, Any]:
    """The JSON row of an event; without its payload for events of other subjects."""
    row: dict[str, Any] = {
        "seq": event.seq,
        "recorded_at": instant(event.recorded_at),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "payload_digest": event.payload_digest,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "hash_alg": event.hash_alg,
    }
    if with_payload:
        row["payload"] = event.payload
    return row


def row_hash(row: dict[str, Any]) -> str:
    """The hash an event row must carry, recomputed from the row alone."""
    body = {name: row[name] for name in HASHED_FIELDS}
    return hashlib.new(row["hash_alg"], canonical_json(body)).hexdigest()
