"""The organisation's seal ("cachet serveur"): PAdES on PDFs, detached CMS on any bytes.

``Sealer.seal_pdf`` adds a PAdES baseline signature (B-T, B-LT or B-LTA) to a PDF as an
incremental update, so the input bytes stay a prefix of the output and a PDF/A input
still declares PDF/A. ``Sealer.seal_detached`` makes a CAdES-style detached CMS over
unchanged bytes. Checking seals offline is :mod:`archive.seal_check`'s.

pyHanko does the PDF work (fields, byte ranges, DSS, document timestamps) and all the
validation. Only the CMS container is assembled here, from pieces encoded once per
sealer: asn1crypto re-encodes containers that embed certificates so slowly that it was
most of the time of a seal (see ``archive._asn1``). The container is the plain profile
pyHanko itself makes for PAdES/CAdES (content-type, message-digest, ESS
signing-certificate-v2, plus signing-time for CAdES; signature timestamp unsigned).

This room never fetches anything over the network and never writes to disk.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import io
import logging
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata.model import VENDOR
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.general import SigningError, as_signing_certificate_v2, simple_cms_attribute
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.timestamps import TimeStamper, TimestampRequestError
from pyhanko.sign.validation.pdf_embedded import read_certification_data
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from archive._asn1 import (
    CONTEXT_0,
    SEQUENCE,
    PreEncodedContentInfo,
    der_set_of,
    der_tlv,
    raw_der,
    signer_info_v1,
)
from archive.errors import ArchiveError, CorruptPdf, EmptyFile, EncryptedPdf, NotAPdf
from archive.pki import PrivateKey, cert_sha256, load_pkcs12, to_asn1
from archive.timestamp import (
    Timestamper,
    TimestampError,
    TimestampToken,
    _crl_der,
)

__all__ = [
    "CorruptPdf",
    "DetachedSeal",
    "EmptyFile",
    "EncryptedPdf",
    "NotAPdf",
    "PdfLocked",
    "SealConfigurationError",
    "SealError",
    "SealIdentity",
    "SealLevel",
    "SealedPdf",
    "Sealer",
]

SealLevel = Literal["B-T", "B-LT", "B-LTA"]
_LEVELS: tuple[SealLevel, ...] = ("B-T", "B-LT", "B-LTA")
_DIGEST = "sha256"
_UNSIGNED_ATTRS = 0xA1  # [1] IMPLICIT SET OF, in SignerInfo (unsignedAttrs) and SignedData (crls)
_SIGNATURE_TST_OID = "1.2.840.113549.1.9.16.2.14"  # id-aa-signatureTimeStampToken
_MECHANISM_NAMES = {
    "sha256_ecdsa": "ecdsa-with-SHA256",
    "sha256_rsa": "sha256WithRSAEncryption",
    "rsassa_pkcs1v15": "sha256WithRSAEncryption",
    "rsassa_pss": "RSASSA-PSS",
}
#: ``pdfaid:part="2"`` (attribute form) or ``<pdfaid:part ...>2<`` (element form).
_PDFAID_PART = re.compile(rb"pdfaid:part(?:=[\"']|[^>]*>)\s*(\d)")
#: How long a validation context (and so its cached chain validation) is reused.
_CONTEXT_TTL = dt.timedelta(minutes=5)

#: The signature timestamp of the CMS made last in this task (read back by seal_pdf).
_last_signature_timestamp: contextvars.ContextVar[TimestampToken | None] = contextvars.ContextVar(
    "coffre_last_signature_timestamp", default=None
)


class SealError(ArchiveError):
    """Sealing failed for a reason other than the input (the message says which)."""

    code = "seal_failed"


class SealConfigurationError(SealError):
    """The seal key, certificate or trust settings cannot be used."""

    code = "seal_configuration_error"


class PdfLocked(SealError):
    """The PDF forbids further changes (certified with DocMDP "no changes")."""

    code = "pdf_locked"
    status = 422


# --- identities ---------------------------------------------------------------------------


class _KeySigner(Signer):
    """Raw signatures with an in-memory key, parsed once (SimpleSigner reloads it per call)."""

    def __init__(self, key: PrivateKey, cert: asn1_x509.Certificate) -> None:
        algorithm = "sha256_ecdsa" if isinstance(key, ec.EllipticCurvePrivateKey) else "sha256_rsa"
        super().__init__(
            signing_cert=cert,
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": algorithm}),
        )
        self._key = key

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if digest_algorithm != _DIGEST:
            raise SigningError(f"only {_DIGEST} is supported, not {digest_algorithm}")
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())


@dataclass(frozen=True)
class SealIdentity:
    """Who seals: a certificate, its chain, and a pyHanko signer able to use its key."""

    #: Makes raw signatures (in memory for PKCS#12, in the token for PKCS#11).
    signer: Signer
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    #: Where the key lives, for logs and messages ("pkcs12:/path", "pkcs11:token/key").
    source: str

    @classmethod
    def from_pkcs12(cls, path: Path, password: bytes | str | None) -> SealIdentity:
        try:
            key, cert, chain = load_pkcs12(Path(path), password)
        except ArchiveError as exc:
            raise SealConfigurationError(str(exc), **exc.data) from exc
        return cls(_KeySigner(key, to_asn1(cert)), cert, chain, f"pkcs12:{path}")

    @classmethod
    def from_pkcs11(
        cls,
        lib_path: str | Path,
        token_label: str,
        key_label: str,
        pin: str | None,
        *,
        cert_label: str | None = None,
        chain_labels: Sequence[str] | None = None,
    ) -> SealIdentity:
        """A key in a PKCS#11 token (HSM, smart card, SoftHSM); needs ``python-pkcs11``.

        The session stays open for the identity's life. The certificate is read from the
        token (label ``cert_label``, default ``key_label``); its chain is the token's
        certificates labelled ``chain_labels`` (default: every other certificate there).
        """
        try:
            from pkcs11 import PKCS11Error
            from pyhanko.sign.pkcs11 import PKCS11Signer, TokenCriteria, open_pkcs11_session
        except ImportError as exc:
            raise SealConfigurationError(
                "PKCS#11 sealing needs the python-pkcs11 package", lib=str(lib_path)
            ) from exc
        try:
            session = open_pkcs11_session(
                str(lib_path), token_criteria=TokenCriteria(label=token_label), user_pin=pin
            )
            signer = PKCS11Signer(
                session,
                cert_label=cert_label or key_label,
                key_label=key_label,
                other_certs_to_pull=None if chain_labels is None else tuple(chain_labels),
            )
            signing_cert = signer.signing_cert
            others = [c for c in signer.cert_registry if raw_der(c) != raw_der(signing_cert)]
        except (PKCS11Error, SigningError, OSError, ValueError) as exc:
            raise SealConfigurationError(
                f"cannot use key {key_label!r} of PKCS#11 token {token_label!r}: {exc!r}",
                lib=str(lib_path),
                token=token_label,
                key=key_label,
            ) from exc
        return cls(
            signer,
            x509.load_der_x509_certificate(raw_der(signing_cert)),
            tuple(x509.load_der_x509_certificate(raw_der(c)) for c in others),
            f"pkcs11:{token_label}/{key_label}",
        )

    @property
    def cert_sha256(self) -> str:
        return cert_sha256(self.cert)


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedPdf:
    """A sealed PDF and the facts the journal records about its seal."""

    data: bytes
    cert_sha256: str
    #: "ecdsa-with-SHA256", "sha256WithRSAEncryption"...
    signature_algorithm: str
    level: SealLevel
    #: The signature timestamp (RFC 3161 token over the signature value).
    timestamp: TimestampToken
    field_name: str


@dataclass(frozen=True)
class DetachedSeal:
    """A detached CMS (``.p7s``) over bytes that stay unchanged."""

    cms_der: bytes
    cert_sha256: str
    signature_algorithm: str
    timestamp: TimestampToken
    #: True when the CMS carries the CRLs known to the sealer (offline validation).
    revocation_info_embedded: bool


# --- the CMS container --------------------------------------------------------------------


class _SealSigner(Signer):
    """pyHanko Signer whose CMS is assembled from pre-encoded pieces.

    Supports what Coffre makes and nothing else: SHA-256, detached content of type data,
    PAdES (no signing-time) or CAdES (signing-time) signed attributes, a signature
    timestamp, optionally the CRLs in ``SignedData.crls``.
    """

    def __init__(self, identity: SealIdentity, crls: Sequence[bytes]) -> None:
        cert = to_asn1(identity.cert)
        chain = [to_asn1(c) for c in identity.chain]
        mechanism = identity.signer.get_signature_mechanism_for_digest(_DIGEST)
        super().__init__(
            signing_cert=cert,
            cert_registry=SimpleCertificateStore.from_certs([cert, *chain]),
            signature_mechanism=mechanism,
        )
        self._raw = identity.signer
        self.mechanism_name = _MECHANISM_NAMES.get(
            mechanism["algorithm"].native, mechanism["algorithm"].native
        )
        self._signature_size = _max_signature_size(identity.cert)
        self._sid = cms.IssuerAndSerialNumber(
            {"issuer": cert.issuer, "serial_number": cert.serial_number}
        ).dump()
        self._digest_algorithm = algos.DigestAlgorithm({"algorithm": _DIGEST}).dump()
        self._signature_algorithm = mechanism.dump()
        self._content_type_attr = simple_cms_attribute("content_type", "data").dump()
        self._signing_cert_attr = simple_cms_attribute(
            "signing_certificate_v2", as_signing_certificate_v2(cert, _DIGEST)
        ).dump()
        self._certificates = der_set_of(
            [raw_der(cert), *(raw_der(c) for c in chain)], tag=CONTEXT_0
        )
        self._crls = der_set_of(list(crls), tag=_UNSIGNED_ATTRS) if crls else b""
        self._encap_data = der_tlv(SEQUENCE, core.ObjectIdentifier("1.2.840.113549.1.7.1").dump())
        self._oid_signed_data = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
        self._oid_signature_tst = core.ObjectIdentifier(_SIGNATURE_TST_OID).dump()

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:
            return bytes(self._signature_size)
        return await self._raw.async_sign_raw(data, digest_algorithm)

    async def async_sign(
        self,
        data_digest: bytes,
        digest_algorithm: str,
        dry_run: bool = False,
        use_pades: bool = False,
        timestamper: TimeStamper | None = None,
        signed_attr_settings: Any = None,
        is_pdf_sig: bool = True,
        encap_content_info: Any = None,
    ) -> cms.ContentInfo:
        """pyHanko's entry point for PDF signatures (and their size estimate)."""
        if digest_algorithm.lower() != _DIGEST or encap_content_info is not None:
            raise SigningError("this signer only makes detached SHA-256 signatures")
        if timestamper is None:
            raise SigningError("a seal always carries a signature timestamp")
        der = await self.container(
            data_digest,
            timestamper=timestamper,
            signing_time=None if is_pdf_sig else dt.datetime.now(dt.UTC),
            embed_crls=False,
            dry_run=dry_run,
        )
        return PreEncodedContentInfo.load(der)

    async def container(
        self,
        data_digest: bytes,
        *,
        timestamper: TimeStamper,
        signing_time: dt.datetime | None,
        embed_crls: bool,
        dry_run: bool = False,
    ) -> bytes:
        """DER ContentInfo(SignedData) over a detached content digest."""
        attributes = [
            self._content_type_attr,
            simple_cms_attribute("message_digest", data_digest).dump(),
            self._signing_cert_attr,
        ]
        if signing_time is not None:
            when = signing_time.astimezone(dt.UTC).replace(microsecond=0)
            attributes.append(
                simple_cms_attribute("signing_time", cms.Time({"utc_time": when})).dump()
            )
        signature = await self.async_sign_raw(der_set_of(attributes), _DIGEST, dry_run=dry_run)
        if dry_run:
            token = await timestamper.async_dummy_response(_DIGEST)
        else:
            token = await timestamper.async_timestamp(hashlib.sha256(signature).digest(), _DIGEST)
            _last_signature_timestamp.set(TimestampToken.from_token(token))
        token_attr = der_tlv(SEQUENCE, self._oid_signature_tst, der_set_of([raw_der(token)]))
        signer_info = signer_info_v1(
            sid=self._sid,
            digest_algorithm=self._digest_algorithm,
            signed_attrs=attributes,
            signature_algorithm=self._signature_algorithm,
            signature=signature,
            unsigned_attrs=[token_attr],
        )
        signed_data = der_tlv(
            SEQUENCE,
            core.Integer(1).dump(),
            der_set_of([self._digest_algorithm]),
            self._encap_data,
            self._certificates,
            self._crls if embed_crls else b"",
            der_set_of([signer_info]),
        )
        return der_tlv(SEQUENCE, self._oid_signed_data, der_tlv(CONTEXT_0, signed_data))


def _max_signature_size(cert: x509.Certificate) -> int:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        # DER SEQUENCE of two INTEGERs, each possibly one byte longer than the field.
        return 2 * ((key.curve.key_size + 7) // 8 + 3) + 3
    if isinstance(key, rsa.RSAPublicKey):
        return (key.key_size + 7) // 8
    raise SealConfigurationError("the seal key must be EC or RSA")


# --- the sealer ---------------------------------------------------------------------------


class Sealer:
    """Seals PDFs and arbitrary bytes with one identity and one timestamp source.

    Build one per identity and keep it: it holds the parsed certificates, the encoded
    CMS pieces and (for B-LT/B-LTA) a validation context whose chain validation is
    reused for a few minutes. Nothing here needs the network: revocation data comes
    from ``crls`` (the CRLs of the seal and TSA chains).
    """

    def __init__(
        self,
        identity: SealIdentity,
        timestamper: Timestamper,
        *,
        level: SealLevel = "B-LT",
        trust_roots: Sequence[Any] = (),
        crls: Iterable[bytes | x509.CertificateRevocationList] = (),
    ) -> None:
        if level not in _LEVELS:
            raise SealConfigurationError(f"unknown PAdES level {level!r}", level=level)
        self.identity = identity
        self.timestamper = timestamper
        self.level: SealLevel = level
        self._trust_roots = tuple(to_asn1(c) for c in trust_roots)
        self._crls = tuple(_crl_der(c) for c in crls)
        if level != "B-T" and not self._trust_roots:
            raise SealConfigurationError(
                f"{level} embeds validation data and needs the trust roots of the seal chain"
            )
        self._signer = _SealSigner(identity, self._crls)
        if level != "B-T":
            _install_filter_once()
        self.cert_sha256 = identity.cert_sha256
        self.signature_algorithm = self._signer.mechanism_name
        # Per thread: use cases run in worker threads, and certvalidator's caches are
        # plain dicts that were never meant to be shared between threads.
        self._contexts = threading.local()

    async def seal_pdf(self, pdf: bytes) -> SealedPdf:
        """PAdES seal at ``self.level`` as an incremental update of ``pdf``."""
        writer = _open_pdf_for_update(pdf)
        field_name = _free_field_name(writer)
        if _declared_pdfa_part(writer) in (1, 2, 3):
            _align_producer_with_xmp(writer)
            _cap_version_at_pdf_1_7(writer)
        long_term = self.level != "B-T"
        metadata = PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm=_DIGEST,
            subfilter=SigSeedSubFilter.PADES,
            embed_validation_info=long_term,
            use_pades_lta=self.level == "B-LTA",
            validation_context=self._validation_context() if long_term else None,
            # The seal certificate has nonRepudiation; pyHanko's default asks for it too.
        )
        signer = PdfSigner(
            metadata, signer=self._signer, timestamper=self.timestamper.pyhanko_stamper
        )
        output = io.BytesIO()
        token = _last_signature_timestamp.set(None)
        try:
            await signer.async_sign_pdf(writer, output=output)
            timestamp = _last_signature_timestamp.get()
        except SigningError as exc:
            raise _signing_error(exc) from exc
        except (TimestampRequestError, TimestampError) as exc:
            raise SealError(f"timestamping the seal failed: {exc}") from exc
        except (misc.PdfError, ValueError, KeyError, TypeError) as exc:
            raise CorruptPdf(f"the PDF cannot be sealed: {exc}") from exc
        finally:
            _last_signature_timestamp.reset(token)
        data = output.getvalue()
        if timestamp is None or not data.startswith(pdf):
            raise SealError("pyHanko produced an unexpected output (not an incremental update)")
        return SealedPdf(
            data=data,
            cert_sha256=self.cert_sha256,
            signature_algorithm=self.signature_algorithm,
            level=self.level,
            timestamp=timestamp,
            field_name=field_name,
        )

    async def seal_detached(self, data: bytes) -> DetachedSeal:
        """Detached CMS (CAdES-B-T; CRLs embedded unless the level is B-T) over ``data``."""
        embed = self.level != "B-T" and bool(self._crls)
        token = _last_signature_timestamp.set(None)
        try:
            der = await self._signer.container(
                hashlib.sha256(data).digest(),
                timestamper=self.timestamper.pyhanko_stamper,
                signing_time=dt.datetime.now(dt.UTC),
                embed_crls=embed,
            )
            timestamp = _last_signature_timestamp.get()
        except SigningError as exc:
            raise _signing_error(exc) from exc
        except (TimestampRequestError, TimestampError) as exc:
            raise SealError(f"timestamping the seal failed: {exc}") from exc
        finally:
            _last_signature_timestamp.reset(token)
        if timestamp is None:
            raise SealError("the detached seal got no timestamp")
        return DetachedSeal(
            cms_der=der,
            cert_sha256=self.cert_sha256,
            signature_algorithm=self.signature_algorithm,
            timestamp=timestamp,
            revocation_info_embedded=embed,
        )

    def _validation_context(self) -> ValidationContext:
        """A context for the pre-signing checks and the DSS, reused for ``_CONTEXT_TTL``.

        Reuse lets certvalidator keep the seal and TSA chains it already validated; the
        context's time is fixed at creation, hence the short life.
        """
        now = dt.datetime.now(dt.UTC)
        cached: tuple[dt.datetime, ValidationContext] | None = getattr(
            self._contexts, "current", None
        )
        if cached is not None and now - cached[0] < _CONTEXT_TTL:
            return cached[1]
        context = ValidationContext(
            trust_roots=list(self._trust_roots),
            crls=list(self._crls),
            allow_fetching=False,
            revocation_mode="hard-fail",
        )
        self._contexts.current = (now, context)
        return context


def _install_filter_once() -> None:
    logger = logging.getLogger("pyhanko.sign.signers.pdf_signer")
    if not any(isinstance(f, _OfflineEmbeddingNotice) for f in logger.filters):
        logger.addFilter(_OfflineEmbeddingNotice())


def _signing_error(exc: SigningError) -> SealError:
    if isinstance(exc.__cause__, PathBuildingError | PathValidationError):
        return SealConfigurationError(
            "the seal certificate does not validate against the trust roots and CRLs "
            f"(no network is used): {exc.__cause__}"
        )
    return SealError(f"sealing failed: {exc}")


def _open_pdf_for_update(pdf: bytes) -> IncrementalPdfFileWriter:
    if not pdf:
        raise EmptyFile("the file is empty (0 bytes)")
    if not pdf[:1024].lstrip(b"\x00\t\n\r\f ").startswith(b"%PDF-"):
        raise NotAPdf("the file is not a PDF (no %PDF- header)", head=pdf[:8].hex())
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (misc.PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise CorruptPdf(f"the PDF cannot be read: {exc}") from exc
    if writer.prev.encrypted:
        raise EncryptedPdf("the PDF is encrypted; it cannot be sealed as it is")
    try:
        certification = read_certification_data(writer.prev)
    except (misc.PdfError, ValueError, KeyError, TypeError) as exc:
        raise CorruptPdf(f"the PDF's certification data cannot be read: {exc}") from exc
    if certification is not None and certification.permission == MDPPerm.NO_CHANGES:
        raise PdfLocked('the PDF is certified with "no changes allowed"; it cannot be sealed')
    return writer


def _free_field_name(writer: IncrementalPdfFileWriter) -> str:
    try:
        fields = writer.root["/AcroForm"]["/Fields"]
        taken = {str(f.get_object().get("/T", "")) for f in fields}
    except (KeyError, TypeError, AttributeError):
        taken = set()
    name = "CoffreSeal"
    while name in taken:
        name = f"CoffreSeal-{secrets.token_hex(3)}"
    return name


def _declared_pdfa_part(writer: IncrementalPdfFileWriter) -> int | None:
    """The PDF/A part the XMP metadata declares (``pdfaid:part``), or None."""
    try:
        xmp = writer.root["/Metadata"].get_object().data
    except (KeyError, AttributeError, TypeError, misc.PdfError):
        return None
    match = _PDFAID_PART.search(xmp)
    return int(match.group(1)) if match else None


def _cap_version_at_pdf_1_7(writer: IncrementalPdfFileWriter) -> None:
    """Keep a PDF/A-1/2/3 file a PDF 1.x file.

    pyHanko raises the version to 2.0 for ECDSA signatures (ISO 32002), and PDF/A-2
    allows only ``%PDF-1.0`` to ``1.7``. The extension itself is still declared in
    ``/Extensions``; ECDSA in PDF 1.7 is what readers have accepted since Acrobat 9.
    """
    raise_version = writer.ensure_output_version

    def capped(version: tuple[int, int]) -> None:
        raise_version(version=min(version, (1, 7)))

    writer.ensure_output_version = capped  # type: ignore[method-assign]


class _OfflineEmbeddingNotice(logging.Filter):
    """Drop pyHanko's per-seal warning that fetching is off while embedding revocation data.

    Sealing offline with CRLs passed in is the design here, so the warning would only
    repeat itself once per document.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


def _align_producer_with_xmp(writer: IncrementalPdfFileWriter) -> None:
    """PDF/A wants Info /Producer == XMP pdf:Producer; pyHanko writes different ones.

    pyHanko sets XMP pdf:Producer to its vendor string but appends that string to an
    existing Info /Producer ("pikepdf; pyHanko 0.38.0"). Making Info /Producer the vendor
    string beforehand makes both agree (the previous producer stays in the previous
    revision, untouched).
    """
    info_ref = writer.trailer_view.get_value_as_reference("/Info", optional=True)
    if info_ref is None:
        return
    info = info_ref.get_object()
    if not isinstance(info, generic.DictionaryObject):
        return
    if info.get("/Producer") != VENDOR:
        info["/Producer"] = generic.TextStringObject(VENDOR)
        writer.mark_update(info_ref)
