"""Timestamps, the client side: ask a TSA for RFC 3161 tokens and check tokens later.

``Timestamper`` wraps a pyHanko ``TimeStamper`` (the same object signs PAdES/CAdES
signature timestamps), built either over HTTP (``Timestamper.http``) or in-process over
Coffre's own ``TimestampAuthority`` (``Timestamper.local``, which still goes through the
DER request/response code path). ``verify_timestamp`` checks a stored token offline with
pyHanko's validation: CMS signature, message imprint, TSA chain and EKU.

This room does not store tokens nor decide what to timestamp.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from asn1crypto import cms, core, tsp
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.general import (
    find_unique_cms_attribute,
)
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper, TimestampRequestError
from pyhanko.sign.timestamps.common_utils import handle_tsp_response
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext

from archive._aio import run_sync
from archive._asn1 import SEQUENCE, PreEncodedContentInfo, TimeStampResp, der_tlv, raw_der
from archive.errors import ArchiveError
from archive.pki import cert_sha256, to_asn1
from archive.tsa import TimestampAuthority

__all__ = [
    "TimestampCheck",
    "TimestampError",
    "TimestampToken",
    "TimestampUnavailable",
    "Timestamper",
    "verify_timestamp",
]

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
T = TypeVar("T")


class TimestampError(ArchiveError):
    """The TSA refused the request or answered something that is not a good token."""

    code = "timestamp_failed"
    status = 502


class TimestampUnavailable(TimestampError):
    """The TSA could not be reached; retry later."""

    code = "tsa_unavailable"
    status = 503


@dataclass(frozen=True)
class TimestampToken:
    """One RFC 3161 token and the facts an auditor reads from it."""

    #: The whole DER TimeStampResp (what auditors store as ``.tsr``).
    response_der: bytes
    #: The DER TimeStampToken (CMS ContentInfo) inside it.
    token_der: bytes
    serial: int
    #: TSA's genTime, aware UTC.
    gen_time: dt.datetime
    #: Hash algorithm of the message imprint ("sha256").
    hash_algorithm: str
    #: The digest that was timestamped.
    message_imprint: bytes
    #: SHA-256 of the TSA certificate's DER.
    tsa_cert_sha256: str
    #: TSA policy OID.
    policy: str

    @classmethod
    def from_response_der(cls, response_der: bytes) -> TimestampToken:
        """Parse a granted TimeStampResp; raise :class:`TimestampError` otherwise."""
        token = _token_from_response(response_der)
        return cls._from_token(response_der, token)

    @classmethod
    def from_token(cls, token: cms.ContentInfo) -> TimestampToken:
        """Wrap a bare token (as embedded in a signature) in a granted TimeStampResp."""
        granted = tsp.PKIStatusInfo({"status": "granted"}).dump()
        return cls._from_token(der_tlv(SEQUENCE, granted, raw_der(token)), token)

    @classmethod
    def _from_token(cls, response_der: bytes, token: cms.ContentInfo) -> TimestampToken:
        try:
            signed_data = token["content"]
            tst_info = signed_data["encap_content_info"]["content"].parsed
            if not isinstance(tst_info, tsp.TSTInfo):
                raise TimestampError("the token does not hold a TSTInfo")
            imprint = tst_info["message_imprint"]
            return cls(
                response_der=response_der,
                token_der=raw_der(token),
                serial=int(tst_info["serial_number"].native),
                gen_time=tst_info["gen_time"].native.astimezone(dt.UTC),
                hash_algorithm=imprint["hash_algorithm"]["algorithm"].native,
                message_imprint=imprint["hashed_message"].native,
                tsa_cert_sha256=_tsa_cert_sha256(signed_data),
                policy=tst_info["policy"].dotted,
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise TimestampError(f"malformed timestamp token: {exc}") from exc


@dataclass(frozen=True)
class TimestampCheck:
    """Result of :func:`verify_timestamp`; ``problems`` names everything that failed."""

    ok: bool
    serial: int | None
    gen_time: dt.datetime | None
    tsa_cert_sha256: str | None
    problems: tuple[str, ...]


async def _request(
    stamper: TimeStamper, digest: bytes, algorithm: str
) -> tuple[bytes, cms.ContentInfo]:
    """Ask ``stamper``'s TSA; return the DER TimeStampResp and its (checked) token.

    Raises :class:`TimestampError` for a refusal, a bad nonce or a malformed answer and
    :class:`TimestampUnavailable` when the TSA cannot be reached.
    """
    nonce, request = stamper.request_cms(digest, algorithm)
    where = getattr(stamper, "url", "embedded TSA")
    try:
        raw = await stamper.async_request_tsa_response(request)
        # asn1crypto's TimeStampResp cannot parse a rejection (its token is not OPTIONAL
        # there): re-read the same bytes with the RFC's definition.
        response_der = raw_der(raw)
        token = _token_from_response(response_der)
        handle_tsp_response(tsp.TimeStampResp.load(response_der), nonce)  # checks the nonce
    except TimestampRequestError as exc:
        if isinstance(exc.__cause__, OSError | TimeoutError):
            raise TimestampUnavailable(f"{where} unreachable: {exc}", tsa=where) from exc
        raise TimestampError(f"{where} did not grant a token: {exc}", tsa=where) from exc
    except TimeoutError as exc:
        raise TimestampUnavailable(f"{where} did not answer in time", tsa=where) from exc
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"{where} sent a malformed response: {exc}", tsa=where) from exc
    return response_der, token


class _PreEncodedTokens(TimeStamper):
    """Hands pyHanko tokens that dump as the bytes received (see ``archive._asn1``)."""

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        _, token = await _request(self, message_digest, md_algorithm)
        return PreEncodedContentInfo.load(raw_der(token))


class _LocalTimeStamper(_PreEncodedTokens):
    """pyHanko TimeStamper over an in-process TSA: same DER in and out as over HTTP."""

    def __init__(self, tsa: TimestampAuthority) -> None:
        super().__init__(include_nonce=True)
        self._tsa = tsa

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return tsp.TimeStampResp.load(self._tsa.respond(req.dump()))


class _HttpTimeStamper(_PreEncodedTokens, HTTPTimeStamper):
    """pyHanko's aiohttp client, with pre-encoded tokens."""


class Timestamper:
    """Gets RFC 3161 tokens; ``pyhanko_stamper`` is the same source for signatures."""

    def __init__(self, stamper: TimeStamper, *, description: str) -> None:
        self.pyhanko_stamper = stamper
        self.description = description

    @classmethod
    def http(
        cls, url: str, *, timeout: float = 10, auth: tuple[str, str] | None = None
    ) -> Timestamper:
        """A remote TSA (``application/timestamp-query`` POSTed to ``url``)."""
        return cls(_HttpTimeStamper(url, timeout=timeout, auth=auth), description=url)

    @classmethod
    def local(cls, tsa: TimestampAuthority) -> Timestamper:
        """Coffre's embedded TSA, called in-process."""
        return cls(_LocalTimeStamper(tsa), description="embedded TSA")

    async def stamp(self, digest: bytes, algorithm: str = "sha256") -> TimestampToken:
        """A token over ``digest`` (already hashed with ``algorithm``)."""
        if _DIGEST_SIZES.get(algorithm) != len(digest):
            raise TimestampError(
                f"a {algorithm} digest must be {_DIGEST_SIZES.get(algorithm, '?')} bytes",
                algorithm=algorithm,
            )
        response_der, content = await _request(self.pyhanko_stamper, digest, algorithm)
        token = TimestampToken._from_token(response_der, content)
        if token.message_imprint != digest or token.hash_algorithm != algorithm:
            raise TimestampError(
                f"{self.description} timestamped another digest than the one sent",
                tsa=self.description,
            )
        return token


def verify_timestamp(
    response_or_token_der: bytes,
    *,
    digest: bytes | None = None,
    data: bytes | None = None,
    trust_roots: Sequence[Any],
    algorithm: str = "sha256",
    crls: Iterable[bytes | x509.CertificateRevocationList] = (),
    moment: dt.datetime | None = None,
) -> TimestampCheck:
    """Check a stored token offline against ``digest`` (hashed with ``algorithm``) or ``data``.

    Checks: the TSA's CMS signature, that the imprint is the expected one, and that the
    TSA certificate chains to one of ``trust_roots`` (at ``moment``, default now) with the
    timeStamping EKU. Revocation is checked against ``crls`` only (soft-fail when none
    covers a certificate): nothing is fetched.
    """
    if (digest is None) == (data is None):
        raise ValueError("give exactly one of digest= or data=")
    try:
        token = _parse_any(response_or_token_der)
        facts = TimestampToken.from_token(token)
    except TimestampError as exc:
        return TimestampCheck(False, None, None, None, (str(exc),))

    problems: list[str] = []
    if digest is not None:
        if facts.hash_algorithm != algorithm:
            problems.append(f"token imprint uses {facts.hash_algorithm}, expected {algorithm}")
        expected = digest
    else:
        expected = _hash(data or b"", facts.hash_algorithm)
    if facts.message_imprint != expected:
        problems.append(
            "message imprint mismatch: the token covers "
            f"{facts.message_imprint.hex()}, not {expected.hex()} (data changed?)"
        )

    context = _validation_context(trust_roots, crls, moment)

    def _expected_imprint(algo: str) -> bytes:
        # The imprint is compared above with a clearer message; here pyHanko only
        # needs a value, so give it the token's own to avoid a second report.
        return facts.message_imprint

    try:
        status = TimestampSignatureStatus(
            **_run(validate_tst_signed_data(token["content"], context, _expected_imprint))
        )
    except (SignatureValidationError, ValueError, TypeError, KeyError) as exc:
        problems.append(f"timestamp token cannot be validated: {exc}")
    else:
        problems.extend(_status_problems(status, "TSA"))
    return TimestampCheck(
        ok=not problems,
        serial=facts.serial,
        gen_time=facts.gen_time,
        tsa_cert_sha256=facts.tsa_cert_sha256,
        problems=tuple(problems),
    )


def _status_problems(status: Any, who: str) -> list[str]:
    """Human-readable problems of a pyHanko signature status (empty when all is well)."""
    problems: list[str] = []
    if not status.intact:
        problems.append(f"{who} signature does not cover these bytes (digest mismatch)")
    if not status.valid:
        problems.append(f"{who} signature is cryptographically invalid")
    if status.intact and status.valid and not status.trusted:
        reason = status.trust_problem_indic
        name = getattr(reason, "name", str(reason)) if reason is not None else "no path"
        subject = status.signing_cert.subject.human_friendly
        if status.revoked:
            problems.append(f"{who} certificate ({subject}) is revoked")
        else:
            problems.append(
                f"{who} certificate ({subject}) is not trusted: {name}"
                " (no chain to a trust root, wrong key usage, or expired)"
            )
    return problems


def _validation_context(
    trust_roots: Sequence[Any],
    crls: Iterable[bytes | x509.CertificateRevocationList],
    moment: dt.datetime | None,
) -> ValidationContext:
    return ValidationContext(
        trust_roots=[to_asn1(c) for c in trust_roots],
        crls=[_crl_der(c) for c in crls],
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=moment,
    )


def _crl_der(crl: bytes | x509.CertificateRevocationList | asn1_crl.CertificateList) -> bytes:
    if isinstance(crl, x509.CertificateRevocationList):
        return crl.public_bytes(serialization.Encoding.DER)
    if isinstance(crl, asn1_crl.CertificateList):
        return crl.dump()
    return bytes(crl)


def _parse_any(der: bytes) -> cms.ContentInfo:
    """A TimeStampToken, from either a whole TimeStampResp or a bare token."""
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native == "signed_data":
            return info
    except (ValueError, TypeError, KeyError):
        pass
    return _token_from_response(der)


def _token_from_response(response_der: bytes) -> cms.ContentInfo:
    try:
        response = TimeStampResp.load(response_der)
        status = response["status"]
        state = status["status"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError("not an RFC 3161 TimeStampResp or token") from exc
    if state not in ("granted", "granted_with_mods"):
        reasons = status["fail_info"].native or ()
        text = "; ".join(status["status_string"].native or ())
        flags = ", ".join(sorted(reasons)) or "no failInfo"
        raise TimestampError(f"the TSA answered {state} ({flags}) {text}".strip())
    token = response["time_stamp_token"]
    # Never call .native on a whole token: asn1crypto then re-encodes it very slowly.
    if isinstance(token, core.Void):
        raise TimestampError("granted TimeStampResp without a token")
    return token


def _tsa_cert_sha256(signed_data: cms.SignedData) -> str:
    """SHA-256 of the signer's certificate: embedded, else from its ESSCertIDv2."""
    signer_info = signed_data["signer_infos"][0]
    sid = signer_info["sid"].chosen
    for choice in signed_data["certificates"] or ():
        cert = choice.chosen
        if (
            isinstance(sid, cms.IssuerAndSerialNumber)
            # Byte comparison: asn1crypto's Name equality runs LDAP stringprep (slow).
            and cert.serial_number == sid["serial_number"].native
            and raw_der(cert.issuer) == raw_der(sid["issuer"])
        ):
            return cert_sha256(cert)
    attr = find_unique_cms_attribute(signer_info["signed_attrs"], "signing_certificate_v2")
    ess = attr["certs"][0]
    if ess["hash_algorithm"]["algorithm"].native != "sha256":
        raise TimestampError("TSA certificate neither embedded nor identified by SHA-256")
    return bytes(ess["cert_hash"].native).hex()


def _hash(data: bytes, algorithm: str) -> bytes:
    if algorithm not in _DIGEST_SIZES:
        raise TimestampError(f"unsupported imprint hash {algorithm}")
    return hashlib.new(algorithm, data).digest()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a pyHanko coroutine from synchronous code, also when a loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_sync(coro)
    # Called from async code (a test, a handler): run on a private loop in a thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
