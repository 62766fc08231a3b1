"""The organisation's seal, checked by pyHanko, its command line, openssl and pikepdf."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pytest
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from archive.errors import CorruptPdf, EmptyFile, EncryptedPdf, NotAPdf
from archive.pki import DevPki
from archive.seal import (
    DetachedSeal,
    PdfLocked,
    SealConfigurationError,
    SealedPdf,
    Sealer,
    SealIdentity,
    SealLevel,
)
from archive.seal_check import validate_detached_seal, validate_pdf_seal
from archive.timestamp import Timestamper, verify_timestamp
from archive.tsa import TimestampAuthority
from tests.pdfs import (
    info_xmp_mismatches,
    make_pdfa,
    make_plain_pdf,
    pdfa_declared,
    pdfa_violations,
)

LEVELS: list[SealLevel] = ["B-T", "B-LT", "B-LTA"]
PYHANKO = Path(__file__).parents[2] / ".venv" / "bin" / "pyhanko"


def seal(sealer: Sealer, pdf: bytes) -> SealedPdf:
    return asyncio.run(sealer.seal_pdf(pdf))


@pytest.fixture(scope="module")
def original() -> bytes:
    return make_pdfa("Facture FA-2026-0007 — ACME SAS", seed=7)


@pytest.fixture(scope="module")
def sealed(make_sealer: Callable[[SealLevel], Sealer], original: bytes) -> dict[str, SealedPdf]:
    return {level: seal(make_sealer(level), original) for level in LEVELS}


@pytest.fixture(scope="module")
def detached(make_sealer: Callable[[SealLevel], Sealer], original: bytes) -> DetachedSeal:
    return asyncio.run(make_sealer("B-LT").seal_detached(original))


def _real_violations(pdf: bytes) -> list[str] | None:
    """pikepdf's validator findings, minus "unsupported" (it does not check signed forms)."""
    findings = pdfa_violations(pdf)
    return None if findings is None else [f for f in findings if "[violation]" in f]


# --- PAdES --------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_seal_is_an_incremental_update_that_keeps_pdfa(
    sealed: dict[str, SealedPdf], original: bytes, level: str
) -> None:
    result = sealed[level]
    assert result.data.startswith(original)
    assert result.level == level
    assert pdfa_declared(result.data) == ("2", "B")
    # pikepdf's validator does not compare Info with XMP; the NOTES trap is checked here.
    assert info_xmp_mismatches(result.data) == []
    violations = _real_violations(result.data)
    if violations is None:
        pytest.skip("pikepdf[pdfa] not installed: PDF/A validator unavailable")
    assert violations == []


def test_the_original_is_valid_pdfa_to_begin_with(original: bytes) -> None:
    violations = _real_violations(original)
    if violations is None:
        pytest.skip("pikepdf[pdfa] not installed")
    assert violations == []
    assert pdfa_violations(original) == []


def test_an_ecdsa_seal_keeps_a_pdfa_file_at_pdf_1_7(ec_pki: DevPki, original: bytes) -> None:
    """pyHanko raises the version to 2.0 for ECDSA; PDF/A-2 forbids that."""
    key, cert = ec_pki.load_tsa()
    sealer = Sealer(
        SealIdentity.from_pkcs12(ec_pki.seal_p12, ec_pki.seal_password()),
        Timestamper.local(TimestampAuthority(cert, key, [ec_pki.load_root()])),
        level="B-LT",
        trust_roots=[ec_pki.load_root()],
        crls=[ec_pki.crl.read_bytes()],
    )
    result = seal(sealer, original)
    assert result.signature_algorithm == "ecdsa-with-SHA256"
    with pikepdf.open(io.BytesIO(result.data)) as pdf:
        assert str(pdf.Root.get("/Version", "/1.7")) < "/2"
    assert _real_violations(result.data) in ([], None)
    assert info_xmp_mismatches(result.data) == []
    assert validate_pdf_seal(result.data, trust_roots=[ec_pki.load_root()]).ok


def test_a_plain_pdf_is_sealed_too(make_sealer: Callable[[SealLevel], Sealer], trust_roots) -> None:
    plain = make_plain_pdf(seed=3)
    result = seal(make_sealer("B-LT"), plain)
    assert result.data.startswith(plain)
    assert pdfa_declared(result.data) is None
    assert validate_pdf_seal(result.data, trust_roots=trust_roots).ok


@pytest.mark.parametrize("level", LEVELS)
def test_our_validation_accepts_each_level(
    sealed: dict[str, SealedPdf], trust_roots, level: str, seal_identity: SealIdentity
) -> None:
    check = validate_pdf_seal(sealed[level].data, trust_roots=trust_roots)
    assert check.ok, check.problems
    assert check.intact and check.trusted and check.timestamp_ok
    assert check.level == level
    assert check.signer_cert_sha256 == seal_identity.cert_sha256
    assert check.signing_time == sealed[level].timestamp.gen_time
    assert check.coverage == ("ENTIRE_FILE" if level == "B-T" else "EXTENDED_WITH_LTA_UPDATES")


def test_seal_facts_are_those_of_the_identity_and_the_tsa(
    sealed: dict[str, SealedPdf], seal_identity: SealIdentity, tsa: TimestampAuthority, trust_roots
) -> None:
    result = sealed["B-LT"]
    assert result.cert_sha256 == seal_identity.cert_sha256
    assert result.signature_algorithm == "sha256WithRSAEncryption"
    assert result.timestamp.tsa_cert_sha256 == tsa.cert_sha256
    # The signature timestamp is a standalone RFC 3161 token an auditor can check too.
    assert verify_timestamp(
        result.timestamp.response_der,
        digest=result.timestamp.message_imprint,
        trust_roots=trust_roots,
    ).ok


def _flip_inside_largest_stream(pdf: bytes) -> bytes:
    start = max(
        (i for i in range(len(pdf)) if pdf.startswith(b"stream\n", i)),
        key=lambda i: pdf.find(b"endstream", i) - i,
    )
    data = bytearray(pdf)
    data[start + 200] ^= 0x01
    return bytes(data)


@pytest.mark.parametrize("level", LEVELS)
def test_one_changed_byte_in_the_sealed_pdf_is_named(
    sealed: dict[str, SealedPdf], trust_roots, level: str
) -> None:
    check = validate_pdf_seal(
        _flip_inside_largest_stream(sealed[level].data), trust_roots=trust_roots
    )
    assert not check.ok and not check.intact
    assert any("does not cover these bytes" in p for p in check.problems), check.problems


def test_a_page_changed_after_sealing_is_named(sealed: dict[str, SealedPdf], trust_roots) -> None:
    """A well-formed incremental update that rotates the page: signed bytes intact, but
    the change is not one a seal allows (only DSS and timestamps may follow)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed["B-T"].data))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Rotate"] = generic.NumberObject(90)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    check = validate_pdf_seal(out.getvalue(), trust_roots=trust_roots)
    assert check.intact and not check.ok
    assert any("changed after sealing" in p for p in check.problems), check.problems


def test_a_seal_from_another_root_is_untrusted(
    sealed: dict[str, SealedPdf], foreign_pki: DevPki
) -> None:
    check = validate_pdf_seal(sealed["B-LT"].data, trust_roots=[foreign_pki.load_root()])
    assert not check.ok and check.intact and not check.trusted
    assert any("seal certificate" in p and "not trusted" in p for p in check.problems)


def test_a_pdf_without_seal_is_not_ok(original: bytes, trust_roots) -> None:
    check = validate_pdf_seal(original, trust_roots=trust_roots)
    assert not check.ok
    assert check.problems == ("the PDF carries no seal (no signature field is signed)",)


def test_validation_of_garbage_reports_instead_of_crashing(trust_roots) -> None:
    for junk in (b"", b"hello", b"%PDF-1.7\n garbage"):
        check = validate_pdf_seal(junk, trust_roots=trust_roots)
        assert not check.ok and check.problems


def test_sealing_twice_adds_a_second_seal(
    make_sealer: Callable[[SealLevel], Sealer], sealed: dict[str, SealedPdf], trust_roots
) -> None:
    again = seal(make_sealer("B-T"), sealed["B-T"].data)
    assert again.field_name != sealed["B-T"].field_name
    assert validate_pdf_seal(again.data, trust_roots=trust_roots).ok


# --- bad inputs ---------------------------------------------------------------------------


def _encrypted(pdf: bytes) -> bytes:
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        out = io.BytesIO()
        doc.save(out, encryption=pikepdf.Encryption(owner="owner", user=""))
        return out.getvalue()


@pytest.mark.parametrize(
    ("data", "error", "code"),
    [
        (b"", EmptyFile, "empty_file"),
        (b"GIF89a not a pdf", NotAPdf, "not_a_pdf"),
        (b"%PDF-1.7\nthis is not a real PDF\n%%EOF\n", CorruptPdf, "corrupt_pdf"),
        (None, EncryptedPdf, "encrypted_pdf"),
    ],
    ids=["empty", "not-a-pdf", "corrupt", "encrypted"],
)
def test_bad_pdfs_raise_clear_errors(
    make_sealer: Callable[[SealLevel], Sealer],
    original: bytes,
    data: bytes | None,
    error: type[Exception],
    code: str,
) -> None:
    with pytest.raises(error) as caught:
        seal(make_sealer("B-T"), data if data is not None else _encrypted(original))
    assert caught.value.code == code  # type: ignore[attr-defined]


def test_long_term_levels_need_trust_roots(seal_identity, timestamper) -> None:
    with pytest.raises(SealConfigurationError):
        Sealer(seal_identity, timestamper, level="B-LT")


def test_b_lt_without_revocation_data_fails_clearly(
    seal_identity, timestamper, trust_roots, original: bytes
) -> None:
    """No CRL, no network: the seal chain cannot be validated, so no B-LT seal is made."""
    sealer = Sealer(seal_identity, timestamper, level="B-LT", trust_roots=trust_roots, crls=())
    with pytest.raises(SealConfigurationError) as caught:
        seal(sealer, original)
    assert "does not validate" in str(caught.value)


# --- detached CMS -------------------------------------------------------------------------


def test_detached_seal_validates(
    detached: DetachedSeal, original: bytes, trust_roots, seal_identity: SealIdentity
) -> None:
    check = validate_detached_seal(original, detached.cms_der, trust_roots=trust_roots)
    assert check.ok, check.problems
    assert check.signer_cert_sha256 == seal_identity.cert_sha256 == detached.cert_sha256
    assert check.level == "CAdES-B-LT" and detached.revocation_info_embedded
    assert check.signing_time == detached.timestamp.gen_time


def test_changed_data_breaks_the_detached_seal(
    detached: DetachedSeal, original: bytes, trust_roots
) -> None:
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x01
    check = validate_detached_seal(bytes(changed), detached.cms_der, trust_roots=trust_roots)
    assert not check.ok and not check.intact
    assert any("data does not match the detached seal" in p for p in check.problems)


def test_detached_seal_from_another_root_is_untrusted(
    detached: DetachedSeal, original: bytes, foreign_pki: DevPki
) -> None:
    check = validate_detached_seal(
        original, detached.cms_der, trust_roots=[foreign_pki.load_root()]
    )
    assert not check.ok and check.intact and not check.trusted


def test_garbage_signature_file_is_reported(original: bytes, trust_roots) -> None:
    check = validate_detached_seal(original, b"not a cms", trust_roots=trust_roots)
    assert not check.ok and check.problems


# --- other people's validators -------------------------------------------------------------

needs_cli = pytest.mark.skipif(not PYHANKO.exists(), reason="pyhanko-cli not installed")


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYHANKO), "sign", "validate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_cli
@pytest.mark.parametrize("level", LEVELS)
def test_pyhanko_cli_says_intact_trusted(
    sealed: dict[str, SealedPdf], dev_pki: DevPki, tmp_path: Path, level: str
) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed[level].data)
    result = _cli("--trust", dev_pki.root_cert, "--trust-replace", "--no-revocation-check", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>," in result.stdout
    tail = "UNTOUCHED" if level == "B-T" else "EXTENDED_WITH_LTA_UPDATES,ACCEPTABLE_MODIFICATIONS"
    assert result.stdout.strip().endswith(tail)


@needs_cli
def test_pyhanko_cli_with_revocation_checks_ignores_the_embedded_crl(
    sealed: dict[str, SealedPdf], dev_pki: DevPki, tmp_path: Path
) -> None:
    """Documented behaviour of pyhanko-cli 0.6: without --no-revocation-check it looks for
    revocation data online (our dev CRL URL is not served here) and ignores the DSS, so
    even a B-LTA seal shows UNTRUSTED. The library's own validation (above) is offline."""
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed["B-LTA"].data)
    result = _cli("--trust", dev_pki.root_cert, "--trust-replace", path)
    assert result.returncode == 1
    assert "INTACT:UNTRUSTED,TIMESTAMP_TOKEN<INTACT:UNTRUSTED>" in result.stdout


@needs_cli
def test_pyhanko_cli_validates_the_detached_seal(
    detached: DetachedSeal, original: bytes, dev_pki: DevPki, tmp_path: Path
) -> None:
    data, signature = tmp_path / "facture.pdf", tmp_path / "facture.pdf.p7s"
    data.write_bytes(original)
    signature.write_bytes(detached.cms_der)
    args = ("--trust", dev_pki.root_cert, "--trust-replace", "--no-revocation-check")
    result = _cli("--detached", signature, *args, data)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"
    data.write_bytes(original + b"\n")
    changed = _cli("--detached", signature, *args, data)
    assert changed.returncode == 1
    assert "INVALID" in changed.stdout + changed.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_verifies_the_detached_seal(
    detached: DetachedSeal, original: bytes, dev_pki: DevPki, tmp_path: Path
) -> None:
    data, signature = tmp_path / "facture.pdf", tmp_path / "facture.pdf.p7s"
    data.write_bytes(original)
    signature.write_bytes(detached.cms_der)
    result = subprocess.run(
        [
            *("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature)),
            *("-content", str(data), "-CAfile", str(dev_pki.root_cert), "-purpose", "any"),
            *("-out", os.devnull),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr


# --- PKCS#11 (SoftHSM) ---------------------------------------------------------------------

SOFTHSM_LIB = Path("/usr/lib/softhsm/libsofthsm2.so")


@pytest.mark.skipif(
    not SOFTHSM_LIB.exists() or shutil.which("softhsm2-util") is None,
    reason="softhsm2 not installed (apt-get install softhsm2)",
)
def test_a_seal_key_in_a_pkcs11_token(
    dev_pki: DevPki,
    timestamper: Timestamper,
    trust_roots,
    crls,
    tmp_path: Path,
    original: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pkcs11 = pytest.importorskip("pkcs11")
    config = tmp_path / "softhsm2.conf"
    (tmp_path / "tokens").mkdir()
    config.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(config)}
    monkeypatch.setenv("SOFTHSM2_CONF", str(config))  # read by the library when it loads
    key, cert, chain = dev_pki.load_seal()
    key_pem = tmp_path / "seal.key.pem"
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    run = {"check": True, "capture_output": True, "env": env, "timeout": 60}
    subprocess.run(
        [
            *("softhsm2-util", "--init-token", "--free", "--label", "coffre"),
            *("--pin", "1234", "--so-pin", "4321"),
        ],
        **run,
    )
    subprocess.run(
        [
            *("softhsm2-util", "--import", str(key_pem), "--token", "coffre"),
            *("--label", "seal", "--id", "01", "--pin", "1234"),
        ],
        **run,
    )
    key_pem.unlink()
    token = pkcs11.lib(str(SOFTHSM_LIB)).get_token(token_label="coffre")
    with token.open(rw=True, user_pin="1234") as session:
        for item, label, ident in ((cert, "seal", b"\x01"), (chain[0], "root", b"\x02")):
            session.create_object(
                {
                    pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE,
                    pkcs11.Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                    pkcs11.Attribute.VALUE: item.public_bytes(serialization.Encoding.DER),
                    pkcs11.Attribute.SUBJECT: item.subject.public_bytes(),
                    pkcs11.Attribute.LABEL: label,
                    pkcs11.Attribute.ID: ident,
                    pkcs11.Attribute.TOKEN: True,
                }
            )
    identity = SealIdentity.from_pkcs11(SOFTHSM_LIB, "coffre", "seal", "1234")
    assert identity.cert == cert and identity.chain == tuple(chain)
    sealer = Sealer(identity, timestamper, level="B-LT", trust_roots=trust_roots, crls=crls)
    result = seal(sealer, original)
    assert validate_pdf_seal(result.data, trust_roots=trust_roots).ok
    detached = asyncio.run(sealer.seal_detached(original))
    assert validate_detached_seal(original, detached.cms_der, trust_roots=trust_roots).ok
    with pytest.raises(SealConfigurationError):
        SealIdentity.from_pkcs11(SOFTHSM_LIB, "coffre", "seal", "0000")


def test_a_pdf_certified_no_changes_is_refused(
    make_sealer: Callable[[SealLevel], Sealer], dev_pki: DevPki, original: bytes
) -> None:
    from pyhanko.sign import signers
    from pyhanko.sign.fields import MDPPerm

    signer = signers.SimpleSigner.load_pkcs12(
        str(dev_pki.seal_p12), passphrase=dev_pki.seal_password()
    )
    meta = signers.PdfSignatureMetadata(
        field_name="Author", certify=True, docmdp_permissions=MDPPerm.NO_CHANGES
    )
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(original)), meta, signer=signer)
    with pytest.raises(PdfLocked) as caught:
        seal(make_sealer("B-T"), out.getvalue())
    assert caught.value.code == "pdf_locked"
