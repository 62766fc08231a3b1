"""Offline verification of a fiscal-year export folder (see :mod:`archive.export` for its
layout): the manifest's seal and token, every file's size and SHA-256, nothing unlisted,
each artifact against the journal events exported with it, and, ``deep``, every
document's own seals, tokens and renewals. Needs only the folder and, optionally, the
auditor's own trust roots.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from archive import bundle_format as fmt
from archive.canonical import canonical_digest
from archive.export import (
    CRL_PEM,
    DOCUMENTS,
    FORMAT,
    MANIFEST,
    MANIFEST_SEAL,
    MANIFEST_TOKEN,
    SHOWN_PROBLEMS,
    UNLISTED,
    VERSION,
    ExportUnreadable,
    hash_file,
)
from archive.pki import is_development_certificate
from archive.renewal import RENEWAL_NAME, Renewal, check_renewals
from archive.seal_check import validate_detached_seal, validate_pdf_seal
from archive.timestamp import verify_timestamp
from archive.verify import Check, VerificationReport

__all__ = ["ExportReport", "verify_export"]

#: Offline reports carry where trust came from (``trust``).
ExportReport = VerificationReport


def verify_export(
    directory: Path,
    *,
    trust_roots: Sequence[x509.Certificate] | None = None,
    deep: bool = False,
) -> ExportReport:
    """Check an export folder offline: the manifest's seal and token, every file's size and
    SHA-256, nothing unlisted, each artifact against the journal events exported with it.
    ``deep`` also validates every document's own seals, tokens and renewals.
    ``trust_roots``: the auditor's own roots; None trusts ``certificates/root.pem``."""
    return _ExportVerifier(Path(directory), trust_roots, deep).run()


class _ExportVerifier:
    def __init__(self, root: Path, pinned: Sequence[x509.Certificate] | None, deep: bool) -> None:
        self.root = root
        self.pinned = list(pinned) if pinned is not None else None
        self.deep = deep
        self.checks: list[Check] = []
        self.roots: list[x509.Certificate] = []
        self.crls: list[bytes] = []

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, bool(ok), detail))

    def run(self) -> ExportReport:
        try:
            manifest_bytes = (self.root / MANIFEST).read_bytes()
            manifest = json.loads(manifest_bytes)
        except OSError as exc:
            raise ExportUnreadable(f"{self.root}: no readable {MANIFEST}: {exc}") from exc
        except ValueError as exc:
            raise ExportUnreadable(f"{MANIFEST} is not JSON: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ExportUnreadable(f"{MANIFEST} does not describe a {FORMAT}")
        if manifest.get("version") != VERSION or not isinstance(manifest.get("files"), list):
            raise ExportUnreadable(f"{FORMAT} version {manifest.get('version')!r} is unknown")
        company = manifest.get("company") or {}
        subject = f"company:{company.get('id')} fiscal year {manifest.get('fiscal_year')}"
        trust = self.load_trust()
        self.check_manifest_seal(manifest_bytes, manifest)
        self.check_manifest_token(manifest_bytes)
        self.check_files(manifest["files"], manifest.get("documents"))
        return ExportReport(subject=subject, trust=trust, checks=tuple(self.checks))

    def load_trust(self) -> str:
        try:
            shipped = list(x509.load_pem_x509_certificates((self.root / fmt.ROOTS).read_bytes()))
        except (OSError, ValueError):
            shipped = []
        for block in _crl_blocks(self.root / fmt.CRLS):
            try:
                crl = x509.load_pem_x509_crl(block)
            except ValueError:
                continue
            self.crls.append(crl.public_bytes(serialization.Encoding.DER))
        if self.pinned is not None:
            self.roots = self.pinned
            trust = f"pinned roots given by the auditor ({len(self.pinned)} certificate(s))"
        else:
            self.roots = shipped
            trust = "export-provided roots (certificates/root.pem; pin your own with --trust)"
        if any(is_development_certificate(r) for r in self.roots):
            trust += " — development PKI"
        self.add(f"{fmt.ROOTS}: trust roots", bool(self.roots), trust if self.roots else "none")
        return trust

    def check_manifest_seal(self, data: bytes, manifest: dict[str, Any]) -> None:
        try:
            cms_der = (self.root / MANIFEST_SEAL).read_bytes()
        except OSError as exc:
            self.add(f"{MANIFEST_SEAL}: seal over {MANIFEST}", False, str(exc))
            return
        result = validate_detached_seal(data, cms_der, trust_roots=self.roots, crls=self.crls)
        self.add(
            f"{MANIFEST_SEAL}: seal over {MANIFEST}",
            result.ok,
            "; ".join(result.problems) or str(result.level),
        )
        recorded = (manifest.get("seal") or {}).get("cert_sha256")
        same = result.signer_cert_sha256 is not None and result.signer_cert_sha256 == recorded
        self.add(
            f"{MANIFEST_SEAL}: sealed by the certificate the manifest names",
            same,
            "" if same else f"signer {result.signer_cert_sha256}, manifest {recorded}",
        )

    def check_manifest_token(self, data: bytes) -> None:
        try:
            tsr = (self.root / MANIFEST_TOKEN).read_bytes()
        except OSError as exc:
            self.add(f"{MANIFEST_TOKEN}: timestamp over {MANIFEST}", False, str(exc))
            return
        result = verify_timestamp(tsr, data=data, trust_roots=self.roots, crls=self.crls)
        self.add(
            f"{MANIFEST_TOKEN}: timestamp over {MANIFEST}",
            result.ok,
            "; ".join(result.problems) or f"time {result.gen_time}",
        )

    def check_files(self, entries: list[Any], documents: Any) -> None:
        problems: list[str] = []
        listed: set[str] = set()
        by_document: dict[str, list[dict[str, Any]]] = {}
        current: str | None = None
        exported = 0
        for entry in entries:
            path = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(path, str) or path.startswith("/") or ".." in path.split("/"):
                problems.append(f"unsafe or missing path in an entry: {path!r}")
                continue
            listed.add(path)
            target = self.root / path
            try:
                sha256, size = hash_file(target)
            except OSError:
                problems.append(f"{path}: listed but missing")
                continue
            if sha256 != entry.get("sha256") or size != entry.get("size"):
                problems.append(f"{path}: SHA-256 or size differs from the manifest")
            document = entry.get("document_id")
            if document is not None and document != current:
                # Entries of one document are contiguous: check it, then forget it.
                self.flush_document(current, by_document)
                current = document
                exported += 1
            if document is not None:
                by_document.setdefault(document, []).append(entry)
        self.flush_document(current, by_document)
        for dirpath, _, filenames in os.walk(self.root):
            for filename in filenames:
                relative = (Path(dirpath) / filename).relative_to(self.root).as_posix()
                if relative not in listed and relative not in UNLISTED:
                    problems.append(f"{relative}: present but not in the manifest")
        if exported != documents:
            problems.append(f"the manifest announces {documents} documents, lists {exported}")
        self.add(
            f"{MANIFEST}: every file listed, present and unchanged",
            not problems,
            "; ".join(problems[:SHOWN_PROBLEMS])
            + (
                f" (and {len(problems) - SHOWN_PROBLEMS} more)"
                if len(problems) > SHOWN_PROBLEMS
                else ""
            )
            if problems
            else f"{len(listed)} files, {exported} documents",
        )

    def flush_document(
        self, document_id: str | None, by_document: dict[str, list[dict[str, Any]]]
    ) -> None:
        if document_id is None:
            return
        entries = by_document.pop(document_id, [])
        name = f"{DOCUMENTS}/{document_id}"
        try:
            record = json.loads((self.root / name / "document.json").read_bytes())
            problems = _document_problems(record, entries)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems = [f"document.json cannot be read: {exc!r}"]
        if self.deep and not problems:
            try:
                problems = self.proof_problems(record)
            except (OSError, KeyError) as exc:
                problems = [f"a file its evidence needs is missing: {exc}"]
        if problems:
            self.add(f"{name}: artifacts match the journal events", False, "; ".join(problems))

    def proof_problems(self, record: dict[str, Any]) -> list[str]:
        """Every seal, token and renewal of one document, validated offline."""
        files = {a["name"]: self.root / a["path"] for a in record["artifacts"] if a.get("path")}

        def read(name: str) -> bytes:
            return files[name].read_bytes()

        problems: list[str] = []
        ids = {a.get("id"): a["name"] for a in record["artifacts"]}
        for artifact in record["artifacts"]:
            row = artifact.get("evidence")
            if row is None:
                continue
            name = artifact["name"]
            data = read(name)
            if row["seal_format"].startswith("PAdES"):
                result = validate_pdf_seal(data, trust_roots=self.roots, crls=self.crls)
                problems.extend(f"{name}: {p}" for p in result.problems)
                continue
            base = {
                ids[ref]: read(ids[ref])
                for ref in (row.get("signature_artifact_id"), row.get("timestamp_artifact_id"))
                if ref in ids
            }
            moment: datetime | None = None
            renewals = _renewals_of(name, files, read)
            if renewals:
                verdict = check_renewals(
                    artifact=name,
                    artifact_sha256=hashlib.sha256(data).hexdigest(),
                    evidence=base,
                    renewals=renewals,
                    trust_roots=self.roots,
                    crls=self.crls,
                )
                problems.extend(f"{name}: {n}: {d}" for n, ok, d in verdict.checks if not ok)
                moment = verdict.base_moment
            for part, blob in base.items():
                if part.endswith(".p7s"):
                    seal = validate_detached_seal(
                        data, blob, trust_roots=self.roots, crls=self.crls, moment=moment
                    )
                    problems.extend(f"{part}: {p}" for p in seal.problems)
                else:
                    token = verify_timestamp(
                        blob, data=data, trust_roots=self.roots, crls=self.crls, moment=moment
                    )
                    problems.extend(f"{part}: {p}" for p in token.problems)
        return problems


def _renewals_of(name: str, files: dict[str, Path], read: Callable[[str], bytes]) -> list[Renewal]:
    found: dict[int, dict[str, bytes]] = {}
    for other in files:
        match = RENEWAL_NAME.match(other)
        if match and match["artifact"] == name:
            found.setdefault(int(match["n"]), {})[match["part"]] = read(other)
    return [
        Renewal(n=n, body=parts.get("json", b""), token=parts.get("tsr", b""))
        for n, parts in sorted(found.items())
    ]


def _document_problems(record: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """The exported artifacts against the journal events exported with them."""
    problems = []
    stored = {
        e["payload"]["artifact"]: e["payload"]
        for e in record["journal"]
        if e.get("action") == "artifact.stored" and isinstance(e.get("payload"), dict)
    }
    for event in record["journal"]:
        if fmt.row_hash(event) != event.get("hash"):
            problems.append(f"journal event {event.get('seq')}: hash does not recompute")
        if canonical_digest(event.get("payload"), event["hash_alg"]) != event["payload_digest"]:
            problems.append(f"journal event {event.get('seq')}: payload differs from its digest")
    for entry in entries:
        artifact = entry.get("artifact")
        if artifact is None:
            continue
        recorded = stored.get(artifact)
        if recorded is None:
            problems.append(f"artifact {artifact}: no artifact.stored event records it")
        elif recorded.get("sha256") != entry.get("sha256"):
            problems.append(
                f"artifact {artifact}: exported bytes {entry.get('sha256')}, "
                f"journal {recorded.get('sha256')}"
            )
    missing = sorted(set(stored) - {e.get("artifact") for e in entries})
    if missing:
        problems.append("artifacts recorded but not exported: " + ", ".join(missing))
    return problems


def _crl_blocks(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    return CRL_PEM.findall(data)
