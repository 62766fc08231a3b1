"""Development PKI and identity loading: the archive's room for keys and certificates.

``ensure_dev_pki`` makes (once) a throw-away root CA, an organisation seal certificate
("cachet serveur") and a TSA certificate, plus an empty CRL from the root, so that a
developer machine or a test run can seal and timestamp without any outside service.
Everything it makes is marked as development twice: in the subject names and with the
private certificate policy ``DEV_CERT_POLICY_OID``; ``is_development_certificate`` checks
both so the composition root can refuse such certificates in production.

This module never fetches anything, never talks to a network and holds no global state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from archive._asn1 import raw_der
from archive.errors import ArchiveError

__all__ = [
    "COFFRE_OID_ARC",
    "DEFAULT_CRL_URL",
    "DEV_CERT_POLICY_OID",
    "DEV_MARK",
    "DevPki",
    "PkiError",
    "PrivateKey",
    "cert_sha256",
    "ensure_dev_pki",
    "is_development_certificate",
    "issue_certificate",
    "load_certificates",
    "load_crl",
    "load_pkcs12",
    "load_private_key_pem",
    "to_asn1",
]

#: Coffre's private OID arc, derived from a UUID as ITU-T X.667 allows (no registration
#: needed): 2.25.<UUID b069e9ea-38e6-496b-af63-90c7785624d5 as an integer>.
#: Sub-arcs: ``.1`` timestamp policies, ``.2`` certificate policies.
COFFRE_OID_ARC = "2.25.234494062786728589916829179418259104981"
#: Certificate policy carried by every development certificate: "not for production".
DEV_CERT_POLICY_OID = f"{COFFRE_OID_ARC}.2.1"
#: Word put in every development subject (O and CN).
DEV_MARK = "DEVELOPMENT"
DEFAULT_CRL_URL = "http://127.0.0.1:8000/pki/dev-root.crl"

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
KeyType: TypeAlias = Literal["ec", "rsa"]

_ROOT_YEARS = 20
_LEAF_YEARS = 10
#: Lifetime of a fresh CRL, and the margin below which it is reissued.
_CRL_LIFETIME = dt.timedelta(days=365)
_CRL_REFRESH_MARGIN = dt.timedelta(days=30)
#: Back-dating of notBefore/thisUpdate, for clocks that differ a little.
_BACKDATE = dt.timedelta(minutes=5)


class PkiError(ArchiveError):
    """Key material is missing, unreadable or inconsistent."""

    code = "pki_error"


@dataclass(frozen=True)
class DevPki:
    """Where the development PKI lives; the loaders read the files on each call."""

    directory: Path
    #: Root CA certificate (PEM): the trust anchor to give validators.
    root_cert: Path
    #: Root CA private key (PEM, 0600): only needed to reissue the CRL.
    root_key: Path
    #: Seal key, certificate and chain (PKCS#12, encrypted with the password below).
    seal_p12: Path
    #: Password of ``seal_p12`` (0600, one line).
    seal_password_file: Path
    #: TSA certificate (PEM) and private key (PEM, 0600, unencrypted).
    tsa_cert: Path
    tsa_key: Path
    #: CRL issued by the root (DER), empty; served at the certificates' CRL URL.
    crl: Path

    @classmethod
    def at(cls, directory: Path) -> DevPki:
        directory = Path(directory)
        return cls(
            directory=directory,
            root_cert=directory / "dev-root.pem",
            root_key=directory / "dev-root.key.pem",
            seal_p12=directory / "dev-seal.p12",
            seal_password_file=directory / "dev-seal.password",
            tsa_cert=directory / "dev-tsa.pem",
            tsa_key=directory / "dev-tsa.key.pem",
            crl=directory / "dev-root.crl",
        )

    def seal_password(self) -> bytes:
        return self.seal_password_file.read_bytes().strip()

    def load_root(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.root_cert.read_bytes())

    def load_seal(
        self,
    ) -> tuple[PrivateKey, x509.Certificate, tuple[x509.Certificate, ...]]:
        return load_pkcs12(self.seal_p12, self.seal_password())

    def load_tsa(self) -> tuple[PrivateKey, x509.Certificate]:
        key = _load_private_key_pem(self.tsa_key.read_bytes())
        return key, x509.load_pem_x509_certificate(self.tsa_cert.read_bytes())

    def load_crl(self) -> x509.CertificateRevocationList:
        return load_crl(self.crl)


def ensure_dev_pki(
    directory: Path,
    *,
    organisation: str = "Coffre",
    crl_url: str = DEFAULT_CRL_URL,
    key_type: KeyType = "rsa",
) -> DevPki:
    """Make the development PKI in ``directory`` if it is not there yet; return its paths.

    Idempotent: existing keys and certificates are kept (a second call changes nothing
    but a CRL close to its nextUpdate, which is reissued). Missing pieces are made from
    the existing root. A file lock makes concurrent first calls safe.
    """
    pki = DevPki.at(directory)
    pki.directory.mkdir(parents=True, exist_ok=True)
    with _locked(pki.directory / ".lock"):
        now = dt.datetime.now(dt.UTC)
        if pki.root_cert.exists() and pki.root_key.exists():
            root_key = _load_private_key_pem(pki.root_key.read_bytes())
            root = pki.load_root()
        else:
            root_key = _new_key(key_type)
            root = _make_root(root_key, organisation, now)
            _write(pki.root_key, _private_pem(root_key), secret=True)
            _write(pki.root_cert, root.public_bytes(serialization.Encoding.PEM))
            # A new root invalidates every leaf and CRL of an older one.
            for stale in (pki.seal_p12, pki.seal_password_file, pki.tsa_cert, pki.tsa_key, pki.crl):
                stale.unlink(missing_ok=True)

        if not (pki.seal_p12.exists() and pki.seal_password_file.exists()):
            seal_key = _new_key(key_type)
            seal = _make_seal(seal_key, root, root_key, organisation, crl_url, now)
            password = secrets.token_urlsafe(24).encode()
            p12 = pkcs12.serialize_key_and_certificates(
                name=b"coffre-dev-seal",
                key=seal_key,
                cert=seal,
                cas=[root],
                encryption_algorithm=serialization.BestAvailableEncryption(password),
            )
            _write(pki.seal_password_file, password + b"\n", secret=True)
            _write(pki.seal_p12, p12, secret=True)

        if not (pki.tsa_cert.exists() and pki.tsa_key.exists()):
            tsa_key = _new_key(key_type)
            tsa = _make_tsa(tsa_key, root, root_key, organisation, crl_url, now)
            _write(pki.tsa_key, _private_pem(tsa_key), secret=True)
            _write(pki.tsa_cert, tsa.public_bytes(serialization.Encoding.PEM))

        if _crl_is_stale(pki.crl, now):
            crl = _make_crl(root, root_key, now)
            _write(pki.crl, crl.public_bytes(serialization.Encoding.DER))
    return pki


def issue_certificate(
    kind: Literal["seal", "tsa"],
    *,
    root: x509.Certificate,
    root_key: PrivateKey,
    validity: dt.timedelta,
    not_before: dt.datetime | None = None,
    organisation: str = "Coffre",
    crl_url: str = DEFAULT_CRL_URL,
    key_type: KeyType = "rsa",
    rsa_bits: int = 2048,
) -> tuple[PrivateKey, x509.Certificate]:
    """A development seal or TSA certificate under ``root`` with a chosen lifetime.

    For renewal drills and tests: evidence whose certificates expire soon, or a TSA whose
    certificate was valid at some past instant (``not_before``, default now). ``rsa_bits``
    below 2048 makes deliberately weak keys for deny-list checks.
    """
    now = not_before or dt.datetime.now(dt.UTC)
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        if key_type == "rsa"
        else _new_key(key_type)
    )
    make = _make_tsa if kind == "tsa" else _make_seal
    return key, make(key, root, root_key, organisation, crl_url, now, validity)


def is_development_certificate(cert: x509.Certificate | asn1_x509.Certificate | bytes) -> bool:
    """True when ``cert`` carries the development policy or a DEVELOPMENT subject."""
    cert = _to_cryptography(cert)
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        policies = x509.CertificatePolicies([])
    if any(p.policy_identifier.dotted_string == DEV_CERT_POLICY_OID for p in policies):
        return True
    names = cert.subject.get_attributes_for_oid(
        NameOID.ORGANIZATION_NAME
    ) + cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return any(DEV_MARK in str(attr.value).upper() for attr in names)


def cert_sha256(cert: x509.Certificate | asn1_x509.Certificate | bytes) -> str:
    """Hex SHA-256 of the certificate's DER encoding (its usual fingerprint)."""
    if isinstance(cert, x509.Certificate):
        der = cert.public_bytes(serialization.Encoding.DER)
    elif isinstance(cert, asn1_x509.Certificate):
        der = raw_der(cert)
    else:
        der = bytes(cert)
    return hashlib.sha256(der).hexdigest()


def to_asn1(cert: x509.Certificate | asn1_x509.Certificate | bytes) -> asn1_x509.Certificate:
    """The asn1crypto form pyhanko and certvalidator want."""
    if isinstance(cert, asn1_x509.Certificate):
        return cert
    if isinstance(cert, x509.Certificate):
        cert = cert.public_bytes(serialization.Encoding.DER)
    return asn1_x509.Certificate.load(bytes(cert))


def load_pkcs12(
    path: Path, password: bytes | str | None
) -> tuple[PrivateKey, x509.Certificate, tuple[x509.Certificate, ...]]:
    """Key, certificate and the other certificates of a PKCS#12 file."""
    if isinstance(password, str):
        password = password.encode()
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(Path(path).read_bytes(), password)
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read PKCS#12 file {path}: {exc}", path=str(path)) from exc
    if cert is None or not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(
            f"PKCS#12 file {path} must hold one EC or RSA key and its certificate",
            path=str(path),
        )
    return key, cert, tuple(chain)


def load_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM or DER file (a bundle of trust roots, say)."""
    data = Path(path).read_bytes()
    try:
        if b"-----BEGIN" in data:
            return tuple(x509.load_pem_x509_certificates(data))
        return (x509.load_der_x509_certificate(data),)
    except ValueError as exc:
        raise PkiError(f"cannot read certificates from {path}: {exc}", path=str(path)) from exc


def load_crl(path: Path) -> x509.CertificateRevocationList:
    data = Path(path).read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise PkiError(f"cannot read CRL {path}: {exc}", path=str(path)) from exc


# --- making certificates ------------------------------------------------------------------


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _dev_name(organisation: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME, f"{organisation} {DEV_MARK} — not for production"
            ),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} {DEV_MARK}"),
        ]
    )


def _dev_policy() -> x509.CertificatePolicies:
    return x509.CertificatePolicies(
        [
            x509.PolicyInformation(
                x509.ObjectIdentifier(DEV_CERT_POLICY_OID),
                [f"Coffre {DEV_MARK} certificate: not for production use"],
            )
        ]
    )


def _serial() -> int:
    return x509.random_serial_number()


def _make_root(key: PrivateKey, organisation: str, now: dt.datetime) -> x509.Certificate:
    name = _dev_name(organisation, f"{organisation} root CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=365 * _ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(_dev_policy(), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf_builder(
    key: PrivateKey,
    subject: x509.Name,
    root: x509.Certificate,
    crl_url: str,
    now: dt.datetime,
    validity: dt.timedelta | None = None,
) -> x509.CertificateBuilder:
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + (validity or dt.timedelta(days=365 * _LEAF_YEARS)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(_dev_policy(), critical=False)
    )


def _signing_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,  # nonRepudiation
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _make_seal(
    key: PrivateKey,
    root: x509.Certificate,
    root_key: PrivateKey,
    organisation: str,
    crl_url: str,
    now: dt.datetime,
    validity: dt.timedelta | None = None,
) -> x509.Certificate:
    subject = _dev_name(organisation, f"{organisation} cachet serveur")
    return (
        _leaf_builder(key, subject, root, crl_url, now, validity)
        .add_extension(_signing_key_usage(), critical=True)
        .sign(root_key, hashes.SHA256())
    )


def _make_tsa(
    key: PrivateKey,
    root: x509.Certificate,
    root_key: PrivateKey,
    organisation: str,
    crl_url: str,
    now: dt.datetime,
    validity: dt.timedelta | None = None,
) -> x509.Certificate:
    subject = _dev_name(organisation, f"{organisation} TSA")
    return (
        _leaf_builder(key, subject, root, crl_url, now, validity)
        .add_extension(_signing_key_usage(), critical=True)
        # RFC 3161 §2.3: the TSA certificate has exactly this EKU, marked critical.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(root_key, hashes.SHA256())
    )


def _make_crl(
    root: x509.Certificate, root_key: PrivateKey, now: dt.datetime
) -> x509.CertificateRevocationList:
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now - _BACKDATE)
        .next_update(now + _CRL_LIFETIME)
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )


def _crl_is_stale(path: Path, now: dt.datetime) -> bool:
    if not path.exists():
        return True
    try:
        crl = load_crl(path)
    except PkiError:
        return True
    next_update = crl.next_update_utc
    return next_update is None or next_update - now < _CRL_REFRESH_MARGIN


# --- files --------------------------------------------------------------------------------


def _private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_pem(data: bytes, password: bytes | None = None) -> PrivateKey:
    """An EC or RSA private key from PEM (the TSA key, say)."""
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot read the private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError("only EC and RSA keys are supported")
    return key


#: Former private name, still imported by ``coffre.runtime``.
_load_private_key_pem = load_private_key_pem


def _to_cryptography(cert: x509.Certificate | asn1_x509.Certificate | bytes) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    if isinstance(cert, asn1_x509.Certificate):
        cert = raw_der(cert)
    return x509.load_der_x509_certificate(bytes(cert))


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Write through a temporary file and rename, so a crash never leaves a partial file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
