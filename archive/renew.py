"""Renewal of evidence before its certificates or algorithms lapse (``coffre renew-evidence``).

PAdES artifacts get a document timestamp as a new artifact (``sealed.lta-<n>``); detached
evidence gets ``original.renewal-<n>.json`` (the digests of every earlier proof) and an RFC
3161 token over it (see :mod:`archive.renewal` for the construction an auditor checks).
What is due comes from the integrity sweep's reading of each evidence layer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.validation.dss import async_add_validation_info
from pyhanko_certvalidator import ValidationContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from archive._aio import run_sync
from archive.canonical import instant
from archive.context import Archive
from archive.errors import ArchiveError
from archive.integrity import (
    _LTA,
    _PDF_ERRORS,
    _PDF_MEDIA_TYPE,
    _TSR_MEDIA_TYPE,
    EvidenceLayer,
    Failure,
    SweepProgress,
    _add_token,
    _anchor_due,
    _Certificates,
    _count_documents,
    _document_pages,
    _layers,
    _need,
    _Proof,
)
from archive.models import Artifact, Document, Evidence
from archive.pki import to_asn1
from archive.renewal import BODY_MEDIA_TYPE, renewal_body, renewal_names
from archive.service import anchor_if_due, artifact_store_facts, artifacts_of, evidence_of
from archive.timestamp import TimestampError, TimestampToken, _crl_der
from storage import StorageError, session_scope
from storage.types import utcnow

__all__ = ["RenewalError", "RenewalReport", "Renewed", "renew_evidence"]


class RenewalError(ArchiveError):
    """Evidence cannot be renewed as configured (the message says why)."""

    code = "renewal_failed"


@dataclass(frozen=True)
class Renewed:
    document_id: uuid.UUID
    artifact: str
    construction: str
    #: The renewal's number and the artifacts it added (none on a dry run).
    n: int
    added: tuple[str, ...]
    reasons: tuple[str, ...]
    timestamp_time: dt.datetime | None = None


@dataclass(frozen=True)
class RenewalReport:
    dry_run: bool
    horizon_days: int
    documents: int
    renewed: tuple[Renewed, ...]
    failures: tuple[Failure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "horizon_days": self.horizon_days,
            "documents": self.documents,
            "renewed": [
                {
                    "document_id": str(r.document_id),
                    "artifact": r.artifact,
                    "construction": r.construction,
                    "renewal": r.n,
                    "added": list(r.added),
                    "reasons": list(r.reasons),
                    "timestamp_time": instant(r.timestamp_time) if r.timestamp_time else None,
                }
                for r in self.renewed
            ],
            "failures": [str(f) for f in self.failures],
        }


@dataclass(frozen=True)
class _Planned:
    layer: EvidenceLayer
    reasons: tuple[str, ...]
    #: name -> (bytes, media type, role) of what renewal stores.
    parts: dict[str, tuple[bytes, str, str]]
    token: TimestampToken
    base: Artifact
    base_evidence: Evidence | None


def renew_evidence(
    archive: Archive,
    *,
    actor: str,
    horizon_days: int = 365,
    company_id: uuid.UUID | None = None,
    dry_run: bool = False,
    on_progress: Callable[[SweepProgress], None] | None = None,
) -> RenewalReport:
    """Renew every piece of evidence whose current proof lapses within ``horizon_days``.

    Evidence whose stored bytes no longer match their fingerprints is not renewed (it is
    reported: renewing would certify a damaged file). Rerunning renews nothing twice: a
    renewed layer's proof is the fresh timestamp, far from its horizon.
    """
    limit = utcnow() + dt.timedelta(days=horizon_days)
    total = _count_documents(archive, company_id)
    certs = _Certificates()
    renewed: list[Renewed] = []
    failures: list[Failure] = []
    done = 0
    artifacts_seen = 0
    for ids in _document_pages(archive, company_id):
        for document_id in ids:
            with session_scope(archive.engine, read_only=True) as session:
                document = session.get(Document, document_id)
                if document is None:
                    continue
                artifacts = artifacts_of(session, document.id)
                evidence = evidence_of(session, [a.id for a in artifacts])
            artifacts_seen += len(artifacts)
            done += 1
            subject = f"document:{document.id}"
            # Read lazily: deciding needs only the small evidence files (and a PDF when it
            # carries document timestamps); renewing reads what the renewal covers.
            blobs = _StoredBytes(archive, artifacts)
            layers = _layers(document.id, artifacts, evidence, blobs, certs)
            todo = [(layer, tuple(layer.reasons(limit))) for layer in layers]
            for layer, reasons in todo:
                if not reasons:
                    continue
                needed = _needed(layer, artifacts, evidence)
                for name in needed:
                    blobs.get_checked(name)
                damaged = [name for name in needed if name in blobs.damaged]
                if damaged:
                    failures.extend(
                        Failure(subject, name, "stored bytes match fingerprint", "not renewed")
                        for name in damaged
                    )
                    continue
                if dry_run:
                    renewed.append(
                        Renewed(
                            document.id,
                            layer.artifact,
                            layer.construction,
                            layer.renewals + 1,
                            (),
                            reasons,
                        )
                    )
                    continue
                try:
                    planned = _prepare_renewal(
                        archive, layer, reasons, needed, artifacts, evidence, blobs, limit
                    )
                    result = _record_renewal(archive, document, planned, actor=actor)
                except (RenewalError, TimestampError, StorageError) as exc:
                    if isinstance(exc, RenewalError) and exc.data.get("fatal"):
                        raise
                    failures.append(Failure(subject, layer.artifact, "renewal", str(exc)))
                    continue
                if result is not None:
                    renewed.append(result)
        if on_progress is not None:
            on_progress(SweepProgress(done, total, artifacts_seen, len(failures)))
    if not dry_run:
        with session_scope(archive.engine, read_only=True) as session:
            anchor_reasons = _anchor_due(session, certs, limit)
        if renewed or anchor_reasons:
            # A fresh anchor, by the current TSA, covers the renewal events and the chain.
            anchor_if_due(archive, force=True)
    return RenewalReport(
        dry_run=dry_run,
        horizon_days=horizon_days,
        documents=done,
        renewed=tuple(renewed),
        failures=tuple(failures),
    )


class _StoredBytes(dict[str, bytes | None]):
    """A document's artifacts, read from the store on first use and checked against their
    fingerprints; damaged or unreadable ones read as None (and are listed in ``damaged``)."""

    def __init__(self, archive: Archive, artifacts: list[Artifact]) -> None:
        super().__init__()
        self._archive = archive
        self._by_name = {a.name: a for a in artifacts}
        self.damaged: list[str] = []

    def __missing__(self, name: str) -> bytes | None:
        artifact = self._by_name.get(name)
        if artifact is None:
            raise KeyError(name)
        try:
            data: bytes | None = self._archive.store.get(
                artifact.storage_key, artifact.storage_version
            )
        except StorageError:
            data = None
        if data is None or hashlib.sha256(data).hexdigest() != artifact.sha256:
            self.damaged.append(name)
            data = None
        self[name] = data
        return data

    def get_checked(self, name: str) -> bytes | None:
        try:
            return self[name]
        except KeyError:
            self.damaged.append(name)
            return None


def _needed(
    layer: EvidenceLayer, artifacts: list[Artifact], evidence: dict[uuid.UUID, Evidence]
) -> list[str]:
    """What renewing ``layer`` reads: the PDF to extend, or the artifact (first) and every
    evidence file the renewal will cover."""
    if layer.construction == "pades":
        return [layer.head]
    by_id = {a.id: a for a in artifacts}
    base = next(a for a in artifacts if a.name == layer.artifact)
    row = evidence.get(base.id)
    refs = (row.signature_artifact_id, row.timestamp_artifact_id) if row else ()
    names = [base.name, *(by_id[ref].name for ref in refs if ref in by_id)]
    for k in range(1, layer.renewals + 1):
        names.extend(renewal_names(base.name, k))
    return names


def _prepare_renewal(
    archive: Archive,
    layer: EvidenceLayer,
    reasons: tuple[str, ...],
    needed: list[str],
    artifacts: list[Artifact],
    evidence: dict[uuid.UUID, Evidence],
    blobs: dict[str, bytes | None],
    limit: dt.datetime,
) -> _Planned:
    """The new timestamp and files of one renewal, made before any transaction opens."""
    by_name = {a.name: a for a in artifacts}
    n = layer.renewals + 1
    if layer.construction == "pades":
        head = by_name[layer.head]
        pdf, token = run_sync(_document_timestamp(archive, _need(blobs, head.name)))
        parts = {f"{layer.artifact}{_LTA}{n}": (pdf, _PDF_MEDIA_TYPE, "content")}
    else:
        head = by_name[layer.artifact]
        body = renewal_body(
            artifact=head.name,
            artifact_sha256=head.sha256,
            n=n,
            covers=[(c, hashlib.sha256(_need(blobs, c)).hexdigest()) for c in needed[1:]],
        )
        token = run_sync(archive.timestamper.stamp(hashlib.sha256(body).digest()))
        body_name, token_name = renewal_names(head.name, n)
        parts = {
            body_name: (body, BODY_MEDIA_TYPE, "renewal"),
            token_name: (token.response_der, _TSR_MEDIA_TYPE, "timestamp"),
        }
    _refuse_short_lived(token, limit)
    return _Planned(layer, reasons, parts, token, head, evidence.get(head.id))


def _refuse_short_lived(token: TimestampToken, limit: dt.datetime) -> None:
    """A renewal by a TSA whose certificate lapses within the horizon would not help."""
    proof = _Proof()
    _add_token(proof, _Certificates(), cms.ContentInfo.load(token.token_der), "renewal token")
    reasons = EvidenceLayer(uuid.UUID(int=0), "", "", "", 0, tuple(proof.certificates), ()).reasons(
        limit
    )
    if reasons:
        raise RenewalError(
            "the configured TSA cannot renew evidence: its "
            + "; ".join(reasons)
            + " (configure a TSA whose certificate outlives the horizon)",
            fatal=True,
        )


async def _document_timestamp(archive: Archive, pdf: bytes) -> tuple[bytes, TimestampToken]:
    """``pdf`` plus validation data and a PAdES document timestamp (incremental update)."""
    context = ValidationContext(
        trust_roots=[to_asn1(c) for c in archive.trust_roots],
        crls=[_crl_der(c) for c in archive.crls],
        allow_fetching=False,
        revocation_mode="hard-fail",
    )
    stamper = PdfTimeStamper(archive.timestamper.pyhanko_stamper)
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        current = pdf
        if reader.embedded_timestamp_signatures:
            output = io.BytesIO()
            await stamper.async_update_archival_timestamp_chain(
                reader, context, in_place=False, output=output
            )
        else:
            if "/DSS" not in reader.root:
                # A B-T seal: add its validation data first, so the timestamp covers it.
                seal = reader.embedded_regular_signatures[-1]
                added = io.BytesIO()
                await async_add_validation_info(seal, context, in_place=False, output=added)
                current = added.getvalue()
            output = io.BytesIO()
            writer = IncrementalPdfFileWriter(io.BytesIO(current), strict=False)
            await stamper.async_timestamp_pdf(writer, "sha256", context, output=output)
    except _PDF_ERRORS as exc:
        raise RenewalError(f"the sealed PDF cannot be timestamped: {exc}") from exc
    data = output.getvalue()
    if not data.startswith(pdf):
        raise RenewalError("pyHanko produced an unexpected output (not an incremental update)")
    stamped = PdfFileReader(io.BytesIO(data), strict=False).embedded_timestamp_signatures[-1]
    token = TimestampToken.from_token(cms.ContentInfo.load(stamped.pkcs7_content))
    return data, token


def _record_renewal(
    archive: Archive, document: Document, planned: _Planned, *, actor: str
) -> Renewed | None:
    """Store the renewal's files, then record them in one transaction.

    Keys are content-addressed beside the document's other objects: a run that loses a
    race (the same name recorded meanwhile) leaves only unreferenced objects, never an
    overwrite. Returns None when another run recorded this renewal first.
    """
    retain_until = planned.base.retain_until
    if retain_until <= utcnow():
        raise RenewalError(f"the retention of {planned.base.name} has ended; nothing to renew")
    stored = {}
    for name, (blob, media, role) in planned.parts.items():
        key = "/".join(
            [
                "documents",
                str(document.company_id),
                document.original_sha256,
                name,
                hashlib.sha256(blob).hexdigest(),
            ]
        )
        stored[name] = (
            archive.store.put(key, blob, retain_until=retain_until, content_type=media),
            media,
            role,
        )
    layer = planned.layer
    token = planned.token
    subject = f"document:{document.id}"
    try:
        with session_scope(archive.engine) as session:

            def log(action: str, payload: dict[str, Any]) -> None:
                archive.journal.append(
                    session, actor=actor, action=action, subject=subject, payload=payload
                )

            rows = []
            for name, (obj, media, role) in stored.items():
                artifact = Artifact.stored(document.id, name, role, media, obj, planned.base.id)
                session.add(artifact)
                rows.append(artifact)
            session.flush()
            if layer.construction == "pades":
                _pades_evidence(session, rows[0], planned, log)
            for artifact in rows:
                log("artifact.stored", artifact_store_facts(artifact))
            log(
                "evidence.renewed",
                {
                    "artifact": layer.artifact,
                    "construction": "pades-document-timestamp"
                    if layer.construction == "pades"
                    else "rfc3161-renewal",
                    "renewal": layer.renewals + 1,
                    "previous": layer.head,
                    "added": {a.name: a.sha256 for a in rows},
                    "timestamp_serial": str(token.serial),
                    "timestamp_time": token.gen_time,
                    "tsa_cert_sha256": token.tsa_cert_sha256,
                    "reasons": list(planned.reasons),
                },
            )
    except IntegrityError:
        return None
    return Renewed(
        document.id,
        layer.artifact,
        layer.construction,
        layer.renewals + 1,
        tuple(stored),
        planned.reasons,
        token.gen_time,
    )


def _pades_evidence(
    session: Session,
    artifact: Artifact,
    planned: _Planned,
    log: Callable[[str, dict[str, Any]], None],
) -> None:
    """The new PDF's evidence row: the same seal, now under a document timestamp."""
    base = planned.base_evidence
    if base is None:
        raise RenewalError(f"{planned.base.name} has no evidence row to extend")
    token = planned.token
    row = Evidence(
        artifact_id=artifact.id,
        sha256=artifact.sha256,
        seal_format="PAdES-B-LTA",
        seal_cert_sha256=base.seal_cert_sha256,
        signature_algorithm=base.signature_algorithm,
        timestamp_serial=str(token.serial),
        timestamp_time=token.gen_time,
        tsa_cert_sha256=token.tsa_cert_sha256,
        storage_key=artifact.storage_key,
        storage_version=artifact.storage_version,
        retain_until=artifact.retain_until,
    )
    session.add(row)
    log(
        "artifact.sealed",
        {
            "artifact": artifact.name,
            "sha256": artifact.sha256,
            "seal_format": row.seal_format,
            "seal_cert_sha256": row.seal_cert_sha256,
            "signature_algorithm": row.signature_algorithm,
        },
    )
    log(
        "artifact.timestamped",
        {
            "artifact": artifact.name,
            "timestamp_serial": row.timestamp_serial,
            "timestamp_time": row.timestamp_time,
            "tsa_cert_sha256": row.tsa_cert_sha256,
        },
    )
