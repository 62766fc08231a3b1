"""Benchmark of the deposit path: fingerprint, seal, timestamp, store — separately and
together — on the local write-once store and on S3 (SeaweedFS), beside the standard tools
doing the same work on the same files in the same run (sha256sum, openssl cms -sign,
openssl ts -query/-reply).

    .venv/bin/python bench/archive.py [--n 100] [--workers 2] [--no-s3]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive._aio import run_sync
from archive.deposit import deposit
from coffre.runtime import Runtime, build_runtime
from coffre.settings import Settings
from storage.types import utcnow
from tests.pdfs import make_pdfa


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _settings(data_dir: Path, s3: dict[str, str] | None) -> Settings:
    values: dict[str, object] = {"data_dir": data_dir}
    if s3:
        values["storage"] = {"backend": "s3", **s3}
    return Settings(**values)  # type: ignore[arg-type]


_RUNTIME: Runtime | None = None


def _init_worker(data_dir: str, s3: dict[str, str] | None) -> None:
    """Build one runtime per worker process before the clock starts."""
    global _RUNTIME
    _RUNTIME = build_runtime(_settings(Path(data_dir), s3), migrate_db=False)


def _worker(paths: list[str]) -> int:
    if _RUNTIME is None:
        raise RuntimeError("worker not initialised")
    for path in paths:
        deposit(
            _RUNTIME.archive,
            data=Path(path).read_bytes(),
            filename=Path(path).name,
            actor="bench:worker",
            source="bench",
        )
    return len(paths)


def coffre_stages(
    files: list[Path], data_dir: Path, s3: dict[str, str] | None, workers: int
) -> dict[str, float]:
    rt = build_runtime(_settings(data_dir, s3))
    archive = rt.archive
    blobs = [f.read_bytes() for f in files]
    n = len(blobs)
    until = utcnow().replace(year=utcnow().year + 10)
    results: dict[str, float] = {}
    results["fingerprint"] = rate(n, timed(lambda: [hashlib.sha256(b).hexdigest() for b in blobs]))

    async def seal_all() -> None:
        for b in blobs:
            await archive.sealer.seal_pdf(b)
            await archive.sealer.seal_detached(b)

    results["seal (PAdES + detached CMS)"] = rate(n, timed(lambda: run_sync(seal_all())))

    async def stamp_all() -> None:
        for b in blobs:
            await archive.timestamper.stamp(hashlib.sha256(b).digest())

    results["timestamp"] = rate(n, timed(lambda: run_sync(stamp_all())))
    prefix = f"bench/{time.time_ns()}"
    results["store"] = rate(
        n,
        timed(
            lambda: [
                archive.store.put(f"{prefix}/{i}", b, retain_until=until)
                for i, b in enumerate(blobs)
            ]
        ),
    )
    half = n // 2
    results["whole deposit, 1 process"] = rate(
        half,
        timed(
            lambda: [
                deposit(archive, data=b, filename=f"{i}.pdf", actor="bench:main", source="bench")
                for i, b in enumerate(blobs[:half])
            ]
        ),
    )
    rest = [str(f) for f in files[half:]]
    chunks = [rest[i::workers] for i in range(workers)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(data_dir), s3)) as pool:
        pool.map(time.sleep, [0.5] * workers)  # let every worker finish its initialiser
        results[f"whole deposit, {workers} processes"] = rate(
            len(rest), timed(lambda: pool.map(_worker, chunks, chunksize=1))
        )
    archive.engine.dispose()
    return results


def anchors(files: list[Path], pki: Path, work: Path) -> dict[str, float]:
    n = len(files)
    out: dict[str, float] = {}
    out["sha256sum"] = rate(
        n,
        timed(
            lambda: subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True)
        ),
    )
    password = (pki / "dev-seal.password").read_text().strip()
    key = work / "seal.key.pem"
    cert = work / "seal.pem"
    subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            str(pki / "dev-seal.p12"),
            "-nodes",
            "-passin",
            f"pass:{password}",
            "-nocerts",
            "-out",
            str(key),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            str(pki / "dev-seal.p12"),
            "-nokeys",
            "-clcerts",
            "-passin",
            f"pass:{password}",
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )

    def cms() -> None:
        for f in files:
            subprocess.run(
                [
                    "openssl",
                    "cms",
                    "-sign",
                    "-binary",
                    "-in",
                    str(f),
                    "-signer",
                    str(cert),
                    "-inkey",
                    str(key),
                    "-outform",
                    "DER",
                    "-out",
                    str(work / "sig.p7s"),
                ],
                check=True,
                capture_output=True,
            )

    out["openssl cms -sign"] = rate(n, timed(cms))
    cnf = work / "tsa.cnf"
    cnf.write_text(
        "[tsa]\ndefault_tsa = tsa_config1\n[tsa_config1]\nserial = "
        + str(work / "serial")
        + "\nsigner_cert = "
        + str(pki / "dev-tsa.pem")
        + "\nsigner_key = "
        + str(pki / "dev-tsa.key.pem")
        + "\nsigner_digest = sha256\ndefault_policy = 1.2.3.4\n"
        "digests = sha256\naccuracy = secs:1\ness_cert_id_alg = sha256\n"
    )
    (work / "serial").write_text("01\n")

    def ts() -> None:
        for f in files:
            subprocess.run(
                [
                    "openssl",
                    "ts",
                    "-query",
                    "-data",
                    str(f),
                    "-sha256",
                    "-cert",
                    "-out",
                    str(work / "q.tsq"),
                ],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                [
                    "openssl",
                    "ts",
                    "-reply",
                    "-config",
                    str(cnf),
                    "-queryfile",
                    str(work / "q.tsq"),
                    "-out",
                    str(work / "r.tsr"),
                ],
                check=True,
                capture_output=True,
            )

    out["openssl ts -query/-reply"] = rate(n, timed(ts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coffre-bench-"))
    try:
        files = []
        for i in range(args.n):
            f = work / "in" / f"facture-{i:04d}.pdf"
            f.parent.mkdir(exist_ok=True)
            f.write_bytes(make_pdfa(f"FACTURE BENCH {i}", seed=i))
            files.append(f)
        print(
            f"{args.n} one-page PDF/A files, {sum(f.stat().st_size for f in files) // args.n} "
            f"bytes each on average; {os.cpu_count()} cores"
        )
        runs: dict[str, dict[str, float]] = {}
        runs["local"] = coffre_stages(files, work / "local", None, args.workers)
        server = None
        if not args.no_s3:
            from tests.s3server import start_seaweedfs

            server = start_seaweedfs(work / "weed")
            ep = server.endpoint
            s3 = {
                "s3_endpoint": ep.endpoint,
                "s3_access_key": ep.access_key,
                "s3_secret_key": ep.secret_key,
                "s3_bucket": "bench",
            }
            try:
                runs["s3"] = coffre_stages(files, work / "s3", s3, args.workers)
            finally:
                server.stop()
        base = anchors(files, work / "local" / "dev-pki", work)
        anchor_for = {
            "fingerprint": "sha256sum",
            "seal (PAdES + detached CMS)": "openssl cms -sign",
            "timestamp": "openssl ts -query/-reply",
        }
        print(
            f"\n{'stage':32} "
            + " ".join(f"{k + ' docs/s':>14}" for k in runs)
            + f" {'anchor':>26} {'docs/s':>10} {'ratio':>7}"
        )
        for stage in runs["local"]:
            row = f"{stage:32} " + " ".join(f"{runs[k][stage]:14.1f}" for k in runs)
            if stage in anchor_for:
                name = anchor_for[stage]
                row += f" {name:>26} {base[name]:10.1f} {runs['local'][stage] / base[name]:7.2f}"
            print(row)
        whole = runs["local"][f"whole deposit, {args.workers} processes"]
        print(
            f"\ngoal: whole deposit >= 20 docs/s on the local store: {whole:.1f} "
            f"({'met' if whole >= 20 else 'NOT met'})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
