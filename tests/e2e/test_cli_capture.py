"""``coffre ingest``, ``coffre worker`` and ``coffre supplier`` in fresh processes, on the
embedded default (SQLite, local store, huey on SQLite)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.scans import scan_png

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ocr")]


@pytest.fixture
def env(tmp_path, pki_template):
    data_dir = tmp_path / "data"
    shutil.copytree(pki_template, data_dir / "dev-pki")
    values = {**os.environ, "COFFRE_DATA_DIR": str(data_dir)}
    values.pop("COFFRE_DATABASE_URL", None)
    values["COFFRE_CAPTURE__LEASE_SECONDS"] = "3"
    return values


def _run(env, cwd, *args, check=True):
    result = subprocess.run(
        [str(BIN / "coffre"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"coffre {args} exited {result.returncode}:\n{result.stderr}")
    return result


def test_ingest_waits_and_reports_each_outcome(env, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.png").write_bytes(scan_png(["FACTURE A-1"], seed=31, size=(700, 500)))
    (inbox / "b.gif").write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    result = _run(env, tmp_path, "ingest", str(inbox), "--json", check=False)
    assert result.returncode == 3, result.stderr  # one file was refused
    outcomes = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert outcomes["a.png"]["outcome"] == "archived"
    assert outcomes["b.gif"]["outcome"] == "quarantined"
    assert "unsupported_media_type" in outcomes["b.gif"]["reason"]
    shown = json.loads(
        _run(env, tmp_path, "show", outcomes["a.png"]["document_id"], "--json").stdout
    )
    assert shown["document"]["state"] == "archived"
    assert _run(env, tmp_path, "verify", outcomes["a.png"]["document_id"]).returncode == 0


def test_supplier_directory_from_the_command_line(env, tmp_path):
    _run(
        env,
        tmp_path,
        "supplier",
        "add",
        "Papeterie Dupont SARL",
        "--siren",
        "732829320",
        "--iban",
        "FR7630006000011234567890189",
        "--alias",
        "Dupont Papeterie",
    )
    listed = json.loads(_run(env, tmp_path, "supplier", "list", "--json").stdout)
    assert listed[0]["siren"] == "732829320"
    assert listed[0]["ibans"] == ["FR7630006000011234567890189"]
    bad = _run(env, tmp_path, "supplier", "add", "X", "--siren", "123456789", check=False)
    assert bad.returncode == 3 and "SIREN" in bad.stderr


def _work_item(data_dir: Path):
    with sqlite3.connect(data_dir / "coffre.db") as db:
        return db.execute("SELECT document_id, attempts, lease_until FROM work_item").fetchall()


def _ocr_children(pid: int) -> list[int]:
    """Tesseract or OCRmyPDF processes started by process ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # processes come and go while we look
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            parent = int(text[text.rindex(")") + 2 :].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes() if name.startswith("python") else b""
        except (OSError, ValueError):
            continue
        if parent == pid and (name == "tesseract" or b"ocrmypdf" in cmdline):
            found.append(int(stat.parent.name))
    return found


def test_a_worker_killed_mid_job_leaves_nothing_half_done(env, tmp_path):
    data_dir = Path(env["COFFRE_DATA_DIR"])
    _run(env, tmp_path, "init")
    png = tmp_path / "scan.png"
    # A full page of text: tesseract reads it for about 2 s, long enough to be seen and
    # killed (a sparse page is read in half a second and could finish between two looks).
    lines = ["FACTURE KILL-1 Total HT 1234,56 EUR TVA 20 % reference 0042"] * 50
    png.write_bytes(scan_png(lines, seed=41, size=(2480, 3508)))
    worker = subprocess.Popen(
        [str(BIN / "coffre"), "worker", "--concurrency", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        taken = json.loads(_run(env, tmp_path, "ingest", str(png), "--no-wait", "--json").stdout)
        document_id = taken[0]["document_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(r[1] for r in _work_item(data_dir)):
            time.sleep(0.2)
        assert _work_item(data_dir)[0][1] == 1, "the worker never claimed the document"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _ocr_children(worker.pid):
            time.sleep(0.02)
        assert _ocr_children(worker.pid), "the worker never started OCR"  # kill it mid-OCR
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    state = json.loads(_run(env, tmp_path, "show", document_id, "--json").stdout)
    assert state["document"]["state"] == "received"
    time.sleep(3.5)  # the dead worker's lease lapses
    second = subprocess.Popen(
        [str(BIN / "coffre"), "worker", "--concurrency", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            shown = json.loads(_run(env, tmp_path, "show", document_id, "--json").stdout)
            if shown["document"]["state"] != "received":
                break
            time.sleep(1)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=60)
    assert shown["document"]["state"] == "archived"
    names = [a["name"] for a in shown["artifacts"]]
    assert names.count("sealed") == 1 and names.count("ocr.txt") == 1
    assert _work_item(data_dir)[0][1] == 2
    assert _run(env, tmp_path, "verify", document_id).returncode == 0
