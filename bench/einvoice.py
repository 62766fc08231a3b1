"""Benchmark of the whole e-invoice path — detect, parse, validate, seal, timestamp, store,
journal — beside the XSLT/XSD validation alone, on the same corpus files in the same run.

Each file is received once per round into a fresh embedded archive (so nothing is skipped
as already archived); stylesheets are compiled before the clock starts.

    .venv/bin/python bench/einvoice.py [--rounds 2] [--workers 2] [--corpora DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capture.einvoice.detect import detect_and_parse_xml
from capture.einvoice.validate import Validator, default_corpora_dir
from capture.service import receive_file
from coffre.runtime import Runtime, build_runtime
from coffre.settings import Settings

FOLDERS = (
    "en16931/ubl/examples",
    "en16931/cii/examples",
    "facturx/zugferd-corpus/ZUGFeRDv2/correct",
)


def corpus(corpora: Path) -> list[Path]:
    files = []
    for folder in FOLDERS:
        files += sorted(
            p for p in (corpora / folder).rglob("*") if p.suffix.lower() in {".xml", ".pdf"}
        )
    return files


_RUNTIME: Runtime | None = None


def _init(data_dir: str, corpora: str) -> None:
    global _RUNTIME
    _RUNTIME = build_runtime(
        Settings(data_dir=Path(data_dir), corpora_dir=Path(corpora)), migrate_db=False
    )
    _RUNTIME.validator().warm_up()


def _receive(paths: list[str]) -> float:
    """Receive ``paths``; return the seconds it took in this worker."""
    if _RUNTIME is None:
        raise RuntimeError("worker not initialised")
    start = time.perf_counter()
    for path in paths:
        receive_file(
            _RUNTIME.archive,
            _RUNTIME.validator,
            data=Path(path).read_bytes(),
            filename=Path(path).name,
            company_ref=None,
            actor="bench",
            source="bench",
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--corpora", type=Path, default=default_corpora_dir())
    args = parser.parse_args()
    files = corpus(args.corpora.resolve())
    blobs = [p.read_bytes() for p in files]
    print(
        f"{len(files)} e-invoices from {', '.join(FOLDERS)}; {args.rounds} rounds; "
        f"{os.cpu_count()} cores"
    )

    validator = Validator(args.corpora)
    start = time.perf_counter()
    validator.warm_up()
    print(
        f"compiling schemas and stylesheets: {time.perf_counter() - start:.1f} s (not timed below)"
    )
    parsed = [detect_and_parse_xml(b) for b in blobs]
    start = time.perf_counter()
    for _ in range(args.rounds):
        for blob, (detected, root) in zip(blobs, parsed, strict=True):
            validator.validate(blob, detected=detected, root=root)
    n = len(blobs) * args.rounds
    alone = n / (time.perf_counter() - start)

    work = Path(tempfile.mkdtemp(prefix="coffre-bench-einvoice-"))
    try:
        whole: dict[int, float] = {}
        for workers in (1, args.workers):
            # One fresh archive per round, so every file is archived, never "already there".
            elapsed = 0.0
            for r in range(args.rounds):
                data_dir = work / f"w{workers}-r{r}"
                build_runtime(
                    Settings(data_dir=data_dir, corpora_dir=args.corpora)
                ).archive.engine.dispose()
                chunks = [[str(p) for p in files[i::workers]] for i in range(workers)]
                ctx = mp.get_context("spawn")
                with ctx.Pool(
                    workers, initializer=_init, initargs=(str(data_dir), str(args.corpora))
                ) as pool:
                    # Timed inside the workers: initialisers (compilation) stay off the clock;
                    # the slowest worker is the wall time of the round.
                    elapsed += max(pool.map(_receive, chunks, chunksize=1))
            whole[workers] = n / elapsed
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'run':52} {'e-invoices/s':>13} {'vs validation alone':>20}")
    label = "validation alone (XSD + EN 16931 + BR-FR + Factur-X), 1 process"
    print(f"{label:52} {alone:13.1f} {1:20.2f}")
    for workers, rate in whole.items():
        label = f"whole path, {workers} process{'es' if workers > 1 else ''}"
        print(f"{label:52} {rate:13.1f} {rate / alone:20.2f}")
    best = max(whole.values())
    print(
        f"\ngoal: >= 50 e-invoices/s on 2 cores through the whole path: {best:.1f} "
        f"({'met' if best >= 50 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
