"""The command line as a person uses it, in a fresh process each time, on the embedded
default; the evidence it writes out checks with the standard tools (openssl, pyhanko)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pdfs import make_pdfa

BIN = Path(sys.executable).parent


@pytest.fixture
def coffre(tmp_path, pki_template):
    data_dir = tmp_path / "data"
    shutil.copytree(pki_template, data_dir / "dev-pki")
    env = {**os.environ, "COFFRE_DATA_DIR": str(data_dir)}
    env.pop("COFFRE_DATABASE_URL", None)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "coffre"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"coffre {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    run.data_dir = data_dir  # type: ignore[attr-defined]
    return run


def test_deposit_show_get_verify(coffre, tmp_path):
    pdf = tmp_path / "facture.pdf"
    pdf.write_bytes(make_pdfa("FACTURE 2026-0042", seed=42))
    out = json.loads(coffre("deposit", str(pdf), "--kind", "supplier_invoice", "--json").stdout)
    assert out[0]["outcome"] == "archived"
    doc_id = out[0]["document_id"]
    again = json.loads(coffre("deposit", str(pdf), "--json").stdout)
    assert again[0] == {**out[0], "outcome": "already_archived"}

    shown = json.loads(coffre("show", doc_id, "--json").stdout)
    assert shown["document"]["state"] == "archived"
    assert {a["name"] for a in shown["artifacts"]} >= {"original", "sealed", "original.tsr"}

    for name in ("sealed", "original", "original.p7s", "original.tsr"):
        coffre("get", doc_id, "--artifact", name, "-o", str(tmp_path / name))
    assert (tmp_path / "original").read_bytes() == pdf.read_bytes()

    verified = coffre("verify", doc_id, "--json")
    assert json.loads(verified.stdout)["ok"] is True
    assert json.loads(coffre("verify-file", str(tmp_path / "sealed"), "--json").stdout)["ok"]

    # Standard tools, no Coffre code: what an auditor would run.
    pki = coffre.data_dir / "dev-pki"
    ts = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-in",
            str(tmp_path / "original.tsr"),
            "-data",
            str(pdf),
            "-CAfile",
            str(pki / "dev-root.pem"),
            "-untrusted",
            str(pki / "dev-tsa.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ts.returncode == 0 and "Verification: OK" in ts.stdout, ts.stdout + ts.stderr
    pdf_check = subprocess.run(
        [
            str(BIN / "pyhanko"),
            "sign",
            "validate",
            "--trust",
            str(pki / "dev-root.pem"),
            "--trust-replace",
            "--no-revocation-check",
            str(tmp_path / "sealed"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert pdf_check.returncode == 0 and "INTACT:TRUSTED" in pdf_check.stdout, (
        pdf_check.stdout + pdf_check.stderr
    )


def test_tampered_journal_makes_verify_exit_nonzero_and_name_it(coffre, tmp_path):
    import sqlite3

    pdf = tmp_path / "f.pdf"
    pdf.write_bytes(make_pdfa(seed=43))
    doc_id = json.loads(coffre("deposit", str(pdf), "--json").stdout)[0]["document_id"]
    db = sqlite3.connect(coffre.data_dir / "coffre.db")
    db.execute("DROP TRIGGER journal_event_no_update")
    db.execute("UPDATE journal_event SET actor = 'mallory' WHERE seq = 1")
    db.commit()
    db.close()
    result = coffre("verify", doc_id, "--json", check=False)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert not report["ok"]
    assert any("journal event 1" in f for f in report["reports"][0]["failures"])
    human = coffre("verify", doc_id, check=False)
    assert human.returncode == 1 and "FAILED" in human.stdout and "journal" in human.stdout


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"hello, not a pdf", "not_a_pdf"),
        (b"%PDF-1.7\n1 0 obj", "corrupt_pdf"),
    ],
)
def test_bad_input_exits_nonzero_with_a_message_and_is_kept(coffre, tmp_path, content, code):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(content)
    result = coffre("deposit", str(bad), check=False)
    assert result.returncode == 3
    assert "quarantined" in result.stderr
    rows = json.loads(coffre("quarantine", "list", "--json").stdout)
    assert [r["reason_code"] for r in rows] == [code]


def test_unknown_document_is_a_clear_error(coffre):
    result = coffre("show", "00000000-0000-0000-0000-000000000000", check=False)
    assert result.returncode == 4 and "no document" in result.stderr


def test_production_mode_refuses_development_defaults(coffre, tmp_path):
    env = {**os.environ, "COFFRE_MODE": "production", "COFFRE_DATA_DIR": str(tmp_path / "p")}
    result = subprocess.run(
        [str(BIN / "coffre"), "init"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to start in production mode" in result.stderr
    assert "seal certificate" in result.stderr and "S3_SECRET_KEY" in result.stderr


def test_reindex_rebuilds_the_search_index(coffre, tmp_path):
    pdf = tmp_path / "facture.pdf"
    pdf.write_bytes(make_pdfa("REINDEX", seed=77))
    coffre("deposit", str(pdf))
    assert json.loads(coffre("reindex", "--json").stdout) == {"indexed": 1}
