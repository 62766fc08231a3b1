"""Benchmark of e-invoice validation alone: every XML and PDF of the corpus folders below,
validated N times, in documents per second for each layer (XSD, the EN 16931 / profile
rules, BR-FR, the Factur-X embedding checks) and for all of them together, in one process
and across worker processes. Compilation of the schemas and stylesheets is timed apart.

Detection runs once before the clock starts: what is measured is ``Validator.validate``
given the detected invoice and its parsed XML, as the capture pipeline calls it (the
multi-process line includes detection). Compilation and one warm-up pass are not timed.

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
from capture.einvoice.detect import Detected, detect_and_parse_xml
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
) -> float:
    start = time.perf_counter()
    for _ in range(n):
        for _, data, detected, root in documents:
            validator.validate(data, detected=detected, root=root, layers=layers)
    return time.perf_counter() - start


# -- worker processes (spawned: SaxonC does not survive fork) --------------------------------

_worker_validator: Validator | None = None


def _init_worker(corpora: str, warm_paths: list[str]) -> None:
    global _worker_validator
    _worker_validator = Validator(Path(corpora))
    _worker_validator.warm_up()
    for path in warm_paths:  # one untimed pass, as in the single-process figures
        _validate_path(path)


def _validate_path(path: str) -> bool:
    if _worker_validator is None:  # pragma: no cover - set by the pool initializer
        raise RuntimeError("worker not initialised")
    data = Path(path).read_bytes()
    detected, root = detect_and_parse_xml(data)
    return _worker_validator.validate(data, detected=detected, root=root).valid


def run_workers(corpora: Path, paths: list[str], n: int, workers: int) -> float:
    context = mp.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(str(corpora), paths)) as pool:
        pool.map(_validate_path, paths[:workers], chunksize=1)  # wait until all are warm
        start = time.perf_counter()
        pool.map(_validate_path, paths * n, chunksize=4)
        return time.perf_counter() - start


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
    print(f"{'layer(s)':<34}{'docs':>6}{'seconds':>10}{'docs/s':>10}{'ms/doc':>9}")

    def report(label: str, count: int, seconds: float) -> None:
        rate = count / seconds if seconds else float("inf")
        print(f"{label:<34}{count:>6}{seconds:>10.2f}{rate:>10.1f}{1000 * seconds / count:>9.2f}")

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
        seconds = run(validator, pdf_documents, args.n, {"facturx"})
        report("facturx (PDF embedding, PDFs only)", len(pdf_documents) * args.n, seconds)
    report("all layers, 1 process", total, run(validator, documents, args.n, ALL_LAYERS))

    if args.workers > 1:
        paths = [str(doc[0]) for doc in documents]
        seconds = run_workers(corpora, paths, args.n, args.workers)
        report(f"all layers + detect, {args.workers} processes", len(paths) * args.n, seconds)


if __name__ == "__main__":
    main()
