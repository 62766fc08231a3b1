"""Benchmark of the integrity sweep: artifacts per second re-hashed from the store, seals and
timestamps validated, and the whole sweep (with the journal chain), beside ``sha256sum`` over
the same stored files in the same run.

    .venv/bin/python bench/integrity.py [--n 200] [--workers 2] [--s3]

N one-page PDF/A files are deposited into a fresh embedded archive (4 artifacts each:
original, original.p7s, original.tsr, sealed), then the sweep runs once. ``--s3`` runs the
same on S3 (SeaweedFS on loopback); ``sha256sum`` is only measured on the local store, whose
objects are plain files.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import select

from archive.integrity import IntegrityReport, integrity_sweep
from archive.models import Artifact
from bench.archive import _init_worker, _settings, _worker
from coffre.runtime import build_runtime
from storage import session_scope
from tests.pdfs import make_pdfa


def deposit_all(files: list[Path], data_dir: Path, s3: dict[str, str] | None, workers: int) -> None:
    build_runtime(_settings(data_dir, s3)).archive.engine.dispose()  # migrate once
    chunks = [[str(f) for f in files[i::workers]] for i in range(workers)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(data_dir), s3)) as pool:
        pool.map(_worker, chunks, chunksize=1)


def sweep(data_dir: Path, s3: dict[str, str] | None) -> tuple[IntegrityReport, list[Path]]:
    rt = build_runtime(_settings(data_dir, s3), migrate_db=False)
    archive = rt.archive
    report = integrity_sweep(archive, actor="bench:integrity")
    paths: list[Path] = []
    if s3 is None:
        with session_scope(archive.engine, read_only=True) as session:
            keys = session.exec(select(Artifact.storage_key)).all()
        paths = [rt.settings.objects_dir / key for key in keys]
    archive.engine.dispose()
    return report, paths


def sha256sum_rate(paths: list[Path]) -> float:
    """Files per second for ``sha256sum`` over ``paths`` (best of three, cache warm)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(["sha256sum", *map(str, paths)], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def print_report(label: str, report: IntegrityReport, baseline: float | None) -> None:
    rates = {
        "hash only (read + SHA-256)": report.rate(report.artifacts, report.seconds_reading),
        "seals + timestamps": report.rate(report.artifacts, report.seconds_proofs),
        "whole sweep (with journal)": report.rate(report.artifacts, report.seconds_total),
    }
    print(
        f"\n[{label}] {report.documents} documents, {report.artifacts} artifacts "
        f"({report.bytes_read / 1e6:.1f} MB), {report.proofs} proofs, "
        f"{report.journal_events} journal events, {report.journal_anchors} anchors; "
        f"ok={report.ok}"
    )
    header = f"{'stage':30} {'artifacts/s':>12} {'seconds':>9}"
    if baseline:
        header += f" {'sha256sum/s':>12} {'ratio':>7}"
    print(header)
    seconds = {
        "hash only (read + SHA-256)": report.seconds_reading,
        "seals + timestamps": report.seconds_proofs,
        "whole sweep (with journal)": report.seconds_total,
    }
    for stage, value in rates.items():
        row = f"{stage:30} {value:12.1f} {seconds[stage]:9.2f}"
        if baseline:
            row += f" {baseline:12.1f} {value / baseline:7.3f}"
        print(row)
    print(
        f"{'  = proofs (content artifacts)/s':30} "
        f"{report.rate(report.proofs, report.seconds_proofs):12.1f}"
    )
    print(
        f"{'  journal chain, events/s':30} "
        f"{report.rate(report.journal_events, report.seconds_journal):12.1f} "
        f"{report.seconds_journal:9.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--s3", action="store_true", help="also on S3 (SeaweedFS on loopback)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coffre-bench-integrity-"))
    try:
        files = []
        for i in range(args.n):
            f = work / "in" / f"facture-{i:04d}.pdf"
            f.parent.mkdir(exist_ok=True)
            f.write_bytes(make_pdfa(f"FACTURE INTEGRITE {i}", seed=i))
            files.append(f)
        print(f"{args.n} one-page PDF/A files; {os.cpu_count()} cores")
        start = time.perf_counter()
        deposit_all(files, work / "local", None, args.workers)
        print(f"deposited in {time.perf_counter() - start:.1f} s ({args.workers} processes)")
        report, paths = sweep(work / "local", None)
        print_report("local store", report, sha256sum_rate(paths))
        if args.s3:
            from tests.s3server import start_seaweedfs

            server = start_seaweedfs(work / "weed")
            ep = server.endpoint
            s3 = {
                "s3_endpoint": ep.endpoint,
                "s3_access_key": ep.access_key,
                "s3_secret_key": ep.secret_key,
                "s3_bucket": "bench-integrity",
            }
            try:
                deposit_all(files, work / "s3", s3, args.workers)
                s3_report, _ = sweep(work / "s3", s3)
                print_report("S3 (SeaweedFS)", s3_report, None)
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
