"""Coffre's RFC 3161 TSA, checked by other people's clients: openssl ts and pyHanko."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from asn1crypto import algos, cms, tsp
from fastapi import FastAPI
from pyhanko.sign.general import find_unique_cms_attribute
from pyhanko.sign.timestamps import HTTPTimeStamper

from archive._asn1 import TimeStampResp
from archive.pki import DevPki, cert_sha256
from archive.timestamp import Timestamper, verify_timestamp
from archive.tsa import (
    DEFAULT_TSA_POLICY_OID,
    TimestampAuthority,
    TsaConfigurationError,
    make_tsa_router,
)

DATA = b"Facture FA-2026-0001, 1 234,56 EUR TTC\n"


def _request(
    digest: bytes | None = None,
    algorithm: str = "sha256",
    *,
    nonce: int | None = 0x1234_5678_9ABC,
    cert_req: bool = True,
    policy: str | None = None,
) -> bytes:
    fields: dict[str, object] = {
        "version": "v1",
        "message_imprint": tsp.MessageImprint(
            {
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
                "hashed_message": digest if digest is not None else hashlib.sha256(DATA).digest(),
            }
        ),
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    return tsp.TimeStampReq(fields).dump()


def _status(response: bytes) -> tuple[str, set[str]]:
    status = TimeStampResp.load(response)["status"]
    return status["status"].native, set(status["fail_info"].native or ())


def _tst_info(response: bytes) -> tsp.TSTInfo:
    token = TimeStampResp.load(response)["time_stamp_token"]
    return token["content"]["encap_content_info"]["content"].parsed


# --- the protocol ---------------------------------------------------------------------------


def test_a_granted_token_carries_what_was_asked(tsa: TimestampAuthority) -> None:
    response = tsa.respond(_request())
    assert _status(response) == ("granted", set())
    info = _tst_info(response)
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha256(DATA).digest()
    assert info["nonce"].native == 0x1234_5678_9ABC
    assert info["policy"].dotted == DEFAULT_TSA_POLICY_OID
    assert info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert info["gen_time"].native.utcoffset().total_seconds() == 0
    # DER all the way: asn1crypto re-encodes TSTInfo to the same bytes.
    assert info.dump(force=True) == bytes(
        TimeStampResp.load(response)["time_stamp_token"]["content"]["encap_content_info"][
            "content"
        ].contents
    )


def test_the_signer_is_named_by_an_esscertidv2(tsa: TimestampAuthority) -> None:
    token = TimeStampResp.load(tsa.respond(_request()))["time_stamp_token"]
    signer_info = token["content"]["signer_infos"][0]
    attr = find_unique_cms_attribute(signer_info["signed_attrs"], "signing_certificate_v2")
    assert attr["certs"][0]["cert_hash"].native.hex() == cert_sha256(tsa.cert)


def test_cert_req_decides_whether_certificates_are_sent(tsa: TimestampAuthority) -> None:
    def certificates(response: bytes) -> list[object]:
        token = TimeStampResp.load(response)["time_stamp_token"]
        return list(token["content"]["certificates"] or ())

    assert len(certificates(tsa.respond(_request(cert_req=True)))) == 2
    assert certificates(tsa.respond(_request(cert_req=False))) == []


def test_serials_are_unique(tsa: TimestampAuthority) -> None:
    serials = {_tst_info(tsa.respond(_request()))["serial_number"].native for _ in range(200)}
    assert len(serials) == 200


@pytest.mark.parametrize(
    ("request_der", "fail_info"),
    [
        (b"garbage", "bad_data_format"),
        (b"", "bad_data_format"),
        (_request(hashlib.md5(DATA).digest(), "md5"), "bad_alg"),
        (_request(hashlib.sha1(DATA).digest(), "sha1"), "bad_alg"),
        (_request(b"\x00" * 20, "sha256"), "bad_request"),
        (_request(policy="1.2.3.4"), "unaccepted_policy"),
    ],
    ids=["garbage", "empty", "md5", "sha1", "short-digest", "foreign-policy"],
)
def test_bad_requests_are_rejected_with_a_reason(
    tsa: TimestampAuthority, request_der: bytes, fail_info: str
) -> None:
    assert _status(tsa.respond(request_der)) == ("rejection", {fail_info})


def test_tsa_refuses_a_certificate_without_the_timestamping_eku(dev_pki: DevPki) -> None:
    key, cert, _ = dev_pki.load_seal()
    with pytest.raises(TsaConfigurationError):
        TimestampAuthority(cert, key)


def test_tsa_refuses_a_key_that_is_not_its_certificates(dev_pki: DevPki) -> None:
    seal_key, _, _ = dev_pki.load_seal()
    _, tsa_cert = dev_pki.load_tsa()
    with pytest.raises(TsaConfigurationError):
        TimestampAuthority(tsa_cert, seal_key)


# --- openssl ts -verify ---------------------------------------------------------------------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@needs_openssl
@pytest.mark.parametrize("form", ["digest", "data"])
def test_openssl_verifies_our_tokens(
    tsa: TimestampAuthority, dev_pki: DevPki, tmp_path: Path, form: str
) -> None:
    data_file = tmp_path / "facture.txt"
    data_file.write_bytes(DATA)
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(tsa.respond(_request()))
    what = (
        ["-digest", hashlib.sha256(DATA).hexdigest()]
        if form == "digest"
        else ["-data", str(data_file)]
    )
    command = ["openssl", "ts", "-verify", "-in", str(reply), *what]
    command += ["-CAfile", str(dev_pki.root_cert), "-untrusted", str(dev_pki.tsa_cert)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout


@needs_openssl
def test_openssl_rejects_a_token_for_other_data(
    tsa: TimestampAuthority, dev_pki: DevPki, tmp_path: Path
) -> None:
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(tsa.respond(_request()))
    other = hashlib.sha256(DATA + b"x").hexdigest()
    command = ["openssl", "ts", "-verify", "-in", str(reply), "-digest", other]
    command += ["-CAfile", str(dev_pki.root_cert), "-untrusted", str(dev_pki.tsa_cert)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Verification: FAILED" in result.stdout


@needs_openssl
def test_openssl_made_requests_are_granted(
    tsa: TimestampAuthority, dev_pki: DevPki, tmp_path: Path
) -> None:
    data_file = tmp_path / "facture.txt"
    data_file.write_bytes(DATA)
    query = tmp_path / "query.tsq"
    subprocess.run(
        [
            "openssl",
            "ts",
            "-query",
            "-data",
            str(data_file),
            "-sha512",
            "-cert",
            "-out",
            str(query),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(tsa.respond(query.read_bytes()))
    command = ["openssl", "ts", "-verify", "-in", str(reply), "-queryfile", str(query)]
    command += ["-CAfile", str(dev_pki.root_cert)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


# --- over HTTP, with pyHanko's own client -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tsa_url(tsa: TimestampAuthority) -> Iterator[str]:
    app = FastAPI()
    app.include_router(make_tsa_router(tsa))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/tsa"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_pyhanko_http_client_accepts_our_tokens(tsa_url: str, trust_roots: list) -> None:
    digest = hashlib.sha256(DATA).digest()
    token: cms.ContentInfo = asyncio.run(HTTPTimeStamper(tsa_url).async_timestamp(digest, "sha256"))
    check = verify_timestamp(token.dump(), digest=digest, trust_roots=trust_roots)
    assert check.ok, check.problems


def test_timestamper_over_http(tsa_url: str, trust_roots: list, tsa: TimestampAuthority) -> None:
    token = asyncio.run(Timestamper.http(tsa_url).stamp(hashlib.sha256(DATA).digest()))
    assert token.tsa_cert_sha256 == tsa.cert_sha256
    assert verify_timestamp(token.response_der, data=DATA, trust_roots=trust_roots).ok


def test_http_reply_has_the_rfc_content_type(tsa_url: str) -> None:
    reply = httpx.post(
        tsa_url, content=_request(), headers={"Content-Type": "application/timestamp-query"}
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/timestamp-reply"
    assert _status(reply.content)[0] == "granted"


def test_http_garbage_gets_an_rfc_rejection_not_an_error_page(tsa_url: str) -> None:
    reply = httpx.post(
        tsa_url, content=b"\x30\x03junk", headers={"Content-Type": "application/timestamp-query"}
    )
    assert reply.status_code == 200
    assert _status(reply.content) == ("rejection", {"bad_data_format"})


def test_http_wrong_content_type_is_415(tsa_url: str) -> None:
    reply = httpx.post(tsa_url, content=_request(), headers={"Content-Type": "application/json"})
    assert reply.status_code == 415
