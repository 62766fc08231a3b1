"""Coffre's own RFC 3161 time-stamping authority (the server side of timestamps).

``TimestampAuthority.respond`` turns a DER ``TimeStampReq`` into a DER ``TimeStampResp``:
a token signed with the TSA key for a well-formed request, a ``rejection`` with a
``failInfo`` otherwise. The token follows RFC 3161 as updated by RFC 5816 (the signer
is identified by an ESSCertIDv2 ``signingCertificateV2`` attribute). The CMS structure is
assembled with asn1crypto and pyHanko's attribute helpers; the signature is made with
``cryptography``. ``make_tsa_router`` exposes it over HTTP (``POST /tsa``).

This room signs what it is asked to sign and keeps no record: recording tokens is the
journal's business. It reads no files and holds no global state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Sequence

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from fastapi import APIRouter, Request, Response
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute

from archive._asn1 import (
    CONTEXT_0,
    SEQUENCE,
    TimeStampResp,
    der_set_of,
    der_tlv,
    raw_der,
    signer_info_v1,
)
from archive.errors import ArchiveError
from archive.pki import COFFRE_OID_ARC, PrivateKey, cert_sha256, to_asn1

__all__ = [
    "DEFAULT_TSA_POLICY_OID",
    "MAX_REQUEST_BYTES",
    "TSA_QUERY_TYPE",
    "TSA_REPLY_TYPE",
    "TimestampAuthority",
    "TsaConfigurationError",
    "make_tsa_router",
]

#: Coffre's TSA policy (see ``archive.pki.COFFRE_OID_ARC``): "Coffre TSA policy v1, time
#: from the host clock (NTP-synchronised), accuracy one second".
DEFAULT_TSA_POLICY_OID = f"{COFFRE_OID_ARC}.1.1"
TSA_QUERY_TYPE = "application/timestamp-query"
TSA_REPLY_TYPE = "application/timestamp-reply"
#: A TimeStampReq is a few hundred bytes; anything much larger is not one.
MAX_REQUEST_BYTES = 16 * 1024

#: Hash algorithms accepted in a message imprint, with their digest sizes.
_ACCEPTED_HASHES = {"sha256": 32, "sha384": 48, "sha512": 64}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class TsaConfigurationError(ArchiveError):
    """The TSA certificate or key cannot be used to issue RFC 3161 tokens."""

    code = "tsa_configuration_error"


class _Rejection(Exception):
    """Internal: the request is refused with these failInfo flags."""

    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


class TimestampAuthority:
    """An in-process RFC 3161 TSA over one certificate and key.

    ``clock`` returns the current time (aware); it exists so tests can fix the time. The
    accuracy claimed in each token is ``accuracy`` (one second by default: the host clock
    is assumed NTP-synchronised, and genTime keeps milliseconds).
    """

    def __init__(
        self,
        cert: x509.Certificate,
        key: PrivateKey,
        chain: Sequence[x509.Certificate] = (),
        *,
        policy_oid: str = DEFAULT_TSA_POLICY_OID,
        clock: Callable[[], dt.datetime] | None = None,
        accuracy: dt.timedelta = dt.timedelta(seconds=1),
    ) -> None:
        _check_tsa_certificate(cert, key)
        self._key = key
        self._cert = to_asn1(cert)
        self._chain = tuple(to_asn1(c) for c in chain)
        self._policy = policy_oid
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._accuracy = _accuracy(accuracy)
        # Everything that does not change between tokens is encoded once (asn1crypto is
        # slow to re-encode structures that embed certificates; see archive._asn1).
        self._cert_sha256 = cert_sha256(self._cert)
        # tsa [0] EXPLICIT GeneralName, chosen as directoryName [4] EXPLICIT Name.
        self._tsa_name = der_tlv(CONTEXT_0, der_tlv(0xA4, raw_der(self._cert.subject)))
        self._policy_der = core.ObjectIdentifier(policy_oid).dump()
        self._accuracy_der = self._accuracy.dump()
        self._signing_cert_attr = simple_cms_attribute(
            "signing_certificate_v2", as_signing_certificate_v2(self._cert, "sha256")
        ).dump()
        self._content_type_attr = simple_cms_attribute("content_type", "tst_info").dump()
        self._sid = cms.IssuerAndSerialNumber(
            {"issuer": self._cert.issuer, "serial_number": self._cert.serial_number}
        ).dump()
        self._digest_algorithm = algos.DigestAlgorithm({"algorithm": "sha256"}).dump()
        sig_algo = "sha256_ecdsa" if isinstance(key, ec.EllipticCurvePrivateKey) else "sha256_rsa"
        self._signature_algorithm = algos.SignedDigestAlgorithm({"algorithm": sig_algo}).dump()
        # certificates [0] IMPLICIT CertificateSet: the TSA certificate first (RFC 3161
        # requires it when certReq is set), then the chain; DER sorts the SET anyway.
        self._certificates = der_set_of(
            [raw_der(self._cert), *(raw_der(c) for c in self._chain)], tag=CONTEXT_0
        )
        self._granted = tsp.PKIStatusInfo({"status": "granted"}).dump()
        self._oid_signed_data = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
        self._oid_tst_info = core.ObjectIdentifier("1.2.840.113549.1.9.16.1.4").dump()

    @property
    def cert(self) -> asn1_x509.Certificate:
        """The TSA certificate (asn1crypto form)."""
        return self._cert

    @property
    def cert_sha256(self) -> str:
        return self._cert_sha256

    @property
    def policy_oid(self) -> str:
        return self._policy

    def respond(self, request_der: bytes) -> bytes:
        """DER TimeStampResp for a DER TimeStampReq; never raises on bad input."""
        try:
            request = _parse_request(request_der)
            self._check_request(request)
        except _Rejection as rejection:
            return _rejection(rejection).dump()
        return der_tlv(SEQUENCE, self._granted, self._token(request))

    def _check_request(self, request: tsp.TimeStampReq) -> None:
        try:
            if request["version"].native != "v1":
                raise _Rejection("bad_request", "unsupported TimeStampReq version")
            imprint = request["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            hashed = imprint["hashed_message"].native
            policy = request["req_policy"].native
            extensions = request["extensions"].native
            request["nonce"].native  # noqa: B018 (forces parsing: a bad nonce is bad format)
            request["cert_req"].native  # noqa: B018
        except (ValueError, TypeError, KeyError) as exc:
            raise _Rejection("bad_data_format", f"malformed request: {exc}") from exc
        if algorithm not in _ACCEPTED_HASHES:
            raise _Rejection("bad_alg", f"hash algorithm {algorithm} is not accepted")
        if len(hashed) != _ACCEPTED_HASHES[algorithm]:
            raise _Rejection("bad_request", f"a {algorithm} digest has the wrong length")
        if policy is not None and policy != self._policy:
            raise _Rejection("unaccepted_policy", f"policy {policy} is not offered")
        if extensions:
            raise _Rejection("unaccepted_extension", "request extensions are not supported")

    def _token(self, request: tsp.TimeStampReq) -> bytes:
        """DER TimeStampToken: ContentInfo(SignedData(TSTInfo)) per RFC 3161/5816, CMS v3."""
        now = self._clock().astimezone(dt.UTC)
        gen_time = now.replace(microsecond=now.microsecond // 1000 * 1000)
        fields = [
            core.Integer(1).dump(),
            self._policy_der,
            raw_der(request["message_imprint"]),
            # 128 random bits, top bit set: unique without any shared counter.
            core.Integer(secrets.randbits(127) | (1 << 127)).dump(),
            core.GeneralizedTime(gen_time).dump(),
            self._accuracy_der,
        ]
        nonce = request["nonce"].native
        if nonce is not None:
            fields.append(core.Integer(nonce).dump())
        fields.append(self._tsa_name)
        tst_info = der_tlv(SEQUENCE, *fields)

        attributes = [
            self._content_type_attr,
            simple_cms_attribute("signing_time", cms.Time({"utc_time": gen_time})).dump(),
            simple_cms_attribute("message_digest", hashlib.sha256(tst_info).digest()).dump(),
            self._signing_cert_attr,
        ]
        # The signature covers the attributes as a universal SET OF; SignerInfo holds the
        # same bytes under [0] IMPLICIT.
        signature = self._sign(der_set_of(attributes))
        signer_info = signer_info_v1(
            sid=self._sid,
            digest_algorithm=self._digest_algorithm,
            signed_attrs=attributes,
            signature_algorithm=self._signature_algorithm,
            signature=signature,
        )
        encap_content_info = der_tlv(
            SEQUENCE,
            self._oid_tst_info,
            der_tlv(CONTEXT_0, core.OctetString(tst_info).dump()),
        )
        signed_data = der_tlv(
            SEQUENCE,
            core.Integer(3).dump(),
            der_set_of([self._digest_algorithm]),
            encap_content_info,
            self._certificates if request["cert_req"].native else b"",
            der_set_of([signer_info]),
        )
        return der_tlv(SEQUENCE, self._oid_signed_data, der_tlv(CONTEXT_0, signed_data))

    def _sign(self, data: bytes) -> bytes:
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def make_tsa_router(tsa: TimestampAuthority) -> APIRouter:
    """``POST /tsa``: RFC 3161 over HTTP (timestamp-query in, timestamp-reply out)."""
    router = APIRouter(tags=["timestamps"])

    @router.post(
        "/tsa",
        response_class=Response,
        responses={
            200: {"content": {TSA_REPLY_TYPE: {}}},
            413: {"description": "request too large"},
            415: {"description": f"Content-Type is not {TSA_QUERY_TYPE}"},
        },
    )
    async def timestamp(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != TSA_QUERY_TYPE:
            return Response(
                f"expected Content-Type {TSA_QUERY_TYPE}\n",
                status_code=415,
                media_type="text/plain",
            )
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            return Response("request too large\n", status_code=413, media_type="text/plain")
        # Signing one token takes well under a millisecond: no need for a thread.
        return Response(tsa.respond(body), media_type=TSA_REPLY_TYPE)

    return router


def _parse_request(request_der: bytes) -> tsp.TimeStampReq:
    if not request_der or len(request_der) > MAX_REQUEST_BYTES:
        raise _Rejection("bad_data_format", "empty or oversized request")
    try:
        request = tsp.TimeStampReq.load(request_der, strict=True)
        # asn1crypto parses lazily: touch the whole structure now.
        request.native  # noqa: B018
    except (ValueError, TypeError, KeyError) as exc:
        raise _Rejection("bad_data_format", "request is not a DER TimeStampReq") from exc
    return request


def _rejection(rejection: _Rejection) -> TimeStampResp:
    return TimeStampResp(
        {
            "status": tsp.PKIStatusInfo(
                {
                    "status": "rejection",
                    "status_string": [rejection.text],
                    "fail_info": tsp.PKIFailureInfo({rejection.fail_info}),
                }
            )
        }
    )


def _accuracy(accuracy: dt.timedelta) -> tsp.Accuracy:
    micros = int(accuracy / dt.timedelta(microseconds=1))
    if micros <= 0:
        raise TsaConfigurationError("TSA accuracy must be positive")
    seconds, rest = divmod(micros, 1_000_000)
    millis, micros = divmod(rest, 1000)
    fields = {"seconds": seconds, "millis": millis, "micros": micros}
    return tsp.Accuracy({k: v for k, v in fields.items() if v})


def _check_tsa_certificate(cert: x509.Certificate, key: PrivateKey) -> None:
    """RFC 3161 §2.3: the key is the certificate's and its only EKU is timeStamping."""
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise TsaConfigurationError("the TSA key does not match its certificate")
    else:
        raise TsaConfigurationError("the TSA key must be EC or RSA")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise TsaConfigurationError("the TSA certificate has no extendedKeyUsage") from exc
    if not eku.critical or list(eku.value) != [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TsaConfigurationError(
            "the TSA certificate must have exactly one critical EKU: timeStamping"
        )
