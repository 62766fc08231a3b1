"""Getting tokens and checking them later, as an auditor would."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import socket
import time

import pytest
from asn1crypto import cms, core

from archive._asn1 import PreEncodedContentInfo, der_tlv, raw_der
from archive.pki import DevPki
from archive.timestamp import (
    Timestamper,
    TimestampError,
    TimestampToken,
    TimestampUnavailable,
    verify_timestamp,
)
from archive.tsa import TimestampAuthority

DATA = b"journal head 0042: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture(scope="module")
def token(timestamper: Timestamper) -> TimestampToken:
    return asyncio.run(timestamper.stamp(hashlib.sha256(DATA).digest()))


def test_token_facts(token: TimestampToken, tsa: TimestampAuthority) -> None:
    assert token.message_imprint == hashlib.sha256(DATA).digest()
    assert token.hash_algorithm == "sha256"
    assert token.tsa_cert_sha256 == tsa.cert_sha256
    assert token.policy == tsa.policy_oid
    assert token.serial > 2**127
    assert token.gen_time.tzinfo == dt.UTC
    assert abs(dt.datetime.now(dt.UTC) - token.gen_time) < dt.timedelta(minutes=1)
    # The stored .tsr parses back to the same facts.
    assert TimestampToken.from_response_der(token.response_der) == token


def test_a_good_token_verifies_by_digest_and_by_data(token: TimestampToken, trust_roots) -> None:
    for kwargs in ({"digest": hashlib.sha256(DATA).digest()}, {"data": DATA}):
        for der in (token.response_der, token.token_der):
            check = verify_timestamp(der, trust_roots=trust_roots, **kwargs)
            assert check.ok, check.problems
            assert check.serial == token.serial
            assert check.gen_time == token.gen_time
            assert check.tsa_cert_sha256 == token.tsa_cert_sha256


def test_changed_data_is_named(token: TimestampToken, trust_roots) -> None:
    check = verify_timestamp(token.response_der, data=DATA + b" ", trust_roots=trust_roots)
    assert not check.ok
    assert any("imprint mismatch" in p for p in check.problems)


def test_another_root_does_not_trust_our_tsa(token: TimestampToken, foreign_pki: DevPki) -> None:
    check = verify_timestamp(token.token_der, data=DATA, trust_roots=[foreign_pki.load_root()])
    assert not check.ok
    assert any("TSA certificate" in p and "not trusted" in p for p in check.problems)


def test_a_tampered_token_signature_is_named(token: TimestampToken, trust_roots) -> None:
    der = bytearray(token.token_der)
    # The signature value is the last OCTET STRING: flip its last byte.
    der[-1] ^= 0x01
    check = verify_timestamp(bytes(der), data=DATA, trust_roots=trust_roots)
    assert not check.ok
    assert any("TSA signature" in p for p in check.problems)


def test_garbage_and_rejections_are_problems_not_crashes(
    tsa: TimestampAuthority, trust_roots
) -> None:
    for der in (b"", b"garbage", tsa.respond(b"garbage")):
        check = verify_timestamp(der, data=DATA, trust_roots=trust_roots)
        assert not check.ok and check.problems
    rejected = verify_timestamp(tsa.respond(b"x"), data=DATA, trust_roots=trust_roots)
    assert "rejection" in rejected.problems[0]


def test_verify_needs_exactly_one_of_digest_or_data(token: TimestampToken, trust_roots) -> None:
    with pytest.raises(ValueError):
        verify_timestamp(token.token_der, trust_roots=trust_roots)


def test_a_digest_of_the_wrong_size_is_refused(timestamper: Timestamper) -> None:
    with pytest.raises(TimestampError):
        asyncio.run(timestamper.stamp(b"\x00" * 20))


def test_other_hash_algorithms(timestamper: Timestamper, trust_roots) -> None:
    digest = hashlib.sha512(DATA).digest()
    token = asyncio.run(timestamper.stamp(digest, "sha512"))
    assert token.hash_algorithm == "sha512"
    assert verify_timestamp(
        token.response_der, digest=digest, algorithm="sha512", trust_roots=trust_roots
    ).ok
    assert verify_timestamp(token.response_der, data=DATA, trust_roots=trust_roots).ok


def test_an_unreachable_tsa_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stamper = Timestamper.http(f"http://127.0.0.1:{port}/tsa", timeout=2)
    with pytest.raises(TimestampUnavailable) as caught:
        asyncio.run(stamper.stamp(hashlib.sha256(DATA).digest()))
    assert caught.value.code == "tsa_unavailable"


def test_pre_encoded_content_info_survives_the_0x80_length_trap() -> None:
    """asn1crypto re-encodes (very slowly) any element whose length ends in byte 0x80."""
    inner = core.OctetString(b"y" * (0x1080 - 15 - 4)).dump()
    der = der_tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.7.1").dump(), der_tlv(0xA0, inner))
    assert der[:4] == b"\x30\x82\x10\x80"  # a definite length whose last byte is 0x80
    started = time.perf_counter()
    assert PreEncodedContentInfo.load(der).dump() == der
    assert raw_der(cms.ContentInfo.load(der)) == der
    assert time.perf_counter() - started < 0.5
