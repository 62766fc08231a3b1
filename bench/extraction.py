"""Accuracy of invoice field extraction on OCR'd scans: synthetic French invoices with known
truth, then the real invoices of the invoice2data corpus (mostly non-French, born-digital).

Each synthetic scan (``bench.synthetic_scans.generate(seed)``) goes through the product's
conversion (``capture.scan.convert.convert`` after ``probe``: lossless PDF/A + OCRmyPDF text
layer), or, with ``--ocrmypdf``, through the ``ocrmypdf`` command line directly; then
``words_from_pdf`` → ``extract``. Accuracy is exact equality with the truth, per field.
``--cache DIR`` keeps each OCR'd PDF (and its truth), so tuning the extractor re-runs in
seconds.

    .venv/bin/python bench/extraction.py [--n 60] [--first-seed 1000] [--workers 2]
        [--cache DIR] [--ocrmypdf] [--no-own-sirens] [--corpora DIR] [--show-errors]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console
from rich.table import Table

from archive.invoice import InvoiceData
from bench import synthetic_scans
from bench.synthetic_scans import generate, own_sirens
from capture.scan.extract import Extraction, extract, normalise_name
from capture.scan.text import words_from_pdf

#: Fields with an accuracy target (exact match on the synthetic set).
TARGETS = (
    "invoice_number",
    "issue_date",
    "due_date",
    "total_ht",
    "total_vat",
    "total_ttc",
    "seller_siren",
)
TARGET = 0.95
FIELDS = (
    *TARGETS,
    "seller_siret",
    "seller_vat",
    "seller_name",
    "buyer_name",
    "buyer_siren",
    "buyer_vat",
    "po_reference",
    "amount_due",
    "vat_breakdown",
    "iban",
    "bic",
    "currency",
    "type_code",
)
NAME_FIELDS = ("seller_name", "buyer_name")
CONVERT = "convert"
CLI = "ocrmypdf-cli"


# --- OCR -----------------------------------------------------------------------------------


def _ocr_with_convert(png: bytes) -> bytes:
    from capture.scan.convert import convert
    from capture.scan.probe import probe

    return convert(png, probe(png), languages="fra+eng", jobs=1).pdf


def _ocr_with_cli(png: bytes) -> bytes:
    with tempfile.TemporaryDirectory(prefix="bench-ocr-") as folder:
        src, dst = Path(folder) / "in.png", Path(folder) / "out.pdf"
        src.write_bytes(png)
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        subprocess.run(
            [
                str(Path(sys.executable).with_name("ocrmypdf")),
                "-q",
                "-l",
                "fra+eng",
                "--output-type",
                "pdfa-2",
                "--pdfa-backend",
                "internal",
                "-O0",
                str(src),
                str(dst),
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        return dst.read_bytes()


@dataclass
class Sample:
    seed: int
    layout: str
    font: str
    truth: dict[str, object]
    pdf: Path
    ocr_seconds: float | None  # None when read from the cache


def _make_sample(seed: int, engine: str, cache: str) -> Sample:
    """Generate, OCR and cache one synthetic scan (runs in a worker process)."""
    folder = Path(cache)
    # Keyed by the generator's source too: a changed generator draws other pages.
    generator = hashlib.sha256(Path(synthetic_scans.__file__).read_bytes()).hexdigest()[:12]
    meta = folder / f"seed-{seed}.{generator}.{engine}.pickle"
    if meta.exists():
        # A plain dict (not a Sample), so the cache does not depend on how this ran.
        record = pickle.loads(meta.read_bytes())
        if Path(record["pdf"]).exists():
            return Sample(**{**record, "pdf": Path(record["pdf"]), "ocr_seconds": None})
    scan = generate(seed)
    digest = hashlib.sha256(scan.png).hexdigest()[:16]
    pdf_path = folder / f"seed-{seed}-{digest}.{engine}.pdf"
    start = time.perf_counter()
    pdf = _ocr_with_convert(scan.png) if engine == CONVERT else _ocr_with_cli(scan.png)
    seconds = time.perf_counter() - start
    pdf_path.write_bytes(pdf)
    sample = Sample(seed, scan.layout, scan.font, scan.truth, pdf_path, seconds)
    meta.write_bytes(pickle.dumps({**vars(sample), "pdf": str(pdf_path)}))
    return sample


# --- scoring -------------------------------------------------------------------------------


@dataclass
class FieldScore:
    right: int = 0
    wrong: int = 0
    missing: int = 0
    spurious: int = 0  # a value where the page shows none
    absent: int = 0  # neither truth nor value
    name_right: int = 0
    conf_right: list[float] = field(default_factory=list)
    conf_wrong: list[float] = field(default_factory=list)

    @property
    def evaluated(self) -> int:
        return self.right + self.wrong + self.missing

    @property
    def accuracy(self) -> float | None:
        return self.right / self.evaluated if self.evaluated else None


def score(
    scores: dict[str, FieldScore],
    invoice: InvoiceData,
    truth: dict[str, object],
    fields: tuple[str, ...],
    errors: list[str] | None = None,
    *,
    tag: str = "",
    equal: Callable[[str, object, object], bool] | None = None,
) -> None:
    for name in fields:
        s = scores.setdefault(name, FieldScore())
        got = getattr(invoice, name)
        got = None if got == () else got
        want = truth.get(name)
        conf = invoice.provenance[name].confidence if name in invoice.provenance else None
        same = (equal or (lambda _n, a, b: a == b))(name, got, want)
        if want is None:
            if got is None:
                s.absent += 1
            else:
                s.spurious += 1
                if errors is not None:
                    errors.append(f"{tag} {name}: none on the page, read {got!r}")
            continue
        if same:
            s.right += 1
            if conf is not None:
                s.conf_right.append(conf)
        elif got is None:
            s.missing += 1
            if errors is not None:
                errors.append(f"{tag} {name}: missed {want!r}")
        else:
            s.wrong += 1
            if conf is not None:
                s.conf_wrong.append(conf)
            if errors is not None:
                errors.append(f"{tag} {name}: want {want!r}, read {got!r} (conf {conf})")
        if name in NAME_FIELDS and isinstance(got, str) and isinstance(want, str):
            s.name_right += normalise_name(got) == normalise_name(want)


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.2f}" if values else "-"


def table(title: str, scores: dict[str, FieldScore], fields: tuple[str, ...]) -> Table:
    t = Table(title=title)
    for col in (
        "field",
        "n",
        "exact",
        "accuracy",
        "missed",
        "wrong",
        "spurious",
        "conf ok",
        "conf wrong",
    ):
        t.add_column(col, justify="left" if col == "field" else "right")
    for name in fields:
        s = scores.get(name)
        if s is None or (s.evaluated == 0 and s.spurious == 0):
            continue
        acc = s.accuracy
        mark = ""
        if name in TARGETS and title.startswith("Synthetic"):
            mark = " ✓" if acc is not None and acc >= TARGET else " ✗"
        acc_text = "-" if acc is None else f"{100 * acc:.1f} %{mark}"
        if name in NAME_FIELDS and s.evaluated:
            acc_text += f" ({100 * s.name_right / s.evaluated:.0f} % norm.)"
        t.add_row(
            name,
            str(s.evaluated),
            str(s.right),
            acc_text,
            str(s.missing),
            str(s.wrong),
            str(s.spurious),
            _mean(s.conf_right),
            _mean(s.conf_wrong),
        )
    return t


# --- the real corpus -----------------------------------------------------------------------

#: invoice2data JSON key -> our field.
REAL_MAP = {
    "invoice_number": "invoice_number",
    "date": "issue_date",
    "date_due": "due_date",
    "amount": "total_ttc",
    "amount_untaxed": "total_ht",
    "amount_tax": "total_vat",
    "currency": "currency",
    "iban": "iban",
    "bic": "bic",
    "vat": "seller_vat",
    "static_vat": "seller_vat",
    "partner_name": "seller_name",
    "purchase_order_id": "po_reference",
}


def _real_truth(record: dict[str, object]) -> dict[str, object]:
    truth: dict[str, object] = {}
    for key, name in REAL_MAP.items():
        value = record.get(key)
        if value in (None, ""):
            continue
        if name in ("issue_date", "due_date"):
            value = date.fromisoformat(str(value))
        elif name.startswith("total"):
            value = Decimal(str(value)).quantize(Decimal("0.01"))
        elif name in ("seller_vat", "iban", "bic"):
            value = "".join(str(value).split()).upper()
        truth[name] = value
    # invoice2data gives one "amount" and, where there is tax, "amount_tax": no tax line and
    # an untaxed amount equal to the total means a zero VAT.
    return truth


def _real_equal(name: str, got: object, want: object) -> bool:
    if name == "seller_name" and isinstance(got, str) and isinstance(want, str):
        return normalise_name(got) == normalise_name(want)
    if name == "invoice_number" and isinstance(got, str) and isinstance(want, str):
        return got.lstrip("#") == want.lstrip("#")
    return got == want


def run_real(corpora: Path, console: Console, show_errors: bool) -> None:
    folder = corpora / "scanned-invoices/invoice2data/tests/compare"
    if not folder.is_dir():
        console.print(f"[yellow]real corpus not found at {folder}: skipped[/]")
        return
    scores: dict[str, FieldScore] = {}
    errors: list[str] = []
    per_file = Table(title="Real invoices (invoice2data): field by field")
    per_file.add_column("file")
    per_file.add_column("lang")
    per_file.add_column("right / checked")
    per_file.add_column("fields read right")
    fields = tuple(dict.fromkeys(REAL_MAP.values()))
    start = time.perf_counter()
    pages_total = 0
    for json_path in sorted(folder.glob("*.json")):
        pdf_path = json_path.with_suffix(".pdf")
        if not pdf_path.exists():
            console.print(f"[dim]{json_path.name}: no PDF beside it (text-only case): skipped[/]")
            continue
        record = json.loads(json_path.read_text("utf-8"))[0]
        truth = _real_truth(record)
        pages = words_from_pdf(pdf_path.read_bytes())
        pages_total += len(pages)
        result = extract(pages)
        before = {n: (s.right, s.evaluated) for n, s in scores.items()}
        score(scores, result.invoice, truth, fields, errors, tag=pdf_path.stem, equal=_real_equal)
        right = [n for n, s in scores.items() if s.right - before.get(n, (0, 0))[0] == 1]
        checked = sum(s.evaluated - before.get(n, (0, 0))[1] for n, s in scores.items())
        lang = str(record.get("country_code", "") or "").upper() or "?"
        per_file.add_row(pdf_path.stem, lang, f"{len(right)} / {checked}", ", ".join(right))
    seconds = time.perf_counter() - start
    console.print(per_file)
    console.print(table("Real invoices (invoice2data), exact match", scores, fields))
    console.print(
        f"text layer + extraction: {seconds:.2f} s for {pages_total} pages "
        f"({1000 * seconds / max(pages_total, 1):.0f} ms/page; born-digital, no OCR)"
    )
    if show_errors:
        for line in errors:
            console.print(f"  [dim]{line}[/]")


# --- main ----------------------------------------------------------------------------------


def _engine(args: argparse.Namespace, console: Console) -> str:
    if args.ocrmypdf:
        return CLI
    try:
        from capture.scan.convert import convert  # noqa: F401
        from capture.scan.probe import probe  # noqa: F401
    except ImportError as exc:
        console.print(f"[yellow]capture.scan.convert unavailable ({exc}); using the CLI[/]")
        return CLI
    return CONVERT


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None, help="keep OCR'd PDFs here")
    parser.add_argument("--ocrmypdf", action="store_true", help="call the ocrmypdf CLI directly")
    parser.add_argument(
        "--no-own-sirens", action="store_true", help="do not tell the buyer's SIRENs"
    )
    parser.add_argument(
        "--corpora",
        type=Path,
        default=Path(os.environ.get("COFFRE_CORPORA_DIR", ROOT / "../shared/corpora")),
    )
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 140))
    engine = _engine(args, console)

    with tempfile.TemporaryDirectory(prefix="bench-extraction-") as scratch:
        cache = args.cache or Path(scratch)
        cache.mkdir(parents=True, exist_ok=True)
        seeds = list(range(args.first_seed, args.first_seed + args.n))
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            samples = list(
                pool.map(_make_sample, seeds, [engine] * len(seeds), [str(cache)] * len(seeds))
            )
        wall = time.perf_counter() - start

        scores: dict[str, FieldScore] = {}
        errors: list[str] = []
        own = () if args.no_own_sirens else own_sirens()
        extract_seconds = 0.0
        flagged = 0
        for sample in samples:
            t0 = time.perf_counter()
            pages = words_from_pdf(sample.pdf.read_bytes())
            result: Extraction = extract(pages, own_sirens=own)
            extract_seconds += time.perf_counter() - t0
            flagged += bool(result.flag_codes & {"totals_inconsistent"})
            tag = f"seed {sample.seed} ({sample.layout}, {sample.font})"
            score(scores, result.invoice, sample.truth, FIELDS, errors, tag=tag)

    console.print(
        table(
            f"Synthetic scans: {len(samples)} pages, OCR by {engine}"
            + (", own SIRENs not given" if args.no_own_sirens else ""),
            scores,
            FIELDS,
        )
    )
    fresh = [s.ocr_seconds for s in samples if s.ocr_seconds is not None]
    if fresh:
        console.print(
            f"OCR: {sum(fresh) / len(fresh):.1f} s/page per worker on average, "
            f"{wall:.0f} s wall for {len(fresh)} pages with {args.workers} workers "
            f"({wall / len(fresh):.1f} s/page throughput)"
        )
    else:
        console.print("OCR: every page came from the cache")
    console.print(
        f"text layer + extraction: {1000 * extract_seconds / max(len(samples), 1):.0f} ms/page; "
        f"totals_inconsistent flagged on {flagged} pages"
    )
    missed_targets = [n for n in TARGETS if (acc := scores[n].accuracy) is None or acc < TARGET]
    console.print(
        "targets (≥ 95 % exact): "
        + ("all met" if not missed_targets else "missed for " + ", ".join(missed_targets))
    )
    if args.show_errors:
        for line in errors:
            console.print(f"  [dim]{line}[/]")
    run_real(args.corpora, console, args.show_errors)


if __name__ == "__main__":
    main()
