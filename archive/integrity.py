"""Integrity sweeps and evidence renewal: the archive checked end to end, on a schedule.

:func:`integrity_sweep` re-reads every stored artifact from the object store and checks it
the way :func:`archive.verify.verify_document` does (fingerprints, evidence rows against
the journal, PAdES and detached seals, timestamps, renewals), then the whole journal chain
with its anchors once, and lists the evidence whose certificates expire within a horizon
or whose algorithms are on the deny list. It is read-only until its one journal event,
walks documents in short keyset pages (memory does not grow with the archive, no long
transaction), so it is safe to interrupt and cheap to rerun.

:func:`renew_evidence` puts evidence under a new timestamp before it lapses: a PAdES
document timestamp added to the newest sealed PDF as an incremental update and stored as
a new artifact (``sealed.lta-<n>``), and for detached evidence an RFC 3161 token over a
small JSON file naming the earlier evidence (:mod:`archive.renewal`). Nothing stored is
ever overwritten; each renewal is journaled ("evidence.renewed").

This room never repairs anything and does not format output: the CLI does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from pyhanko.pdf_utils import misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.validation.dss import async_add_validation_info
from pyhanko_certvalidator import ValidationContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from archive._aio import run_sync
from archive._asn1 import raw_der
from archive.canonical import instant
from archive.context import Archive
from archive.errors import ArchiveError
from archive.models import Artifact, Document, Evidence, JournalAnchor, JournalEvent
from archive.pki import to_asn1
from archive.renewal import BODY_MEDIA_TYPE, RENEWAL_NAME, renewal_body, renewal_names
from archive.service import anchor_if_due, artifact_store_facts, artifacts_of, evidence_of
from archive.timestamp import TimestampError, TimestampToken, _crl_der
from archive.verify import Check, Spent, document_checks, verify_journal
from storage import StorageError, session_scope
from storage.types import utcnow

__all__ = [
    "DENIED_HASHES",
    "MIN_RSA_BITS",
    "CertificateUse",
    "EvidenceLayer",
    "Failure",
    "IntegrityReport",
    "RenewalError",
    "RenewalReport",
    "SweepProgress",
    "integrity_sweep",
    "renew_evidence",
]

#: Hash algorithms no evidence may rely on any more (in signatures, tokens, certificates).
DENIED_HASHES = frozenset({"md5", "sha1"})
MIN_RSA_BITS = 2048
_PDF_MEDIA_TYPE = "application/pdf"
_TSR_MEDIA_TYPE = "application/timestamp-reply"
_LTA = ".lta-"
_PAGE = 50
_SHOWN = 100
_PDF_ERRORS = (misc.PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError)


class RenewalError(ArchiveError):
    """Evidence cannot be renewed as configured (the message says why)."""

    code = "renewal_failed"


# -- what evidence relies on ------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateUse:
    """A certificate the current proof of some evidence depends on."""

    #: "seal" or "tsa".
    role: str
    sha256: str
    subject: str
    not_after: dt.datetime
    #: Deny-listed algorithms of the certificate itself (weak key, weak signature hash).
    weak: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvidenceLayer:
    """The newest layer of proof over one content artifact: what must stay valid today.

    Detached evidence (``original`` + ``.p7s`` + ``.tsr``) is protected by its seal and
    token until renewed, then by its newest renewal token only. A PAdES lineage
    (``sealed``, ``sealed.lta-1``...) is protected by its newest PDF's last document
    timestamp, or by its seal and signature timestamp when it has none.
    """

    document_id: uuid.UUID
    #: The content artifact ("original"), or the root of a PAdES lineage ("sealed").
    artifact: str
    #: "detached" or "pades".
    construction: str
    #: The stored file carrying the current proof ("original.renewal-2.tsr", "sealed.lta-1").
    head: str
    renewals: int
    certificates: tuple[CertificateUse, ...]
    #: Deny-listed algorithms the current proof uses ("sha1 in the seal's digest"...).
    weak: tuple[str, ...]

    def reasons(self, limit: dt.datetime) -> list[str]:
        """Why this layer must be renewed before ``limit`` (empty: it need not be)."""
        expiring = [
            f"{c.role} certificate {c.subject} expires {instant(c.not_after)}"
            for c in self.certificates
            if c.not_after <= limit
        ]
        weak = [*self.weak, *(w for c in self.certificates for w in c.weak)]
        return list(dict.fromkeys(expiring + weak))  # a TSA may sign two tokens


class _Certificates:
    """Parsed certificates of one run, by DER digest (there are few distinct ones)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, dt.datetime, tuple[str, ...]]] = {}

    def use(self, der: bytes, role: str) -> CertificateUse:
        key = hashlib.sha256(der).hexdigest()
        if key not in self._seen:
            cert = x509.load_der_x509_certificate(der)
            self._seen[key] = (
                cert.subject.rfc4514_string(),
                cert.not_valid_after_utc,
                tuple(_weak_certificate(cert)),
            )
        subject, not_after, weak = self._seen[key]
        return CertificateUse(role, key, subject, not_after, weak)

    def known(self, sha256: str, role: str) -> CertificateUse | None:
        """A certificate already met in this run, by the SHA-256 of its DER."""
        if sha256 not in self._seen:
            return None
        subject, not_after, weak = self._seen[sha256]
        return CertificateUse(role, sha256, subject, not_after, weak)


def _weak_certificate(cert: x509.Certificate) -> list[str]:
    weak = []
    algorithm = cert.signature_hash_algorithm
    if algorithm is not None and algorithm.name.lower() in DENIED_HASHES:
        weak.append(f"certificate {cert.subject.rfc4514_string()} is signed with {algorithm.name}")
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        weak.append(f"certificate {cert.subject.rfc4514_string()} has an RSA-{key.key_size} key")
    return weak


def _signer_der(signed_data: cms.SignedData) -> bytes | None:
    sid = signed_data["signer_infos"][0]["sid"]
    for choice in signed_data["certificates"] or ():
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            chosen = sid.chosen
            if cert.serial_number == chosen["serial_number"].native and raw_der(
                cert.issuer
            ) == raw_der(chosen["issuer"]):
                return raw_der(cert)
        elif cert.key_identifier == sid.chosen.native:
            return raw_der(cert)
    return None


def _weak_signed_data(signed_data: cms.SignedData, what: str) -> list[str]:
    signer_info = signed_data["signer_infos"][0]
    digest = signer_info["digest_algorithm"]["algorithm"].native
    signature = str(signer_info["signature_algorithm"]["algorithm"].native)
    weak = []
    if digest in DENIED_HASHES:
        weak.append(f"{what} digest is {digest}")
    if any(h in signature for h in DENIED_HASHES):
        weak.append(f"{what} signature algorithm is {signature}")
    return weak


@dataclass
class _Proof:
    certificates: list[CertificateUse] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)


def _add_cms(
    proof: _Proof, certs: _Certificates, signed_data: cms.SignedData, role: str, what: str
) -> None:
    der = _signer_der(signed_data)
    if der is None:
        proof.weak.append(f"{what}: signer certificate not embedded (its expiry is unknown)")
    else:
        proof.certificates.append(certs.use(der, role))
    proof.weak.extend(_weak_signed_data(signed_data, what))


def _add_token(proof: _Proof, certs: _Certificates, token: cms.ContentInfo, what: str) -> None:
    signed_data = token["content"]
    _add_cms(proof, certs, signed_data, "tsa", what)
    info = signed_data["encap_content_info"]["content"].parsed
    if isinstance(info, tsp.TSTInfo):
        imprint = info["message_imprint"]["hash_algorithm"]["algorithm"].native
        if imprint in DENIED_HASHES:
            proof.weak.append(f"{what} imprint is {imprint}")


def _add_signature_timestamps(
    proof: _Proof, certs: _Certificates, signed_data: cms.SignedData, what: str
) -> None:
    for signer_info in signed_data["signer_infos"]:
        for attribute in signer_info["unsigned_attrs"] or ():
            if attribute["type"].native == "signature_time_stamp_token":
                for value in attribute["values"]:
                    _add_token(proof, certs, value, f"{what} timestamp")


def _response_token(der: bytes) -> cms.ContentInfo:
    return cms.ContentInfo.load(TimestampToken.from_response_der(der).token_der)


def _layers(
    document_id: uuid.UUID,
    artifacts: list[Artifact],
    evidence: dict[uuid.UUID, Evidence],
    blobs: dict[str, bytes | None],
    certs: _Certificates,
) -> list[EvidenceLayer]:
    """The current layer of proof of every piece of evidence of one document."""
    by_id = {a.id: a for a in artifacts}
    names = {a.name for a in artifacts}
    layers: list[EvidenceLayer] = []
    lineages: dict[str, list[tuple[int, Artifact]]] = {}
    for artifact in artifacts:
        row = evidence.get(artifact.id)
        if artifact.role != "content" or row is None:
            continue
        if row.seal_format.startswith("PAdES"):
            root, _, suffix = artifact.name.partition(_LTA)
            number = int(suffix) if suffix.isdigit() else 0
            lineages.setdefault(root, []).append((number, artifact))
            continue
        renewals = sorted(
            int(m["n"])
            for name in names
            if (m := RENEWAL_NAME.match(name))
            and m["artifact"] == artifact.name
            and m["part"] == "tsr"
        )
        proof = _Proof()
        try:
            if renewals:
                head = renewal_names(artifact.name, renewals[-1])[1]
                _add_token(proof, certs, _response_token(_need(blobs, head)), f"{head} token")
            else:
                head = artifact.name
                for ref, what in (
                    (row.signature_artifact_id, "seal"),
                    (row.timestamp_artifact_id, "token"),
                ):
                    part = by_id.get(ref) if ref else None
                    if part is None:
                        continue
                    data = _need(blobs, part.name)
                    if what == "seal":
                        signed = cms.ContentInfo.load(data)["content"]
                        _add_cms(proof, certs, signed, "seal", f"{part.name} seal")
                        _add_signature_timestamps(proof, certs, signed, f"{part.name} seal")
                    else:
                        _add_token(proof, certs, _response_token(data), f"{part.name} token")
        except (_Missing, TimestampError, ValueError, TypeError, KeyError) as exc:
            proof.weak.append(f"evidence cannot be read: {exc}")
            head = artifact.name
        layers.append(
            EvidenceLayer(
                document_id,
                artifact.name,
                "detached",
                head,
                len(renewals),
                tuple(proof.certificates),
                tuple(proof.weak),
            )
        )
    for root, members in sorted(lineages.items()):
        count, head_artifact = max(members, key=lambda m: m[0])
        proof = _Proof()
        row = evidence[head_artifact.id]
        seal = certs.known(row.seal_cert_sha256, "seal")
        tsa = certs.known(row.tsa_cert_sha256, "tsa")
        if count == 0 and row.seal_format != "PAdES-B-LTA" and seal and tsa:
            # No document timestamp: the proof is the seal and its signature timestamp,
            # whose certificates the evidence row names (and the sweep checks that row
            # against the PDF). Reading a PDF's signatures is slow; skip it when known.
            proof.certificates.extend((seal, tsa))
            algorithm = row.signature_algorithm.lower()
            proof.weak.extend(
                f"PAdES seal signature algorithm is {row.signature_algorithm}"
                for denied in DENIED_HASHES
                if denied in algorithm
            )
        else:
            try:
                _pdf_proof(proof, certs, _need(blobs, head_artifact.name))
            except (_Missing, *_PDF_ERRORS) as exc:
                proof.weak.append(f"evidence cannot be read: {exc}")
        layers.append(
            EvidenceLayer(
                document_id,
                root,
                "pades",
                head_artifact.name,
                count,
                tuple(proof.certificates),
                tuple(proof.weak),
            )
        )
    return layers


def _pdf_proof(proof: _Proof, certs: _Certificates, pdf: bytes) -> None:
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    signatures = list(reader.embedded_regular_signatures)
    if not signatures:
        proof.weak.append("the PDF carries no seal")
        return
    seal = signatures[-1]
    later = [
        t for t in reader.embedded_timestamp_signatures if t.signed_revision > seal.signed_revision
    ]
    if later:
        newest = max(later, key=lambda t: t.signed_revision)
        token = cms.ContentInfo.load(newest.pkcs7_content)
        _add_token(proof, certs, token, "document timestamp")
        return
    _add_cms(proof, certs, seal.signed_data, "seal", "PAdES seal")
    _add_signature_timestamps(proof, certs, seal.signed_data, "PAdES seal")


class _Missing(Exception):
    pass


def _need(blobs: dict[str, bytes | None], name: str) -> bytes:
    try:
        data = blobs[name]  # a lazy mapping reads it now
    except KeyError:
        data = None
    if data is None:
        raise _Missing(f"{name} is missing or unreadable")
    return data


# -- the sweep --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One check that did not hold."""

    #: "document:<id>" or "journal".
    subject: str
    #: The artifact concerned, when the check is about one.
    artifact: str | None
    check: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.subject} artifact {self.artifact}" if self.artifact else self.subject
        return f"{where}: {self.check}" + (f" — {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class SweepProgress:
    documents_done: int
    documents_total: int
    artifacts: int
    failures: int
    #: Documents go in id order: a sweep interrupted after this one can go on with
    #: ``resume_after=last_document_id``.
    last_document_id: uuid.UUID | None = None


@dataclass(frozen=True)
class IntegrityReport:
    started_at: dt.datetime
    company_id: uuid.UUID | None
    horizon_days: int
    documents: int
    artifacts: int
    bytes_read: int
    #: Content artifacts whose seal and timestamp were validated.
    proofs: int
    journal_events: int
    journal_anchors: int
    seconds_reading: float
    seconds_proofs: float
    seconds_journal: float
    seconds_total: float
    failures: tuple[Failure, ...]
    #: Evidence whose current proof expires within the horizon or uses a denied algorithm.
    due: tuple[tuple[EvidenceLayer, tuple[str, ...]], ...]
    #: The latest journal anchor's TSA certificate, when it expires within the horizon.
    anchor_due: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def rate(self, count: int, seconds: float) -> float:
        return count / seconds if seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """Counts, throughput and the first failures: what the journal records."""
        expiring: dict[str, dict[str, Any]] = {}
        for layer, _ in self.due:
            for cert in layer.certificates:
                if cert.not_after <= self.started_at + dt.timedelta(days=self.horizon_days):
                    entry = expiring.setdefault(
                        cert.sha256,
                        {
                            "role": cert.role,
                            "subject": cert.subject,
                            "not_after": instant(cert.not_after),
                            "evidence": 0,
                        },
                    )
                    entry["evidence"] += 1
        return {
            "ok": self.ok,
            "company_id": str(self.company_id) if self.company_id else None,
            "started_at": instant(self.started_at),
            "horizon_days": self.horizon_days,
            "documents": self.documents,
            "artifacts": self.artifacts,
            "bytes_read": self.bytes_read,
            "proofs": self.proofs,
            "journal_events": self.journal_events,
            "journal_anchors": self.journal_anchors,
            "failures": len(self.failures),
            "first_failures": [str(f) for f in self.failures[:_SHOWN]],
            "evidence_due": len(self.due),
            "weak_algorithms": sum(1 for layer, _ in self.due if layer.weak),
            "expiring_certificates": sorted(expiring.values(), key=lambda e: e["not_after"]),
            "anchor_due": list(self.anchor_due),
            "seconds": {
                "reading": round(self.seconds_reading, 3),
                "proofs": round(self.seconds_proofs, 3),
                "journal": round(self.seconds_journal, 3),
                "total": round(self.seconds_total, 3),
            },
            "per_second": {
                "artifacts_hashed": round(self.rate(self.artifacts, self.seconds_reading), 1),
                "proofs_validated": round(self.rate(self.proofs, self.seconds_proofs), 1),
                "artifacts_whole_sweep": round(self.rate(self.artifacts, self.seconds_total), 1),
            },
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "failures": [
                {"subject": f.subject, "artifact": f.artifact, "check": f.check, "detail": f.detail}
                for f in self.failures
            ],
            "due": [
                {
                    "document_id": str(layer.document_id),
                    "artifact": layer.artifact,
                    "construction": layer.construction,
                    "head": layer.head,
                    "renewals": layer.renewals,
                    "reasons": list(reasons),
                }
                for layer, reasons in self.due
            ],
        }


def _failure(subject: str, check: Check) -> Failure:
    name = check.name
    if name.startswith("artifact ") and ":" in name:
        artifact, _, rest = name[len("artifact ") :].partition(":")
        return Failure(subject, artifact, rest.strip(), check.detail)
    return Failure(subject, None, name, check.detail)


def _document_pages(
    archive: Archive,
    company_id: uuid.UUID | None,
    page: int = _PAGE,
    after: uuid.UUID | None = None,
) -> Iterator[list[uuid.UUID]]:
    """Document ids in id order, a page at a time, each page read in its own transaction."""
    last = after
    while True:
        with session_scope(archive.engine, read_only=True) as session:
            query = select(Document.id).order_by(col(Document.id)).limit(page)
            if company_id is not None:
                query = query.where(Document.company_id == company_id)
            if last is not None:
                query = query.where(col(Document.id) > last)
            ids = list(session.exec(query))
        if not ids:
            return
        yield ids
        last = ids[-1]


def _count_documents(archive: Archive, company_id: uuid.UUID | None) -> int:
    with session_scope(archive.engine, read_only=True) as session:
        query = select(func.count()).select_from(Document)
        if company_id is not None:
            query = query.where(Document.company_id == company_id)
        return int(session.exec(query).one())


def integrity_sweep(
    archive: Archive,
    *,
    actor: str,
    company_id: uuid.UUID | None = None,
    horizon_days: int = 365,
    on_progress: Callable[[SweepProgress], None] | None = None,
    record: bool = True,
    resume_after: uuid.UUID | None = None,
) -> IntegrityReport:
    """Check every stored artifact, seal, timestamp and renewal, then the journal.

    Read-only but for the "integrity.checked" event at the end (``record``): rerun it at
    will, or go on after the last document an interrupted run reported
    (``resume_after``). Failures name the document, the artifact and the check.
    """
    started_at = utcnow()
    clock = time.perf_counter()
    limit = started_at + dt.timedelta(days=horizon_days)
    total = _count_documents(archive, company_id)
    spent = Spent()
    certs = _Certificates()
    failures: list[Failure] = []
    due: list[tuple[EvidenceLayer, tuple[str, ...]]] = []
    done = 0
    proofs = 0
    for ids in _document_pages(archive, company_id, after=resume_after):
        with session_scope(archive.engine, read_only=True) as session:
            for document_id in ids:
                document = session.get(Document, document_id)
                if document is None:
                    continue
                seen: dict[str, Any] = {}

                def keep(
                    artifacts: list[Artifact],
                    evidence: dict[uuid.UUID, Evidence],
                    blobs: dict[str, bytes | None],
                    seen: dict[str, Any] = seen,
                ) -> None:
                    seen.update(artifacts=artifacts, evidence=evidence, blobs=blobs)

                subject = f"document:{document.id}"
                for check in document_checks(archive, session, document, spent=spent, inspect=keep):
                    if not check.ok:
                        failures.append(_failure(subject, check))
                proofs += sum(1 for a in seen["artifacts"] if a.id in seen["evidence"])
                for layer in _layers(
                    document.id, seen["artifacts"], seen["evidence"], seen["blobs"], certs
                ):
                    reasons = layer.reasons(limit)
                    if reasons:
                        due.append((layer, tuple(reasons)))
                done += 1
        if on_progress is not None:
            on_progress(SweepProgress(done, total, spent.artifacts, len(failures), ids[-1]))
    journal_clock = time.perf_counter()
    with session_scope(archive.engine, read_only=True) as session:
        journal = verify_journal(archive, session)
        anchor_due = _anchor_due(session, certs, limit)
    seconds_journal = time.perf_counter() - journal_clock
    failures.extend(Failure("journal", None, "journal chain", str(p)) for p in journal.problems)
    report = IntegrityReport(
        started_at=started_at,
        company_id=company_id,
        horizon_days=horizon_days,
        documents=done,
        artifacts=spent.artifacts,
        bytes_read=spent.bytes_read,
        proofs=proofs,
        journal_events=journal.events_checked,
        journal_anchors=journal.anchors_checked,
        seconds_reading=spent.reading,
        seconds_proofs=spent.proofs,
        seconds_journal=seconds_journal,
        seconds_total=time.perf_counter() - clock,
        failures=tuple(failures),
        due=tuple(due),
        anchor_due=tuple(anchor_due),
    )
    if record:
        with session_scope(archive.engine) as session:
            archive.journal.append(
                session,
                actor=actor,
                action="integrity.checked",
                subject=f"company:{company_id}" if company_id else "archive",
                payload=report.summary(),
            )
    return report


def _anchor_due(session: Session, certs: _Certificates, limit: dt.datetime) -> list[str]:
    last = session.exec(
        select(JournalAnchor).order_by(col(JournalAnchor.seq).desc()).limit(1)
    ).first()
    if last is None:
        return []
    proof = _Proof()
    try:
        _add_token(proof, certs, _response_token(last.tst), f"journal anchor {last.seq} token")
    except (TimestampError, ValueError, TypeError, KeyError) as exc:
        return [f"journal anchor {last.seq}: token cannot be read: {exc}"]
    layer = EvidenceLayer(
        uuid.UUID(int=0),
        f"journal anchor {last.seq}",
        "anchor",
        "",
        0,
        tuple(proof.certificates),
        tuple(proof.weak),
    )
    return layer.reasons(limit)


# -- renewal ----------------------------------------------------------------------------------


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


def sweep_due(archive: Archive, *, every_hours: float = 24.0) -> bool:
    """True when no integrity sweep finished in the last ``every_hours`` (the scheduled
    sweep runs on every worker's scheduler; the journal decides which one does the work)."""
    since = utcnow() - dt.timedelta(hours=every_hours * 0.9)
    with session_scope(archive.engine, read_only=True) as session:
        last = session.exec(
            select(JournalEvent.seq)
            .where(JournalEvent.action == "integrity.checked", JournalEvent.recorded_at >= since)
            .order_by(col(JournalEvent.seq).desc())
            .limit(1)
        ).first()
    return last is None
