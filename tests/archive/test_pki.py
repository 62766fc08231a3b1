"""The development PKI: made once, marked as development everywhere, usable offline."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from archive.pki import (
    DEFAULT_CRL_URL,
    DEV_CERT_POLICY_OID,
    DevPki,
    PkiError,
    cert_sha256,
    ensure_dev_pki,
    is_development_certificate,
    load_pkcs12,
    to_asn1,
)
from tests.archive.conftest import self_signed


def _snapshot(pki: DevPki) -> dict[str, tuple[bytes, int]]:
    files = [pki.root_cert, pki.root_key, pki.seal_p12, pki.seal_password_file, pki.tsa_cert]
    files += [pki.tsa_key, pki.crl]
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def test_a_second_call_changes_nothing(dev_pki: DevPki) -> None:
    before = _snapshot(dev_pki)
    again = ensure_dev_pki(dev_pki.directory)
    assert again == dev_pki
    assert _snapshot(dev_pki) == before


def test_secrets_are_readable_by_the_owner_only(dev_pki: DevPki) -> None:
    for secret in (dev_pki.root_key, dev_pki.seal_p12, dev_pki.seal_password_file, dev_pki.tsa_key):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret.name
    assert stat.S_IMODE(dev_pki.root_cert.stat().st_mode) == 0o644


def test_tsa_certificate_has_only_the_critical_timestamping_eku(dev_pki: DevPki) -> None:
    _, cert = dev_pki.load_tsa()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def test_seal_certificate_is_a_non_repudiation_seal_chained_to_the_root(dev_pki: DevPki) -> None:
    key, cert, chain = dev_pki.load_seal()
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert chain == (dev_pki.load_root(),)
    cert.verify_directly_issued_by(dev_pki.load_root())
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert points[0].full_name[0].value == DEFAULT_CRL_URL


def test_every_dev_certificate_is_marked_in_name_and_policy(dev_pki: DevPki) -> None:
    certs = [dev_pki.load_root(), dev_pki.load_seal()[1], dev_pki.load_tsa()[1]]
    for cert in certs:
        organisation = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        assert "DEVELOPMENT" in str(organisation)
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
        assert [p.policy_identifier.dotted_string for p in policies] == [DEV_CERT_POLICY_OID]
        assert is_development_certificate(cert)
        assert is_development_certificate(to_asn1(cert))


def test_a_plain_certificate_is_not_development() -> None:
    assert not is_development_certificate(self_signed("cachet serveur", "ACME SAS"))


def test_either_marker_alone_flags_a_certificate() -> None:
    assert is_development_certificate(self_signed("test DEVELOPMENT seal", "ACME SAS"))


def test_crl_is_empty_signed_by_the_root_and_long_lived(dev_pki: DevPki) -> None:
    crl = dev_pki.load_crl()
    root = dev_pki.load_root()
    assert crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    assert len(list(crl)) == 0
    assert crl.next_update_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)


def test_a_stale_crl_is_reissued_and_nothing_else(tmp_path: Path, dev_pki: DevPki) -> None:
    pki = ensure_dev_pki(tmp_path / "pki")
    root_key = serialization.load_pem_private_key(pki.root_key.read_bytes(), None)
    now = dt.datetime.now(dt.UTC)
    stale = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.load_root().subject)
        .last_update(now - dt.timedelta(days=10))
        .next_update(now + dt.timedelta(days=1))
        .sign(root_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pki.crl.write_bytes(stale.public_bytes(serialization.Encoding.DER))
    seal_before = pki.seal_p12.read_bytes()
    ensure_dev_pki(tmp_path / "pki")
    assert pki.load_crl().next_update_utc > now + dt.timedelta(days=300)
    assert pki.seal_p12.read_bytes() == seal_before


def test_wrong_pkcs12_password_is_a_pki_error(dev_pki: DevPki) -> None:
    with pytest.raises(PkiError) as caught:
        load_pkcs12(dev_pki.seal_p12, b"not the password")
    assert caught.value.code == "pki_error"


def test_fingerprint_is_the_same_for_every_form(dev_pki: DevPki) -> None:
    cert = dev_pki.load_root()
    der = cert.public_bytes(serialization.Encoding.DER)
    assert cert_sha256(cert) == cert_sha256(to_asn1(cert)) == cert_sha256(der)
    assert cert_sha256(cert) == cert.fingerprint(hashes.SHA256()).hex()
