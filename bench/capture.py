"""Benchmark of scan capture: Coffre's whole path beside raw OCRmyPDF and raw tesseract, on
the same N synthetic 300-dpi colour A4 pages, in the same run.

(a) ``ocrmypdf -l fra+eng --output-type pdfa-2 -O0 -j 2`` on the N pages as one PDF;
(b) ``tesseract`` alone at its best here: one single-threaded process per core
    (``OMP_THREAD_LIMIT=1``), each page once;
(c) Coffre: intake (probe, fingerprint, seal, timestamp, store, journal), then conversion to
    PDF/A, pixel proof, OCR, extraction, PAdES seal, store and journal, with as many jobs
    at once as cores — each page a one-page document, as scanning stations send them.

Prints pages/min for each and the ratios c/a and c/b (goals on 2 cores: c/a >= 2,
c/b >= 0.7).

    .venv/bin/python bench/capture.py [--pages 20] [--jobs 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import img2pdf
import structlog
from rich.console import Console
from rich.table import Table

from bench.synthetic_scans import generate
from coffre.runtime import build_runtime
from coffre.settings import Settings

BIN = Path(sys.executable).parent
console = Console()


def _pages(n: int, folder: Path) -> list[Path]:
    paths = []
    for seed in range(n):
        path = folder / f"page-{seed:03d}.png"
        path.write_bytes(generate(seed).png)
        paths.append(path)
    return paths


def run_ocrmypdf(pages: list[Path], work: Path, jobs: int) -> float:
    source = work / "all.pdf"
    source.write_bytes(img2pdf.convert([str(p) for p in pages]))
    start = time.perf_counter()
    subprocess.run(
        [
            str(BIN / "ocrmypdf"),
            "-q",
            "-l",
            "fra+eng",
            "--output-type",
            "pdfa-2",
            "-O0",
            "-j",
            str(jobs),
            str(source),
            str(work / "all-ocr.pdf"),
        ],
        check=True,
    )
    return time.perf_counter() - start


def run_tesseract(pages: list[Path], work: Path, jobs: int) -> float:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def one(page: Path) -> None:
        subprocess.run(
            ["tesseract", str(page), str(work / page.stem), "-l", "fra+eng", "txt"],
            check=True,
            env=env,
            capture_output=True,
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, pages))
    return time.perf_counter() - start


def run_coffre(pages: list[Path], work: Path, jobs: int) -> tuple[float, float, list[str]]:
    runtime = build_runtime(Settings(data_dir=work / "coffre-data"))
    pipeline = runtime.pipeline
    start = time.perf_counter()

    def one(page: Path) -> str:
        result = pipeline.intake(
            page.read_bytes(), filename=page.name, actor="bench", source="bench"
        )
        assert result.document_id is not None, result.reason
        return pipeline.process_until_final(result.document_id)

    with ThreadPoolExecutor(jobs) as pool:
        outcomes = list(pool.map(one, pages))
    whole = time.perf_counter() - start
    # Intake alone, on the same bytes changed by one byte (so none is "already archived").
    start = time.perf_counter()
    for page in pages:
        pipeline.intake(page.read_bytes() + b"\0", filename=page.name, actor="b", source="b")
    intake = time.perf_counter() - start
    runtime.archive.engine.dispose()
    return whole, intake, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--coffre-jobs",
        type=int,
        default=(os.cpu_count() or 2) + 1,
        help="Coffre documents in flight (default cores + 1: one job's Python work — pixel "
        "proof, seal, store — overlaps the others' OCR, as COFFRE_QUEUE__CONCURRENCY does)",
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="coffre-bench-capture-") as tmp:
        work = Path(tmp)
        console.print(f"generating {args.pages} synthetic A4 pages at 300 dpi (RGB)...")
        pages = _pages(args.pages, work)
        n = len(pages)
        console.print("(a) ocrmypdf alone...")
        a = run_ocrmypdf(pages, work, args.jobs)
        console.print("(b) tesseract alone, one single-threaded process per core...")
        b = run_tesseract(pages, work, args.jobs)
        console.print("(c) Coffre's whole path...")
        c, intake, outcomes = run_coffre(pages, work, args.coffre_jobs)

    def per_min(seconds: float) -> float:
        return n / seconds * 60

    table = Table(title=f"scan capture, {n} pages, {args.jobs} jobs, {os.cpu_count()} cores")
    table.add_column("run")
    table.add_column("seconds", justify="right")
    table.add_column("pages/min", justify="right")
    table.add_column("s/page/core", justify="right")
    for label, seconds in (
        ("(a) ocrmypdf -O0 --output-type pdfa-2 -j N", a),
        ("(b) tesseract, OMP_THREAD_LIMIT=1, N processes", b),
        (f"(c) Coffre whole path, {args.coffre_jobs} in flight", c),
        ("    of which intake alone (sequential)", intake),
    ):
        table.add_row(
            label, f"{seconds:.1f}", f"{per_min(seconds):.1f}", f"{seconds * args.jobs / n:.2f}"
        )
    console.print(table)
    ratio_a, ratio_b = per_min(c) / per_min(a), per_min(c) / per_min(b)
    console.print(
        f"c/a = {ratio_a:.2f} (goal >= 2: {'met' if ratio_a >= 2 else 'NOT met'})   "
        f"c/b = {ratio_b:.2f} (goal >= 0.7: {'met' if ratio_b >= 0.7 else 'NOT met'})"
    )
    counts = {o: outcomes.count(o) for o in set(outcomes)}
    console.print(f"outcomes: {counts}")


if __name__ == "__main__":
    main()
