"""Evidence bundles: one ZIP with everything that proves one archived document, for a tax
auditor who checks it without Coffre (with ``archive.bundle_verify``, or with sha256sum,
openssl, pyhanko and Python's standard library: the README inside gives the commands).

A bundle holds the document's artifacts as stored; the certificates of its seals and
timestamps with the trust roots and CRLs; Coffre's own verification at export time; the
document's journal events and the chain segment that ties them to a timestamped anchor.

The segment runs from the document's first event to the first anchor at or after its
last one, every event in between included so that the chain can be recomputed offline
and an auditor can see that no event of the document is missing from it. Events of
other subjects are given without their payload: an event's hash covers the payload's
digest, not the payload, so the digest is enough to recompute the chain, and the bundle
does not disclose other documents' (other companies') data to this auditor.

Every export is journaled ("document.exported", with the bundle's SHA-256); that event
comes after the bundle's anchor, so it is not in the bundle. Layout and row format are
``archive.bundle_format``'s; checking a bundle is ``archive.bundle_verify``'s.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import misc
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlmodel import Session, col, func, select

from archive import bundle_format as fmt
from archive._asn1 import raw_der
from archive.bundle_readme import Commands, readme
from archive.canonical import instant
from archive.context import Archive
from archive.errors import JournalError
from archive.journal import anchor_body
from archive.models import (
    Artifact,
    Company,
    Document,
    DocumentFlag,
    Evidence,
    InvoiceRecord,
    JournalAnchor,
    JournalEvent,
    LifecycleStatus,
)
from archive.pki import cert_sha256, is_development_certificate
from archive.service import anchor_if_due, artifacts_of, evidence_of, get_document
from archive.timestamp import TimestampError, TimestampToken
from archive.verify import VerificationReport, verify_document
from storage import session_scope
from storage.types import utcnow

__all__ = ["build_bundle", "bundle_filename"]

_CHAIN_CHECK_SOURCE = Path(__file__).with_name("_offline_chain_check.py")
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, misc.PdfError, TimestampError)


def bundle_filename(document_id: uuid.UUID | str) -> str:
    return f"{fmt.top_directory(str(document_id))}.zip"


def build_bundle(archive: Archive, document_id: uuid.UUID | str, *, actor: str) -> bytes:
    """The evidence bundle of a document (ZIP bytes); the export is journaled.

    Anchors the journal first when no anchor covers the document's last event yet.
    """
    with session_scope(archive.engine, read_only=True) as session:
        key = get_document(session, document_id).id
    subject = f"document:{key}"
    report = verify_document(archive, key, actor=actor, record=False)
    anchor = _covering_anchor(archive, subject)
    with session_scope(archive.engine, read_only=True) as session:
        snapshot = _snapshot(session, key, anchor)
    blobs = {
        a.name: archive.store.get(a.storage_key, a.storage_version) for a in snapshot.artifacts
    }
    exported_at = utcnow()
    files = _files(archive, snapshot, blobs, report, actor=actor, exported_at=exported_at)
    data = _zip(fmt.top_directory(str(key)), files, exported_at)
    with session_scope(archive.engine) as session:
        archive.journal.append(
            session,
            actor=actor,
            action="document.exported",
            subject=subject,
            payload={
                "format": fmt.FORMAT,
                "version": fmt.VERSION,
                "bundle_sha256": hashlib.sha256(data).hexdigest(),
                "bundle_size": len(data),
                "exported_at": exported_at,
                "artifacts": {a.name: a.sha256 for a in snapshot.artifacts},
                "chain": [snapshot.chain[0].seq, snapshot.chain[-1].seq],
                "anchor_seq": anchor.seq,
                "verified_ok": report.ok,
            },
        )
    anchor_if_due(archive)
    return data


# -- reading what the bundle proves ----------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    document: Document
    company: Company | None
    artifacts: list[Artifact]
    evidence: dict[uuid.UUID, Evidence]
    invoices: list[InvoiceRecord]
    flags: list[DocumentFlag]
    lifecycle: list[LifecycleStatus]
    #: The segment: from the document's first event to the anchored head, in order.
    chain: list[JournalEvent]
    anchor: JournalAnchor


def _anchor_at_or_after(session: Session, subject: str) -> JournalAnchor | None:
    last = session.exec(
        select(func.max(JournalEvent.seq)).where(JournalEvent.subject == subject)
    ).one()
    if last is None:
        raise JournalError(f"the journal has no event for {subject}", subject=subject)
    query = select(JournalAnchor).where(JournalAnchor.head_seq >= last)
    return session.exec(query.order_by(col(JournalAnchor.seq)).limit(1)).first()


def _covering_anchor(archive: Archive, subject: str) -> JournalAnchor:
    with session_scope(archive.engine, read_only=True) as session:
        anchor = _anchor_at_or_after(session, subject)
    if anchor is None:
        anchor_if_due(archive, force=True)
        with session_scope(archive.engine, read_only=True) as session:
            anchor = _anchor_at_or_after(session, subject)
    if anchor is None:
        raise JournalError("the journal could not be anchored for the export", subject=subject)
    return anchor


def _snapshot(session: Session, document_id: uuid.UUID, anchor: JournalAnchor) -> _Snapshot:
    document = get_document(session, document_id)
    artifacts = artifacts_of(session, document.id)
    subject = f"document:{document.id}"
    first = session.exec(
        select(func.min(JournalEvent.seq)).where(JournalEvent.subject == subject)
    ).one()
    chain = list(
        session.exec(
            select(JournalEvent)
            .where(JournalEvent.seq >= first, JournalEvent.seq <= anchor.head_seq)
            .order_by(col(JournalEvent.seq))
        )
    )

    def rows(model: Any, order: Any) -> list[Any]:
        query = select(model).where(model.document_id == document.id).order_by(order)
        return list(session.exec(query))

    # What was added after the anchor (a completed scan, a correction) is not in the chain:
    # it belongs to the next export, not to this one.
    later = session.exec(
        select(JournalEvent).where(
            JournalEvent.subject == subject,
            JournalEvent.seq > anchor.head_seq,
            col(JournalEvent.action).in_(("artifact.stored", "invoice.recorded")),
        )
    ).all()
    late_artifacts = {e.payload.get("artifact") for e in later if e.action == "artifact.stored"}
    late_versions = {e.payload.get("version") for e in later if e.action == "invoice.recorded"}
    artifacts = [a for a in artifacts if a.name not in late_artifacts]
    invoices = rows(InvoiceRecord, col(InvoiceRecord.version))
    return _Snapshot(
        document=document,
        company=session.get(Company, document.company_id),
        artifacts=artifacts,
        evidence=evidence_of(session, [a.id for a in artifacts]),
        invoices=[r for r in invoices if r.version not in late_versions],
        flags=rows(DocumentFlag, col(DocumentFlag.created_at)),
        lifecycle=rows(LifecycleStatus, col(LifecycleStatus.recorded_at)),
        chain=chain,
        anchor=anchor,
    )


# -- certificates and CRLs -------------------------------------------------------------------


@dataclass
class _Certificates:
    seal: dict[str, bytes]
    tsa: dict[str, bytes]
    crls: dict[str, bytes]

    def add(self, into: dict[str, bytes], ders: Iterable[bytes]) -> None:
        for der in ders:
            cert = x509.load_der_x509_certificate(der)
            if cert.issuer != cert.subject:  # roots go in root.pem, from the configuration
                into.setdefault(cert_sha256(der), der)


def _signed_data(content_info_der: bytes) -> cms.SignedData:
    info = cms.ContentInfo.load(content_info_der)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    return info["content"]


def _cms_certificates(signed_data: cms.SignedData) -> list[bytes]:
    """The signer's certificate first, then the others embedded in the CMS."""
    certs = [
        raw_der(c.chosen) for c in signed_data["certificates"] or () if c.name == "certificate"
    ]
    sid = signed_data["signer_infos"][0]["sid"].chosen
    if isinstance(sid, cms.IssuerAndSerialNumber):
        for choice in signed_data["certificates"] or ():
            cert = choice.chosen
            if (
                choice.name == "certificate"
                and cert.serial_number == sid["serial_number"].native
                and raw_der(cert.issuer) == raw_der(sid["issuer"])
            ):
                signer = raw_der(cert)
                return [signer, *(c for c in certs if c != signer)]
    return certs


def _signature_tokens(signed_data: cms.SignedData) -> list[bytes]:
    tokens: list[bytes] = []
    for signer_info in signed_data["signer_infos"]:
        for attribute in signer_info["unsigned_attrs"] or ():
            if attribute["type"].native == "signature_time_stamp_token":
                tokens.extend(raw_der(value) for value in attribute["values"])
    return tokens


def _cms_crls(signed_data: cms.SignedData) -> list[bytes]:
    return [raw_der(c.chosen) for c in signed_data["crls"] or () if c.name == "crl"]


def _collect_certificates(
    archive: Archive, snapshot: _Snapshot, blobs: dict[str, bytes]
) -> _Certificates:
    """The certificates of every seal and timestamp in the bundle, as they were used.

    Taken from the signatures themselves, not from today's configuration: the seal or
    TSA certificate may have been renewed since. A part that cannot be parsed is left
    out (the export-time verification report names it).
    """
    found = _Certificates(seal={}, tsa={}, crls={})
    for crl in archive.crls:
        found.crls.setdefault(hashlib.sha256(crl).hexdigest(), crl)
    tokens: list[bytes] = [snapshot.anchor.tst]
    for artifact in snapshot.artifacts:
        data = blobs[artifact.name]
        evidence = snapshot.evidence.get(artifact.id)
        try:
            if artifact.role == "seal":
                signed = _signed_data(data)
                found.add(found.seal, _cms_certificates(signed))
                tokens.extend(_signature_tokens(signed))
                for crl in _cms_crls(signed):
                    found.crls.setdefault(hashlib.sha256(crl).hexdigest(), crl)
            elif artifact.role == "timestamp":
                tokens.append(data)
            elif evidence is not None and evidence.seal_format.startswith("PAdES"):
                reader = PdfFileReader(io.BytesIO(data), strict=False)
                for signature in reader.embedded_regular_signatures:
                    found.add(found.seal, _cms_certificates(signature.signed_data))
                    tokens.extend(_signature_tokens(signature.signed_data))
                for stamp in reader.embedded_timestamp_signatures:
                    found.add(found.tsa, _cms_certificates(stamp.signed_data))
        except _PARSE_ERRORS:
            continue
    for token in tokens:
        try:
            content = TimestampToken.from_response_der(token).token_der
        except TimestampError:
            content = token  # a bare token (signature timestamps are)
        try:
            found.add(found.tsa, _cms_certificates(_signed_data(content)))
        except _PARSE_ERRORS:
            continue
    return found


def _pem_certificates(ders: Iterable[bytes]) -> bytes:
    return b"".join(
        x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM) for der in ders
    )


def _pem_crls(ders: Iterable[bytes]) -> bytes:
    out = []
    for der in ders:
        try:
            out.append(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
        except ValueError:
            continue
    return b"".join(out)


def _describe_certificates(ders: Iterable[bytes]) -> list[dict[str, Any]]:
    described = []
    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        described.append(
            {
                "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(),
                "serial": format(cert.serial_number, "x"),
                "sha256": cert_sha256(der),
                "not_after": instant(cert.not_valid_after_utc),
                "development": is_development_certificate(cert),
            }
        )
    return described


# -- files -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    data: bytes
    role: str
    facts: dict[str, Any]


def _json_bytes(value: Any) -> bytes:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return (text + "\n").encode("utf-8")


def _files(
    archive: Archive,
    snapshot: _Snapshot,
    blobs: dict[str, bytes],
    report: VerificationReport,
    *,
    actor: str,
    exported_at: datetime,
) -> dict[str, _File]:
    """Every file of the bundle by its path (relative to the bundle's folder)."""
    files, paths = _artifact_files(snapshot, blobs)
    files |= _certificate_files(archive, snapshot, blobs)
    files |= _record_files(snapshot, report, exported_at)
    files |= _journal_files(snapshot)
    development = any(is_development_certificate(r) for r in archive.trust_roots)
    commands = Commands.for_bundle(
        top=fmt.top_directory(str(snapshot.document.id)),
        original=paths.get("original"),
        signature=paths.get("original.p7s"),
        token=paths.get("original.tsr"),
        sealed=paths.get("sealed"),
    )
    french = readme("fr", commands, development=development)
    english = readme("en", commands, development=development)
    files[fmt.README_FR] = _file(fmt.README_FR, french.encode("utf-8"))
    files[fmt.README_EN] = _file(fmt.README_EN, english.encode("utf-8"))
    files[fmt.MANIFEST] = _File(
        _json_bytes(_manifest(snapshot, files, actor=actor, exported_at=exported_at)),
        "manifest",
        {},
    )
    sums = "".join(
        f"{hashlib.sha256(item.data).hexdigest()}  {path}\n" for path, item in sorted(files.items())
    )
    files[fmt.SHA256SUMS] = _File(sums.encode("ascii"), "checksums", {})
    return files


def _file(path: str, data: bytes, **facts: Any) -> _File:
    return _File(data, fmt.ROLES[path], facts)


def _artifact_files(
    snapshot: _Snapshot, blobs: dict[str, bytes]
) -> tuple[dict[str, _File], dict[str, str]]:
    """The artifacts as stored, and the path each artifact name got."""
    files: dict[str, _File] = {}
    paths: dict[str, str] = {}
    by_id = {a.id: a for a in snapshot.artifacts}
    for artifact in snapshot.artifacts:
        path = fmt.artifact_path(artifact.name, artifact.media_type)
        while path in files:  # two names made alike by the sanitising: keep both
            path = f"{path}.{len(files)}"
        paths[artifact.name] = path
        facts: dict[str, Any] = {
            "artifact": artifact.name,
            "artifact_role": artifact.role,
            "media_type": artifact.media_type,
        }
        if artifact.of_artifact_id in by_id:
            facts["of"] = by_id[artifact.of_artifact_id].name
        evidence = snapshot.evidence.get(artifact.id)
        if evidence is not None:
            facts["seal_format"] = evidence.seal_format
            for key, ref in (
                ("signature", evidence.signature_artifact_id),
                ("timestamp", evidence.timestamp_artifact_id),
            ):
                if ref in by_id:
                    facts[key] = by_id[ref].name
        files[path] = _File(blobs[artifact.name], fmt.ARTIFACT_ROLE, facts)
    return files, paths


def _certificate_files(
    archive: Archive, snapshot: _Snapshot, blobs: dict[str, bytes]
) -> dict[str, _File]:
    found = _collect_certificates(archive, snapshot, blobs)
    roots = {cert_sha256(root): _der(root) for root in archive.trust_roots}
    roots_pem = _pem_certificates(roots.values())
    crls_pem = _pem_crls(found.crls.values())
    return {
        fmt.ROOTS: _file(fmt.ROOTS, roots_pem, certificates=_describe_certificates(roots.values())),
        fmt.SEAL_CERTS: _file(
            fmt.SEAL_CERTS,
            _pem_certificates(found.seal.values()),
            certificates=_describe_certificates(found.seal.values()),
        ),
        fmt.TSA_CERTS: _file(
            fmt.TSA_CERTS,
            _pem_certificates(found.tsa.values()),
            certificates=_describe_certificates(found.tsa.values()),
        ),
        fmt.CRLS: _file(fmt.CRLS, crls_pem),
        fmt.ROOTS_AND_CRLS: _file(fmt.ROOTS_AND_CRLS, roots_pem + crls_pem),
    }


def _record_files(
    snapshot: _Snapshot, report: VerificationReport, exported_at: datetime
) -> dict[str, _File]:
    """The document's record and invoice data, and Coffre's verification at export."""
    company = snapshot.company
    document = {
        "document": snapshot.document.model_dump(mode="json"),
        "company": company.model_dump(mode="json", include={"id", "name", "siren"})
        if company is not None
        else None,
        "flags": [f.model_dump(mode="json") for f in snapshot.flags],
        "lifecycle": [s.model_dump(mode="json") for s in snapshot.lifecycle],
    }
    verification = {
        "note": "Coffre's own verification at export time, against its database, its "
        "storage and its whole journal: a statement by Coffre, not a proof.",
        "verified_at": instant(exported_at),
        **report.to_json(),
    }
    files = {
        fmt.DOCUMENT: _file(fmt.DOCUMENT, _json_bytes(document)),
        fmt.VALIDATION_REPORT: _file(fmt.VALIDATION_REPORT, _json_bytes(verification)),
    }
    if snapshot.invoices:
        fields = {"version", "source", "data", "data_digest", "created_at"}
        versions = [r.model_dump(mode="json", include=fields) for r in snapshot.invoices]
        files[fmt.INVOICE_DATA] = _file(fmt.INVOICE_DATA, _json_bytes(versions))
    return files


def _journal_files(snapshot: _Snapshot) -> dict[str, _File]:
    subject = f"document:{snapshot.document.id}"
    rows = [fmt.event_row(e, with_payload=e.subject == subject) for e in snapshot.chain]
    chain = b"".join(
        json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n" for row in rows
    )
    anchor = snapshot.anchor
    anchor_row = {
        "seq": anchor.seq,
        "head_seq": anchor.head_seq,
        "head_hash": anchor.head_hash,
        "prev_anchor_hash": anchor.prev_anchor_hash,
        "anchor_hash": anchor.anchor_hash,
        "hash_alg": anchor.hash_alg,
        "tst_serial": anchor.tst_serial,
        "tst_time": instant(anchor.tst_time),
    }
    body = anchor_body(
        seq=anchor.seq,
        head_seq=anchor.head_seq,
        head_hash=anchor.head_hash,
        prev_anchor_hash=anchor.prev_anchor_hash,
    )
    mine = [row for row in rows if row["subject"] == subject]
    return {
        fmt.EVENTS: _file(fmt.EVENTS, _json_bytes(mine)),
        fmt.CHAIN: _file(fmt.CHAIN, chain),
        fmt.ANCHOR: _file(fmt.ANCHOR, _json_bytes(anchor_row)),
        fmt.ANCHOR_BODY: _file(fmt.ANCHOR_BODY, body),
        fmt.ANCHOR_TOKEN: _file(fmt.ANCHOR_TOKEN, anchor.tst),
        fmt.CHAIN_CHECK: _file(fmt.CHAIN_CHECK, _CHAIN_CHECK_SOURCE.read_bytes()),
    }


def _manifest(
    snapshot: _Snapshot, files: dict[str, _File], *, actor: str, exported_at: datetime
) -> dict[str, Any]:
    subject = f"document:{snapshot.document.id}"
    return {
        "format": fmt.FORMAT,
        "version": fmt.VERSION,
        "document_id": str(snapshot.document.id),
        "subject": subject,
        "exported_at": instant(exported_at),
        "exported_by": actor,
        "hash_alg": "sha256",
        "journal": {
            "first_seq": snapshot.chain[0].seq,
            "head_seq": snapshot.chain[-1].seq,
            "anchor_seq": snapshot.anchor.seq,
            "events": len(snapshot.chain),
            "document_events": sum(1 for e in snapshot.chain if e.subject == subject),
            "other_subjects": "payload omitted; payload_digest kept so every hash recomputes",
        },
        "files": [
            {
                "path": path,
                "role": item.role,
                "sha256": hashlib.sha256(item.data).hexdigest(),
                "size": len(item.data),
                **item.facts,
            }
            for path, item in sorted(files.items())
        ],
    }


def _der(cert: Any) -> bytes:
    if isinstance(cert, x509.Certificate):
        return cert.public_bytes(serialization.Encoding.DER)
    return raw_der(cert) if not isinstance(cert, bytes) else cert


def _zip(top: str, files: dict[str, _File], when: datetime) -> bytes:
    """Deterministic: the READMEs, manifest and sums first, then the rest in path order."""
    first = [fmt.README_FR, fmt.README_EN, fmt.MANIFEST, fmt.SHA256SUMS]
    order = [p for p in first if p in files] + sorted(p for p in files if p not in first)
    stamp = when.timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive_zip:
        for path in order:
            info = zipfile.ZipInfo(f"{top}/{path}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive_zip.writestr(info, files[path].data)
    return buffer.getvalue()
