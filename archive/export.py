"""Fiscal-year exports: every document of one company's fiscal year, for a tax auditor, as a
folder of plain files under one sealed and timestamped manifest.

Layout (``OUT/``)::

    README.txt                  what is here and the commands to check it
    index.csv                   one row per document (ids, supplier, amounts, digests)
    documents/<id>/document.json        the record, invoice data, evidence rows, journal events
    documents/<id>/artifacts/<name>     the artifacts as stored, byte for byte
    certificates/root.pem, seal.pem, tsa.pem, crls.pem, root-and-crls.pem
    SHA256SUMS                  every file above (``sha256sum -c SHA256SUMS``)
    manifest.json               every file above with its SHA-256, size and role
    manifest.json.p7s           detached CMS seal over manifest.json (the archive's seal)
    manifest.json.tsr           RFC 3161 token over SHA-256 of manifest.json

Why folders and not one evidence bundle per document: a bundle re-verifies the whole
journal and carries a chain segment, the trust roots and READMEs each time, so N bundles
cost O(N × journal) time and repeat the same certificates N times; an auditor also opens,
greps and hashes plain files without unzipping thousands of archives. Each document's
own evidence (its .p7s, .tsr, PAdES seal, renewals) is still there, checkable file by
file; ``coffre export-evidence ID`` gives a full bundle (with the journal chain segment)
for any document the auditor wants to look at more closely.

Streaming: documents are read in keyset pages, each file is written and hashed as it
goes, and the manifest is assembled from per-file entries appended to a temporary JSONL
file; the manifest is sealed through a memory map, so memory does not grow with the
number of documents. Output is written to a temporary sibling folder renamed at the end:
OUT either holds a complete export or does not exist. The export is journaled
("period.exported"). :func:`verify_export` checks a folder offline.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import mmap
import os
import re
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import misc
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlmodel import Session, col, func, select

from archive import bundle_format as fmt
from archive._aio import run_sync
from archive._asn1 import raw_der
from archive.canonical import canonical_digest, instant
from archive.context import Archive
from archive.errors import ArchiveError
from archive.journal import Journal
from archive.models import Artifact, Company, Document, DocumentFlag, InvoiceRecord
from archive.pki import cert_sha256, is_development_certificate
from archive.renewal import RENEWAL_NAME, Renewal, check_renewals
from archive.seal_check import validate_detached_seal, validate_pdf_seal
from archive.service import (
    anchor_if_due,
    artifacts_of,
    evidence_of,
    fiscal_year,
    resolve_company,
)
from archive.timestamp import TimestampError, TimestampToken, verify_timestamp
from archive.verify import Check, VerificationReport
from storage import StorageError, session_scope
from storage.objects import CHUNK_SIZE
from storage.types import utcnow

__all__ = [
    "FORMAT",
    "ExportProgress",
    "ExportReport",
    "ExportResult",
    "ExportUnreadable",
    "OutputExists",
    "export_period",
    "verify_export",
]

FORMAT = "coffre-period-export"
VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_SEAL = "manifest.json.p7s"
MANIFEST_TOKEN = "manifest.json.tsr"  # noqa: S105 - a file name, not a secret
INDEX = "index.csv"
SUMS = "SHA256SUMS"
README = "README.txt"
DOCUMENTS = "documents"
#: Files the manifest cannot list (itself and the proofs over it).
UNLISTED = frozenset({MANIFEST, MANIFEST_SEAL, MANIFEST_TOKEN})
INDEX_COLUMNS = (
    "document_id",
    "kind",
    "state",
    "supplier_name",
    "siren",
    "invoice_number",
    "issue_date",
    "due_date",
    "total_ht",
    "total_vat",
    "total_ttc",
    "currency",
    "original_sha256",
    "sealed_sha256",
    "received_at",
)
FISCAL_YEAR_RULE = (
    "calendar year of the issue date of the latest invoice data version, else of received_at (UTC)"
)
_PAGE = 100
_SHOWN = 20
_ENTRIES = ".entries.jsonl"
_CRL_PEM = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


class OutputExists(ArchiveError):
    """The output folder exists and is not empty: an export never writes over files."""

    code = "output_exists"
    status = 409


class ExportUnreadable(ArchiveError):
    """Not an export folder that can be read at all (no manifest, not JSON...)."""

    code = "export_unreadable"
    status = 422


@dataclass(frozen=True)
class ExportProgress:
    documents_scanned: int
    documents_total: int
    documents_exported: int


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    company_id: uuid.UUID
    fiscal_year: int
    documents: int
    files: int
    bytes: int
    manifest_sha256: str
    #: Artifacts whose stored bytes no longer match their fingerprint (exported as found).
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "directory": str(self.directory),
            "company_id": str(self.company_id),
            "fiscal_year": self.fiscal_year,
            "documents": self.documents,
            "files": self.files,
            "bytes": self.bytes,
            "manifest_sha256": self.manifest_sha256,
            "problems": list(self.problems),
        }


# -- writing ----------------------------------------------------------------------------------


class _Writer:
    """Writes files under the work folder and appends one manifest entry per file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: IO[str] = (root / _ENTRIES).open("w", encoding="utf-8")
        self.files = 0
        self.bytes = 0

    def _target(self, path: str) -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def entry(self, path: str, sha256: str, size: int, role: str, **facts: Any) -> None:
        row = {"path": path, "role": role, "sha256": sha256, "size": size, **facts}
        self.entries.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        self.files += 1
        self.bytes += size

    def write(self, path: str, data: bytes, role: str, **facts: Any) -> str:
        self._target(path).write_bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        self.entry(path, sha256, len(data), role, **facts)
        return sha256

    def copy(self, path: str, source: IO[bytes], role: str, **facts: Any) -> str:
        """Stream ``source`` into ``path``, hashing as it goes."""
        digest = hashlib.sha256()
        size = 0
        with self._target(path).open("wb") as out:
            while chunk := source.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        sha256 = digest.hexdigest()
        self.entry(path, sha256, size, role, **facts)
        return sha256

    def add_file(self, path: str, role: str) -> str:
        """Enter a file already written under the work folder."""
        sha256, size = _hash_file(self.root / path)
        self.entry(path, sha256, size, role)
        return sha256

    def rows(self) -> Iterator[str]:
        """The entries written so far, as JSON lines."""
        self.entries.flush()
        with (self.root / _ENTRIES).open(encoding="utf-8") as handle:
            yield from handle


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class _Certificates:
    """Certificates and CRLs met in the exported evidence, by digest (few distinct ones)."""

    def __init__(self) -> None:
        self.seal: dict[str, bytes] = {}
        self.tsa: dict[str, bytes] = {}
        self.crls: dict[str, bytes] = {}

    def _add(self, into: dict[str, bytes], signed_data: cms.SignedData) -> None:
        for choice in signed_data["certificates"] or ():
            if choice.name == "certificate":
                cert = choice.chosen
                if raw_der(cert.issuer) != raw_der(cert.subject):  # roots: root.pem
                    into.setdefault(cert_sha256(cert), raw_der(cert))
        for choice in signed_data["crls"] or ():
            if choice.name == "crl":
                der = raw_der(choice.chosen)
                self.crls.setdefault(hashlib.sha256(der).hexdigest(), der)

    def signature(self, signed_data: cms.SignedData) -> None:
        self._add(self.seal, signed_data)
        for signer_info in signed_data["signer_infos"]:
            for attribute in signer_info["unsigned_attrs"] or ():
                if attribute["type"].native == "signature_time_stamp_token":
                    for token in attribute["values"]:
                        self._add(self.tsa, token["content"])

    def token(self, response_der: bytes) -> None:
        token = cms.ContentInfo.load(TimestampToken.from_response_der(response_der).token_der)
        self._add(self.tsa, token["content"])

    def pdf(self, data: bytes) -> None:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        for signature in reader.embedded_regular_signatures:
            self.signature(signature.signed_data)
        for stamp in reader.embedded_timestamp_signatures:
            self._add(self.tsa, stamp.signed_data)


def export_period(
    archive: Archive,
    *,
    company_ref: str,
    year: int,
    out: Path,
    actor: str,
    on_progress: Callable[[ExportProgress], None] | None = None,
    page_size: int = _PAGE,
) -> ExportResult:
    """Write every document of ``company_ref``'s fiscal ``year`` to ``out`` (see module)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputExists(f"{out} exists and is not an empty folder", path=str(out))
    with session_scope(archive.engine, read_only=True) as session:
        company = resolve_company(session, company_ref)
        total = _count(session, company.id)
    work = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    work.mkdir(parents=True)
    writer = _Writer(work)
    try:
        result = _export(archive, company, year, writer, total, actor, on_progress, page_size)
        writer.entries.close()
        (work / _ENTRIES).unlink()
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        writer.entries.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    result = dataclasses.replace(result, directory=out)
    with session_scope(archive.engine) as session:
        archive.journal.append(
            session,
            actor=actor,
            action="period.exported",
            subject=f"company:{company.id}",
            payload={
                "format": FORMAT,
                "version": VERSION,
                "company_id": company.id,
                "siren": company.siren,
                "fiscal_year": year,
                "count": result.documents,
                "files": result.files,
                "bytes": result.bytes,
                "manifest_sha256": result.manifest_sha256,
                "problems": list(result.problems[:_SHOWN]),
            },
        )
    anchor_if_due(archive)
    return result


def _count(session: Session, company_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(Document).where(Document.company_id == company_id)
    return int(session.exec(query).one())


def _export(
    archive: Archive,
    company: Company,
    year: int,
    writer: _Writer,
    total: int,
    actor: str,
    on_progress: Callable[[ExportProgress], None] | None,
    page_size: int,
) -> ExportResult:
    exported_at = utcnow()
    certs = _Certificates()
    for crl in archive.crls:
        certs.crls.setdefault(hashlib.sha256(crl).hexdigest(), crl)
    problems: list[str] = []
    scanned = exported = 0
    with (writer.root / INDEX).open("w", encoding="utf-8", newline="") as index_file:
        index = csv.writer(index_file)
        index.writerow(INDEX_COLUMNS)
        last: uuid.UUID | None = None
        while True:
            # Keyset pages of ids; each document is then read in its own short session,
            # so what one document loads is released before the next.
            with session_scope(archive.engine, read_only=True) as session:
                query = (
                    select(Document.id)
                    .where(Document.company_id == company.id)
                    .order_by(col(Document.id))
                    .limit(page_size)
                )
                if last is not None:
                    query = query.where(col(Document.id) > last)
                page = list(session.exec(query))
            if not page:
                break
            for document_id in page:
                scanned += 1
                with session_scope(archive.engine, read_only=True) as session:
                    document = session.get(Document, document_id)
                    if document is None or fiscal_year(session, document) != year:
                        continue
                    exported += 1
                    row = _export_document(archive, session, company, document, year, writer, certs)
                problems.extend(row.pop("problems"))
                index.writerow([row.get(column) or "" for column in INDEX_COLUMNS])
            last = page[-1]
            if on_progress is not None:
                on_progress(ExportProgress(scanned, total, exported))
    writer.add_file(INDEX, "index")
    _write_certificates(archive, writer, certs)
    writer.write(README, _readme(company, year).encode("utf-8"), "readme")
    sums = writer.root / SUMS
    with sums.open("w", encoding="utf-8") as handle:
        for line in writer.rows():
            entry = json.loads(line)
            handle.write(f"{entry['sha256']}  {entry['path']}\n")
    writer.add_file(SUMS, "checksums")
    sealer = archive.sealer_for(company)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "company": {"id": str(company.id), "name": company.name, "siren": company.siren},
        "fiscal_year": year,
        "fiscal_year_rule": FISCAL_YEAR_RULE,
        "exported_at": instant(exported_at),
        "exported_by": actor,
        "documents": exported,
        "hash_alg": "sha256",
        "seal": {"file": MANIFEST_SEAL, "cert_sha256": sealer.cert_sha256},
        "timestamp": {"file": MANIFEST_TOKEN, "imprint": "sha256 of manifest.json"},
    }
    manifest_sha256 = _write_manifest(writer, header)
    digest = bytes.fromhex(manifest_sha256)
    with (
        (writer.root / MANIFEST).open("rb") as manifest_file,
        mmap.mmap(manifest_file.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
    ):
        # The seal hashes the bytes it is given: a memory map lets it read the manifest
        # from the page cache instead of a copy that would grow with the export.
        seal = run_sync(sealer.seal_detached(cast(bytes, mapped)))
    (writer.root / MANIFEST_SEAL).write_bytes(seal.cms_der)
    token = run_sync(archive.timestamper.stamp(digest))
    (writer.root / MANIFEST_TOKEN).write_bytes(token.response_der)
    return ExportResult(
        directory=writer.root,
        company_id=company.id,
        fiscal_year=year,
        documents=exported,
        files=writer.files,
        bytes=writer.bytes,
        manifest_sha256=manifest_sha256,
        problems=tuple(problems),
    )


def _write_manifest(writer: _Writer, header: dict[str, Any]) -> str:
    """``header`` plus ``"files": [...]`` from the JSONL entries, hashed as written."""
    digest = hashlib.sha256()
    opening = json.dumps(header, ensure_ascii=False, sort_keys=True, indent=1)
    with (writer.root / MANIFEST).open("wb") as out:

        def put(text: str) -> None:
            data = text.encode("utf-8")
            digest.update(data)
            out.write(data)

        put(opening[: opening.rindex("}")].rstrip() + ',\n "files": [\n')
        first = True
        for line in writer.rows():
            put(("  " if first else ",\n  ") + line.rstrip("\n"))
            first = False
        put("\n ]\n}\n")
    return digest.hexdigest()


def _latest_invoice(session: Session, document_id: uuid.UUID) -> list[InvoiceRecord]:
    query = select(InvoiceRecord).where(InvoiceRecord.document_id == document_id)
    return list(session.exec(query.order_by(col(InvoiceRecord.version))))


def _export_document(
    archive: Archive,
    session: Session,
    company: Company,
    document: Document,
    year: int,
    writer: _Writer,
    certs: _Certificates,
) -> dict[str, Any]:
    """Write one document's folder; return its index row (and ``problems``)."""
    folder = f"{DOCUMENTS}/{document.id}"
    artifacts = artifacts_of(session, document.id)
    evidence = evidence_of(session, [a.id for a in artifacts])
    invoices = _latest_invoice(session, document.id)
    events = Journal.events_for(session, f"document:{document.id}")
    flags = session.exec(select(DocumentFlag).where(DocumentFlag.document_id == document.id))
    problems: list[str] = []
    paths: dict[str, str] = {}
    for artifact in artifacts:
        path = f"{folder}/{fmt.artifact_path(artifact.name, artifact.media_type)}"
        while path in paths.values():  # two names made alike by the sanitising
            path += "_"
        paths[artifact.name] = path
        facts = {"document_id": str(document.id), "artifact": artifact.name}
        try:
            with archive.store.open(artifact.storage_key, artifact.storage_version) as source:
                sha256 = writer.copy(path, source, fmt.ARTIFACT_ROLE, **facts)
        except StorageError as exc:
            problems.append(f"document {document.id} artifact {artifact.name}: unreadable: {exc}")
            continue
        if sha256 != artifact.sha256:
            problems.append(
                f"document {document.id} artifact {artifact.name}: stored bytes hash to "
                f"{sha256}, recorded {artifact.sha256}"
            )
        _collect(certs, artifact, evidence.get(artifact.id), writer.root / path)
    record = {
        "format": FORMAT,
        "document": document.model_dump(mode="json"),
        "company": {"id": str(company.id), "name": company.name, "siren": company.siren},
        "fiscal_year": year,
        "artifacts": [
            {
                **a.model_dump(
                    mode="json", include={"id", "name", "role", "of_artifact_id", "sha256", "size"}
                ),
                "media_type": a.media_type,
                "path": paths.get(a.name),
                "evidence": evidence[a.id].model_dump(mode="json") if a.id in evidence else None,
            }
            for a in artifacts
        ],
        "invoice": [
            r.model_dump(mode="json", include={"version", "source", "data", "data_digest"})
            for r in invoices
        ],
        "flags": [f.model_dump(mode="json", include={"code", "message"}) for f in flags],
        "journal": [fmt.event_row(e, with_payload=True) for e in events],
    }
    writer.write(
        f"{folder}/document.json",
        (json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode(),
        "document",
        document_id=str(document.id),
    )
    data = invoices[-1].data if invoices else {}
    by_name = {a.name: a for a in artifacts}
    return {
        "document_id": str(document.id),
        "kind": document.kind,
        "state": document.state,
        "supplier_name": data.get("seller_name"),
        "siren": data.get("seller_siren"),
        "invoice_number": data.get("invoice_number"),
        "issue_date": data.get("issue_date"),
        "due_date": data.get("due_date"),
        "total_ht": data.get("total_ht"),
        "total_vat": data.get("total_vat"),
        "total_ttc": data.get("total_ttc"),
        "currency": data.get("currency"),
        "original_sha256": document.original_sha256,
        "sealed_sha256": by_name["sealed"].sha256 if "sealed" in by_name else None,
        "received_at": instant(document.received_at),
        "problems": problems,
    }


def _collect(certs: _Certificates, artifact: Artifact, evidence: Any, path: Path) -> None:
    """Note the certificates of a seal, token or sealed PDF (an unreadable part is left
    out: verification names it)."""
    try:
        if artifact.role == "seal":
            certs.signature(cms.ContentInfo.load(path.read_bytes())["content"])
        elif artifact.role == "timestamp":
            certs.token(path.read_bytes())
        elif evidence is not None and evidence.seal_format.startswith("PAdES"):
            if evidence.seal_cert_sha256 in certs.seal and evidence.tsa_cert_sha256 in certs.tsa:
                return  # parsing a PDF's signatures is slow; these are known already
            certs.pdf(path.read_bytes())
    except (ValueError, TypeError, KeyError, IndexError, TimestampError, misc.PdfError):
        return


def _pem(ders: Sequence[bytes]) -> bytes:
    return b"".join(
        x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for d in ders
    )


def _write_certificates(archive: Archive, writer: _Writer, certs: _Certificates) -> None:
    roots = [
        r.public_bytes(serialization.Encoding.DER)
        if isinstance(r, x509.Certificate)
        else raw_der(r)
        for r in archive.trust_roots
    ]
    crls = b""
    for der in certs.crls.values():
        try:
            crls += x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
        except ValueError:
            continue
    writer.write(fmt.ROOTS, _pem(roots), "trust-roots")
    writer.write(fmt.SEAL_CERTS, _pem(list(certs.seal.values())), "seal-certificates")
    writer.write(fmt.TSA_CERTS, _pem(list(certs.tsa.values())), "tsa-certificates")
    writer.write(fmt.CRLS, crls, "crls")
    writer.write(fmt.ROOTS_AND_CRLS, _pem(roots) + crls, "trust-roots-and-crls")


def _readme(company: Company, year: int) -> str:
    siren = company.siren or "-"
    return f"""Coffre — export of fiscal year {year} of {company.name} (SIREN {siren})
Export Coffre de l'exercice {year} de {company.name} (SIREN {siren})

Fiscal year: {FISCAL_YEAR_RULE}.
index.csv lists every document; documents/<id>/ holds each document's artifacts as stored
(artifacts/), and document.json (record, invoice data, evidence, journal events).

Check everything offline / Tout vérifier hors ligne:
  coffre verify-export .  [--trust your-root.pem] [--deep]

Or with standard tools / Ou avec les outils standard:
  openssl cms -verify -binary -inform DER -in manifest.json.p7s -content manifest.json \\
      -CAfile certificates/root.pem -purpose any -out /dev/null
  openssl ts -verify -data manifest.json -in manifest.json.tsr \\
      -CAfile certificates/root.pem -untrusted certificates/tsa.pem
  grep '"path": "SHA256SUMS"' manifest.json ; sha256sum SHA256SUMS    # the same digest
  sha256sum --quiet -c SHA256SUMS     # every other file (each one is in manifest.json too)

Renewed evidence / Preuves renouvelées (archive.renewal): A.renewal-N.json names the
artifact A and its earlier evidence files by SHA-256; A.renewal-N.tsr is an RFC 3161 token
over that JSON file; the evidence it covers must have been valid at the token's time:
  cd documents/ID/artifacts
  openssl ts -verify -data original.renewal-1.json -in original.renewal-1.tsr \\
      -CAfile ../../../certificates/root.pem -untrusted ../../../certificates/tsa.pem
  openssl ts -verify -data original.pdf -in original.tsr -CAfile ../../../certificates/root.pem \\
      -untrusted ../../../certificates/tsa.pem -attime EPOCH_OF_RENEWAL_1
sealed.lta-N.pdf is sealed.pdf plus validation data and a PAdES document timestamp
(pyhanko sign validate --trust ../../../certificates/root.pem sealed.lta-1.pdf).

Each document's own evidence: see the README of an evidence bundle
(coffre export-evidence ID) for the per-file openssl and pyhanko commands.
"""


# -- verifying --------------------------------------------------------------------------------


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
                sha256, size = _hash_file(target)
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
            "; ".join(problems[:_SHOWN])
            + (f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else "")
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
    return _CRL_PEM.findall(data)
