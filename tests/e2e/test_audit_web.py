"""The auditors' web pages, end to end in headless Chromium (Debian's /usr/bin/chromium driven
by Playwright): sign in with a granted token, search, open a document with its PDF, download
its evidence bundle and check it offline; nothing outside the grant is reachable."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from archive.bundle_verify import verify_bundle
from tests.pdfs import make_pdfa

BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path, pki_template, corpora):
    data_dir = tmp_path / "data"
    shutil.copytree(pki_template, data_dir / "dev-pki")
    env = {
        **os.environ,
        "COFFRE_DATA_DIR": str(data_dir),
        "COFFRE_CORPORA_DIR": str(corpora),
        "COFFRE_QUEUE__EMBEDDED_WORKER": "false",
        "COFFRE_ARCHIVE__DEFAULT_COMPANY_SIREN": "552120222",
    }
    env.pop("COFFRE_DATABASE_URL", None)

    def coffre(*args: str) -> str:
        done = subprocess.run(
            [str(BIN / "coffre"), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    examples = corpora / "en16931" / "cii" / "examples"
    docs = json.loads(
        coffre(
            "deposit",
            str(examples / "CII_example1.xml"),
            str(examples / "CII_example2.xml"),
            "--json",
        )
    )
    pdf = tmp_path / "releve.pdf"
    pdf.write_bytes(make_pdfa("RELEVE 2026", seed=5))
    docs += json.loads(coffre("deposit", str(pdf), "--json"))
    shown = [json.loads(coffre("show", d["document_id"], "--json")) for d in docs]
    port = _free_port()
    process = subprocess.Popen(
        [str(BIN / "coffre"), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield base, coffre, shown
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _invoice(shown: dict) -> dict:
    versions = shown.get("invoice") or []
    return versions[-1]["data"] if versions else {}


def _year(shown: dict) -> int:
    issue = _invoice(shown).get("issue_date")
    return int(str(issue)[:4]) if issue else int(str(shown["document"]["received_at"])[:4])


def test_auditor_searches_views_downloads_and_verifies(server, browser, tmp_path):
    base, coffre, shown = server
    target = shown[0]
    year = _year(target)
    out_of_years = [s for s in shown if _year(s) != year]
    assert out_of_years  # the PDF is of this year, the corpus invoices are older
    grant = json.loads(
        coffre(
            "auditor",
            "grant",
            "--name",
            "DGFiP Vérificateur",
            "--company",
            "552120222",
            "--year",
            str(year),
            "--expires",
            "2099-12-31",
            "--json",
        )
    )
    page = browser.new_page(accept_downloads=True)
    page.goto(f"{base}/audit/search")
    assert "/audit/login" in page.url  # no token, no page
    page.fill("#token", "cof_not-a-token")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").is_visible()
    page.fill("#token", grant["token"])
    page.click("button[type=submit]")
    page.wait_for_url("**/audit/search")
    assert "DGFiP" in page.get_by_test_id("who").inner_text()

    number = _invoice(target)["invoice_number"]
    listed = page.get_by_test_id("results").inner_text()
    for other in out_of_years:  # other fiscal years are not listed at all
        assert other["document"]["id"] not in page.content()
    page.fill("input[name=number]", number)
    page.click("form.search button[type=submit]")
    assert page.get_by_test_id("count").inner_text().startswith("1 ")
    assert number in page.get_by_test_id("results").inner_text()
    assert listed  # the landing page listed the documents in scope

    page.get_by_test_id("results").locator("a").first.click()
    page.wait_for_url("**/audit/documents/*")
    assert page.get_by_test_id("document-id").inner_text() == target["document"]["id"]
    assert "OK" in page.get_by_test_id("verification").inner_text()
    with page.expect_download() as download_info:
        page.get_by_test_id("bundle").click()
    bundle = tmp_path / "bundle.zip"
    download_info.value.save_as(bundle)
    report = verify_bundle(bundle)
    assert report.ok, [c for c in report.checks if not c.ok]

    # A document outside the grant cannot be opened by URL either.
    response = page.goto(f"{base}/audit/documents/{out_of_years[0]['document']['id']}")
    assert response is not None and response.status == 403

    # Every page seen and the download are in the journal under the auditor's name.
    journal = coffre("journal", "verify", "--json")
    assert json.loads(journal)["ok"]
    page.click("form.logout button")
    page.goto(f"{base}/audit/search")
    assert "/audit/login" in page.url


def test_the_pdf_is_shown_inline(server, browser):
    base, coffre, shown = server
    pdf_doc = next(s for s in shown if s["document"]["format"] == "pdf")
    grant = json.loads(
        coffre(
            "auditor",
            "grant",
            "--name",
            "Commissaire",
            "--company",
            "552120222",
            "--year",
            str(_year(pdf_doc)),
            "--expires",
            "2099-12-31",
            "--json",
        )
    )
    page = browser.new_page()
    page.goto(f"{base}/audit/login")
    page.fill("#token", grant["token"])
    page.click("button[type=submit]")
    page.goto(f"{base}/audit/documents/{pdf_doc['document']['id']}")
    data = page.get_by_test_id("pdf").get_attribute("data")
    assert data and data.endswith("/artifacts/sealed?inline=1")
    response = page.request.get(f"{base}{data}")
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("inline")
    assert response.body().startswith(b"%PDF-")
