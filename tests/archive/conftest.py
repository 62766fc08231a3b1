"""Fixtures of the archive's crypto rooms: the development PKI (made once per session by
the root conftest), its TSA and timestamper, seal identities and a foreign PKI that
nobody should trust."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from archive.pki import DevPki, ensure_dev_pki
from archive.seal import Sealer, SealIdentity, SealLevel
from archive.timestamp import Timestamper
from archive.tsa import TimestampAuthority


@pytest.fixture(scope="session")
def dev_pki(pki_template: Path) -> DevPki:
    """The session's development PKI (RSA-2048, the default)."""
    return DevPki.at(pki_template)


@pytest.fixture(scope="session")
def ec_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """The same PKI shape with ECDSA P-256 keys."""
    return ensure_dev_pki(tmp_path_factory.mktemp("ec-pki"), key_type="ec")


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """Another organisation's PKI: its root must not make our seals trusted."""
    return ensure_dev_pki(tmp_path_factory.mktemp("foreign-pki"), organisation="Ailleurs")


@pytest.fixture(scope="session")
def trust_roots(dev_pki: DevPki) -> list[x509.Certificate]:
    return [dev_pki.load_root()]


@pytest.fixture(scope="session")
def crls(dev_pki: DevPki) -> list[bytes]:
    return [dev_pki.crl.read_bytes()]


@pytest.fixture(scope="session")
def tsa(dev_pki: DevPki) -> TimestampAuthority:
    key, cert = dev_pki.load_tsa()
    return TimestampAuthority(cert, key, [dev_pki.load_root()])


@pytest.fixture(scope="session")
def timestamper(tsa: TimestampAuthority) -> Timestamper:
    return Timestamper.local(tsa)


@pytest.fixture(scope="session")
def seal_identity(dev_pki: DevPki) -> SealIdentity:
    return SealIdentity.from_pkcs12(dev_pki.seal_p12, dev_pki.seal_password())


@pytest.fixture(scope="session")
def make_sealer(
    seal_identity: SealIdentity,
    timestamper: Timestamper,
    trust_roots: list[x509.Certificate],
    crls: list[bytes],
) -> Callable[[SealLevel], Sealer]:
    made: dict[str, Sealer] = {}

    def make(level: SealLevel) -> Sealer:
        if level not in made:
            made[level] = Sealer(
                seal_identity, timestamper, level=level, trust_roots=trust_roots, crls=crls
            )
        return made[level]

    return make


def self_signed(common_name: str, organisation: str) -> x509.Certificate:
    """A plain certificate with no development marker at all."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
