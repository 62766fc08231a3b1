"""Validation of Coffre's seals: a PAdES seal in a PDF, a detached CMS over any file.

Offline by design: revocation data comes from the CRLs given and from the document's own
validation data (DSS, CMS); nothing is fetched. The verdict names what broke. Sealing
itself is :mod:`archive.seal`'s.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils import misc
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import (
    async_validate_detached_cms,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko_certvalidator import ValidationContext

from archive._asn1 import raw_der
from archive.pki import cert_sha256, to_asn1
from archive.timestamp import (
    _crl_der,
    _run,
    _status_problems,
)

__all__ = ["SealCheck", "validate_detached_seal", "validate_pdf_seal"]


@dataclass(frozen=True)
class SealCheck:
    """What validation found; ``problems`` names everything that broke."""

    ok: bool
    #: The signed bytes are the ones that were signed and the signature value is right.
    intact: bool
    #: The signer's certificate chains to a trust root, usable for sealing, not revoked.
    trusted: bool
    #: The signature timestamp is intact, trusted and covers this signature.
    timestamp_ok: bool
    signer_cert_sha256: str | None
    #: Time of the signature timestamp (else the signer's claimed time), aware UTC.
    signing_time: dt.datetime | None
    #: PDF: "B-B", "B-T", "B-LT", "B-LTA"; detached: "CAdES-B-T"...
    level: str | None
    #: PDF: pyHanko's coverage/modification summary ("ENTIRE_FILE", "EXTENDED_WITH_LTA_UPDATES").
    coverage: str | None
    problems: tuple[str, ...] = field(default_factory=tuple)


def validate_pdf_seal(
    pdf: bytes,
    *,
    trust_roots: Sequence[Any],
    crls: Iterable[bytes | x509.CertificateRevocationList] = (),
) -> SealCheck:
    """Check the last signature of ``pdf`` (the seal) and any document timestamp after it.

    Offline: revocation data comes from ``crls`` and from the PDF's own DSS.
    """
    return _run(_validate_pdf_seal(pdf, trust_roots, [_crl_der(c) for c in crls]))


def validate_detached_seal(
    data: bytes,
    cms_der: bytes,
    *,
    trust_roots: Sequence[Any],
    crls: Iterable[bytes | x509.CertificateRevocationList] = (),
    moment: dt.datetime | None = None,
) -> SealCheck:
    """Check a detached CMS over ``data``; CRLs embedded in the CMS are used too.

    ``moment`` (default now) is when the certificates must have been valid: the time of a
    later timestamp that covers this seal (see :mod:`archive.renewal`).
    """
    return _run(
        _validate_detached_seal(data, cms_der, trust_roots, [_crl_der(c) for c in crls], moment)
    )


def _offline_context(
    trust_roots: Sequence[Any], crls: Iterable[bytes], moment: dt.datetime | None = None
) -> ValidationContext:
    return ValidationContext(
        trust_roots=[to_asn1(c) for c in trust_roots],
        crls=list(crls),
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=moment,
    )


async def _validate_pdf_seal(
    pdf: bytes, trust_roots: Sequence[Any], crls: list[bytes]
) -> SealCheck:
    def failed(problem: str) -> SealCheck:
        return SealCheck(False, False, False, False, None, None, None, None, (problem,))

    if not pdf.startswith(b"%PDF-"):
        return failed("not a PDF (no %PDF- header)")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = list(reader.embedded_regular_signatures)
        timestamps = list(reader.embedded_timestamp_signatures)
        dss = DocumentSecurityStore.read_dss(reader) if "/DSS" in reader.root else None
    except (misc.PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        return failed(f"the PDF cannot be read: {exc}")
    if not signatures:
        return failed("the PDF carries no seal (no signature field is signed)")
    seal = signatures[-1]
    dss_crls = [c.get_object().data for c in dss.crls] if dss is not None else []
    context = _offline_context(trust_roots, [*crls, *dss_crls])

    problems: list[str] = []
    try:
        status = await async_validate_pdf_signature(seal, context, context)
    except (SignatureValidationError, misc.PdfError, ValueError, KeyError, TypeError) as exc:
        return failed(f"the seal cannot be validated: {exc}")
    problems.extend(_status_problems(status, "seal"))
    coverage = status.coverage.name if status.coverage is not None else None
    modification = status.modification_level
    if status.coverage is None or status.coverage.value < 2:
        problems.append("the seal does not cover its whole revision (byte range tampered)")
    elif modification is not None and modification.name not in ("NONE", "LTA_UPDATES"):
        problems.append(
            f"the PDF was changed after sealing ({modification.name}), beyond adding "
            "validation data or timestamps"
        )
    if status.docmdp_ok is False:
        problems.append("changes after sealing break the document's modification policy")
    if status.coverage is not None and status.coverage.name == "ENTIRE_REVISION":
        coverage = f"EXTENDED_WITH_{modification.name}" if modification is not None else "EXTENDED"

    timestamp_ok, signing_time = _timestamp_verdict(status, problems, "seal")
    level = "B-T" if status.timestamp_validity is not None else "B-B"
    if dss is not None and dss_crls:
        level = "B-LT"
    later_timestamps = [t for t in timestamps if t.signed_revision > seal.signed_revision]
    for doc_ts in later_timestamps:
        try:
            ts_status = await async_validate_pdf_timestamp(doc_ts, context)
        except (SignatureValidationError, misc.PdfError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"document timestamp cannot be validated: {exc}")
            continue
        problems.extend(_status_problems(ts_status, "document timestamp"))
        if level == "B-LT":
            level = "B-LTA"
    return SealCheck(
        ok=not problems,
        intact=bool(status.intact and status.valid),
        trusted=bool(status.trusted),
        timestamp_ok=timestamp_ok,
        signer_cert_sha256=cert_sha256(seal.signer_cert),
        signing_time=signing_time,
        level=level,
        coverage=coverage,
        problems=tuple(problems),
    )


async def _validate_detached_seal(
    data: bytes,
    cms_der: bytes,
    trust_roots: Sequence[Any],
    crls: list[bytes],
    moment: dt.datetime | None = None,
) -> SealCheck:
    def failed(problem: str) -> SealCheck:
        return SealCheck(False, False, False, False, None, None, None, None, (problem,))

    try:
        info = cms.ContentInfo.load(cms_der)
        if info["content_type"].native != "signed_data":
            return failed("the signature file is not a CMS SignedData")
        signed_data = info["content"]
        embedded = [raw_der(c.chosen) for c in signed_data["crls"] or () if c.name == "crl"]
        signer_cert = _signer_certificate(signed_data)
    except (ValueError, TypeError, KeyError) as exc:
        return failed(f"the signature file cannot be read: {exc}")
    context = _offline_context(trust_roots, [*crls, *embedded], moment)
    problems: list[str] = []
    try:
        status = await async_validate_detached_cms(data, signed_data, context, context)
    except (SignatureValidationError, ValueError, KeyError, TypeError) as exc:
        return failed(f"the detached seal cannot be validated: {exc}")
    problems.extend(_status_problems(status, "seal"))
    if not status.intact:
        problems[:] = [
            "the data does not match the detached seal (digest mismatch: data changed?)"
            if "digest mismatch" in p
            else p
            for p in problems
        ]
    timestamp_ok, signing_time = _timestamp_verdict(status, problems, "seal")
    return SealCheck(
        ok=not problems,
        intact=bool(status.intact and status.valid),
        trusted=bool(status.trusted),
        timestamp_ok=timestamp_ok,
        signer_cert_sha256=cert_sha256(signer_cert) if signer_cert is not None else None,
        signing_time=signing_time,
        level="CAdES-B-LT" if embedded else ("CAdES-B-T" if timestamp_ok else "CAdES-B-B"),
        coverage="DETACHED",
        problems=tuple(problems),
    )


def _timestamp_verdict(
    status: Any, problems: list[str], who: str
) -> tuple[bool, dt.datetime | None]:
    tst = status.timestamp_validity
    if tst is None:
        problems.append(f"the {who} has no signature timestamp")
        claimed = status.signer_reported_dt
        return False, claimed.astimezone(dt.UTC) if claimed is not None else None
    tst_problems = _status_problems(tst, f"{who} timestamp")
    problems.extend(tst_problems)
    return not tst_problems, tst.timestamp.astimezone(dt.UTC)


def _signer_certificate(signed_data: cms.SignedData) -> asn1_x509.Certificate | None:
    sid = signed_data["signer_infos"][0]["sid"].chosen
    if not isinstance(sid, cms.IssuerAndSerialNumber):
        return None
    for choice in signed_data["certificates"] or ():
        cert = choice.chosen
        if (
            isinstance(cert, asn1_x509.Certificate)
            and cert.serial_number == sid["serial_number"].native
            and raw_der(cert.issuer) == raw_der(sid["issuer"])
        ):
            return cert
    return None
