"""Benchmark of scan capture: Coffre's whole path beside raw OCRmyPDF and raw tesseract, on
the same N synthetic 300-dpi colour A4 pages, in the same run.

(a) ``ocrmypdf -l fra+eng --output-type pdfa-2 -O0 -j 2`` on the N pages as one PDF;
(b) ``tesseract`` alone at its best here: one single-threaded process per core
    (``OMP_THREAD_LIMIT=1``), each page once;
(c) Coffre: intake (probe, fingerprint, seal, timestamp, store, journal), then conversion to
    PDF/A, pixel proof, OCR, extraction, PAdES seal, store and journal, with as many jobs
    at once as cores — each page a one-page document, as scanning stations send them.

Prints pages/min for each and the ratios c/a and c/b (goals on 2 cores: c/a >= 2,
c/b >= 0.7). Beside the wall clock, each run's CPU time per page (this process and its
children, every core) is printed: on a machine shared with other work the rates fall with
the load while the CPU time moves much less, so ``cores / CPU per page`` bounds what idle
cores could do, and the same ratios are given from it.

    .venv/bin/python bench/capture.py [--pages 20] [--jobs 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
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
console = Console(width=140)


def _cpu() -> float:
    """CPU seconds used so far by this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Run:
    """Wall and CPU seconds of one timed block."""

    def __enter__(self) -> Run:
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu() - self.cpu


def _pages(n: int, folder: Path) -> list[Path]:
    paths = []
    for seed in range(n):
        path = folder / f"page-{seed:03d}.png"
        path.write_bytes(generate(seed).png)
        paths.append(path)
    return paths


def run_ocrmypdf(pages: list[Path], work: Path, jobs: int) -> Run:
    source = work / "all.pdf"
    source.write_bytes(img2pdf.convert([str(p) for p in pages]))
    with Run() as run:
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
    return run


def run_tesseract(pages: list[Path], work: Path, jobs: int) -> Run:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def one(page: Path) -> None:
        subprocess.run(
            ["tesseract", str(page), str(work / page.stem), "-l", "fra+eng", "txt"],
            check=True,
            env=env,
            capture_output=True,
        )

    with Run() as run, ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, pages))
    return run


def run_coffre(pages: list[Path], work: Path, jobs: int) -> tuple[Run, Run, list[str]]:
    runtime = build_runtime(Settings(data_dir=work / "coffre-data"))
    pipeline = runtime.pipeline

    def one(page: Path) -> str:
        result = pipeline.intake(
            page.read_bytes(), filename=page.name, actor="bench", source="bench"
        )
        assert result.document_id is not None, result.reason
        return pipeline.process_until_final(result.document_id)

    with Run() as whole, ThreadPoolExecutor(jobs) as pool:
        outcomes = list(pool.map(one, pages))
    # Intake alone, on the same bytes changed by one byte (so none is "already archived").
    with Run() as intake:
        for page in pages:
            pipeline.intake(page.read_bytes() + b"\0", filename=page.name, actor="b", source="b")
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

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    table = Table(title=f"scan capture, {n} pages, {args.jobs} jobs, {cores} cores")
    table.add_column("run")
    table.add_column("seconds", justify="right")
    table.add_column("pages/min", justify="right")
    table.add_column("s/page/core", justify="right")
    table.add_column("CPU s/page", justify="right")
    table.add_column("pages/min on idle cores", justify="right")
    for label, run in (
        ("(a) ocrmypdf -O0 --output-type pdfa-2 -j N", a),
        ("(b) tesseract, OMP_THREAD_LIMIT=1, N processes", b),
        (f"(c) Coffre whole path, {args.coffre_jobs} in flight", c),
        ("    of which intake alone (sequential)", intake),
    ):
        table.add_row(
            label,
            f"{run.wall:.1f}",
            f"{per_min(run.wall):.1f}",
            f"{run.wall * args.jobs / n:.2f}",
            f"{run.cpu / n:.2f}",
            f"{per_min(run.cpu / args.jobs):.1f}",
        )
    console.print(table)
    for basis, (ta, tb, tc) in (
        ("wall clock", (a.wall, b.wall, c.wall)),
        (f"CPU time ({args.jobs} idle cores)", (a.cpu, b.cpu, c.cpu)),
    ):
        ratio_a, ratio_b = ta / tc, tb / tc
        console.print(
            f"{basis:28} c/a = {ratio_a:.2f} (goal >= 2: {'met' if ratio_a >= 2 else 'NOT met'})"
            f"   c/b = {ratio_b:.2f} (goal >= 0.7: {'met' if ratio_b >= 0.7 else 'NOT met'})"
        )
    console.print(
        f"load average {load:.1f} at the end: other work on the machine lowers the wall-clock "
        "rates; the CPU-time ratios assume the runs can keep every core busy."
    )
    counts = {o: outcomes.count(o) for o in set(outcomes)}
    console.print(f"outcomes: {counts}")


if __name__ == "__main__":
    main()
