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
("period.exported"). :func:`archive.export_verify.verify_export` checks a folder offline.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import mmap
import re
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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
from archive.canonical import instant
from archive.context import Archive
from archive.errors import ArchiveError
from archive.journal import Journal
from archive.models import Artifact, Company, Document, DocumentFlag, InvoiceRecord
from archive.pki import cert_sha256
from archive.service import (
    anchor_if_due,
    artifacts_of,
    evidence_of,
    fiscal_year,
    resolve_company,
)
from archive.timestamp import TimestampError, TimestampToken
from storage import StorageError, session_scope
from storage.objects import CHUNK_SIZE
from storage.types import utcnow

__all__ = [
    "FORMAT",
    "ExportProgress",
    "ExportResult",
    "ExportUnreadable",
    "OutputExists",
    "export_period",
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
SHOWN_PROBLEMS = 20
_ENTRIES = ".entries.jsonl"
CRL_PEM = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


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
        sha256, size = hash_file(self.root / path)
        self.entry(path, sha256, size, role)
        return sha256

    def rows(self) -> Iterator[str]:
        """The entries written so far, as JSON lines."""
        self.entries.flush()
        with (self.root / _ENTRIES).open(encoding="utf-8") as handle:
            yield from handle


def hash_file(path: Path) -> tuple[str, int]:
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
                "problems": list(result.problems[:SHOWN_PROBLEMS]),
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
