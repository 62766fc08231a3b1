"""Benchmark of e-invoice validation alone: every XML and PDF of the corpus folders below,
validated N times, in documents per second for each layer (XSD, the EN 16931 / profile
rules, BR-FR, the Factur-X embedding checks) and for all of them together, in one process
and across worker processes. Compilation of the schemas and stylesheets is timed apart.

Detection runs once before the clock starts: what is measured is ``Validator.validate``
given the detected invoice and its parsed XML, as the capture pipeline calls it (the
multi-process line includes detection; the ``detect + read`` line times detection and the
reading of the invoice data alone). Compilation and one warm-up pass are not timed.

Beside the wall-clock rate, each line gives the CPU time per document (of the worker
processes, for the multi-process line): on a machine shared with other work the rate
falls with the load, the CPU time much less.

    .venv/bin/python bench/einvoice_validation.py [--n 3] [--workers 2] [--corpora DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections.abc import Collection, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lxml import etree

from archive.errors import BadInput
from capture.einvoice.cii import parse_cii
from capture.einvoice.detect import Detected, detect_and_parse_xml
from capture.einvoice.ubl import parse_ubl
from capture.einvoice.validate import ALL_LAYERS, Layer, Validator, default_corpora_dir

FOLDERS = (
    "en16931/ubl/examples",
    "en16931/cii/examples",
    "en16931/tests",
    "facturx/mustangproject/validator-test-resources",
    "facturx/zugferd-corpus/ZUGFeRDv2/correct",
    "facturx/fnfe-examples-via-stafyniaksacha",
    "facturx/akretion-factur-x/fixtures/xml",
)

Document = tuple[Path, bytes, Detected, etree._Element]


def corpus_files(corpora: Path) -> Iterator[Path]:
    for folder in FOLDERS:
        for path in sorted((corpora / folder).rglob("*")):
            if path.is_file() and path.suffix.lower() in (".xml", ".pdf"):
                yield path


def load(corpora: Path) -> tuple[list[Document], list[str]]:
    documents: list[Document] = []
    refused: list[str] = []
    for path in corpus_files(corpora):
        data = path.read_bytes()
        try:
            detected, root = detect_and_parse_xml(data)
        except BadInput as exc:
            refused.append(f"{path.name}: {type(exc).__name__}")
            continue
        documents.append((path, data, detected, root))
    return documents, refused


def run(
    validator: Validator, documents: list[Document], n: int, layers: Collection[Layer]
) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for ``n`` passes of validation over ``documents``."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(n):
        for _, data, detected, root in documents:
            validator.validate(data, detected=detected, root=root, layers=layers)
    return time.perf_counter() - start, time.process_time() - cpu_start


def run_reading(documents: list[Document], n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for ``n`` passes of detection and reading alone."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(n):
        for _, data, _, _ in documents:
            detected, root = detect_and_parse_xml(data)
            read = parse_cii if detected.xml_syntax == "cii" else parse_ubl
            read(root)
    return time.perf_counter() - start, time.process_time() - cpu_start


# -- worker processes (spawned: SaxonC does not survive fork) --------------------------------

_worker_validator: Validator | None = None


def _init_worker(corpora: str, warm_paths: list[str]) -> None:
    global _worker_validator
    _worker_validator = Validator(Path(corpora))
    _worker_validator.warm_up()
    for path in warm_paths:  # one untimed pass, as in the single-process figures
        _validate_path(path)


def _validate_path(path: str) -> float:
    """Detect and validate one file; return the CPU seconds this process spent on it."""
    if _worker_validator is None:  # pragma: no cover - set by the pool initializer
        raise RuntimeError("worker not initialised")
    start = time.process_time()
    data = Path(path).read_bytes()
    detected, root = detect_and_parse_xml(data)
    _worker_validator.validate(data, detected=detected, root=root)
    return time.process_time() - start


def run_workers(corpora: Path, paths: list[str], n: int, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the workers) for ``n`` passes over ``paths``."""
    context = mp.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(str(corpora), paths)) as pool:
        pool.map(_validate_path, paths[:workers], chunksize=1)  # wait until all are warm
        start = time.perf_counter()
        cpu = sum(pool.map(_validate_path, paths * n, chunksize=4))
        return time.perf_counter() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3, help="passes over the corpus (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--corpora", type=Path, default=None)
    args = parser.parse_args()
    corpora = (args.corpora or default_corpora_dir()).resolve()

    documents, refused = load(corpora)
    pdfs = sum(1 for doc in documents if doc[2].syntax == "facturx-pdf")
    print(f"corpus: {len(documents)} e-invoices ({pdfs} PDF) from {len(FOLDERS)} folders")
    print(f"        {len(refused)} files refused by detection (not timed)")

    validator = Validator(corpora)
    start = time.perf_counter()
    validator.warm_up()
    compile_s = time.perf_counter() - start
    print(f"compile: {compile_s:.2f} s for every XSD and stylesheet (once per process)")
    start = time.perf_counter()
    run(validator, documents, 1, ALL_LAYERS)  # Saxon's first runs are slower: not timed
    print(f"warm-up: {time.perf_counter() - start:.2f} s for one untimed pass\n")

    total = len(documents) * args.n
    print(f"{'layer(s)':<34}{'docs':>6}{'seconds':>10}{'docs/s':>10}{'ms/doc':>9}{'CPU ms':>9}")

    def report(label: str, count: int, timing: tuple[float, float]) -> None:
        seconds, cpu = timing
        rate = count / seconds if seconds else float("inf")
        print(
            f"{label:<34}{count:>6}{seconds:>10.2f}{rate:>10.1f}"
            f"{1000 * seconds / count:>9.2f}{1000 * cpu / count:>9.2f}"
        )

    report("detect + read (no validation)", total, run_reading(documents, args.n))
    measured: list[tuple[str, Collection[Layer]]] = [
        ("xsd", {"xsd"}),
        ("en16931 (EN 16931 / profile XSLT)", {"en16931"}),
        ("br-fr (BR-FR XSLT)", {"br-fr"}),
        ("xsd + en16931 + br-fr", {"xsd", "en16931", "br-fr"}),
    ]
    for label, layers in measured:
        report(label, total, run(validator, documents, args.n, layers))
    pdf_documents = [doc for doc in documents if doc[2].syntax == "facturx-pdf"]
    if pdf_documents:
        timing = run(validator, pdf_documents, args.n, {"facturx"})
        # The PDF itself is read once, at detection (timed in ``detect + read``).
        report("facturx (PDFs; read at detection)", len(pdf_documents) * args.n, timing)
    report("all layers, 1 process", total, run(validator, documents, args.n, ALL_LAYERS))

    if args.workers > 1:
        paths = [str(doc[0]) for doc in documents]
        timing = run_workers(corpora, paths, args.n, args.workers)
        report(f"all layers + detect, {args.workers} processes", len(paths) * args.n, timing)


if __name__ == "__main__":
    main()
