"""Integrity sweeps: the archive checked end to end, on a schedule.

:func:`integrity_sweep` re-reads every stored artifact from the object store and checks it
the way :func:`archive.verify.verify_document` does (fingerprints, evidence rows against
the journal, PAdES and detached seals, timestamps, renewals), then the whole journal chain
with its anchors once, and lists the evidence whose certificates expire within a horizon
or whose algorithms are on the deny list. It is read-only until its one journal event,
walks documents in short keyset pages (memory does not grow with the archive, no long
transaction), so it is safe to interrupt and cheap to rerun.

What evidence relies on (:class:`EvidenceLayer`) is read here and shared with
:mod:`archive.renew`, which puts evidence under a new timestamp before it lapses.

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
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlmodel import Session, col, func, select

from archive._asn1 import raw_der
from archive.canonical import instant
from archive.context import Archive
from archive.models import Artifact, Document, Evidence, JournalAnchor, JournalEvent
from archive.renewal import RENEWAL_NAME, renewal_names
from archive.timestamp import TimestampError, TimestampToken
from archive.verify import Check, Spent, document_checks, verify_journal
from storage import session_scope
from storage.types import utcnow

__all__ = [
    "DENIED_HASHES",
    "MIN_RSA_BITS",
    "CertificateUse",
    "EvidenceLayer",
    "Failure",
    "IntegrityReport",
    "SweepProgress",
    "integrity_sweep",
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
