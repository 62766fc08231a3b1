"""Benchmark of the auditors' search on SQLite (FTS5) and PostgreSQL (GIN, 'simple').

N synthetic but realistic documents (French supplier names, SIREN/VAT, invoice numbers,
issue dates over seven years, amounts, a few hundred words of OCR-like French text each)
are bulk-inserted straight into the index tables (``search_index`` and ``search_text``),
through SQLAlchemy Core ``executemany`` in batches of 2 000, with the full-text index
(FTS5 triggers, GIN index) live as the migrations build it; minimal ``document`` rows are
inserted first because the index rows point at them. No seal, no store: this measures the
search, not the archive. Both databases receive the same rows (seeded generator) into a
fresh schema: a temporary SQLite file, and a temporary schema on the PostgreSQL server,
dropped afterwards.

Then each typical query runs through :func:`archive.search.search` (scope filter included:
an accountant limited to the largest company, 55 % of the documents) with varied values,
and p50/p95 latencies are printed in one table with the load times.

    .venv/bin/python bench/search.py [--n 100000] [--runs 40] [--pg-url URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import Engine

from archive.access import Principal
from archive.models import Company, Document, Role, SearchEntry, SearchText
from archive.search import SearchQuery, search, words
from storage import make_engine, migrate

PG_ADMIN_URL = os.environ.get(
    "COFFRE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BATCH = 2000
COMPANY_SHARES = (0.55, 0.25, 0.15, 0.05)
YEARS = range(2019, 2026)

# -- synthetic documents --------------------------------------------------------------------
NAME_HEADS = (
    "Électricité",
    "Plomberie",
    "Boulangerie",
    "Transports",
    "Garage",
    "Papeterie",
    "Imprimerie",
    "Menuiserie",
    "Pharmacie",
    "Librairie",
    "Quincaillerie",
    "Traiteur",
    "Nettoyage",
    "Informatique",
    "Fournitures",
    "Matériaux",
    "Carrosserie",
    "Conseil",
    "Brasserie",
    "Hôtellerie",
    "Sécurité",
    "Télécom",
    "Énergie",
    "Assurances",
)
NAME_TAILS = (
    "Durand",
    "Martin",
    "Bernard",
    "Lefèvre",
    "Moreau",
    "Laurent",
    "Girard",
    "Rousseau",
    "Bonnet",
    "Dupont",
    "Lambert",
    "Fontaine",
    "Chevalier",
    "Robin",
    "Gauthier",
    "Perrin",
    "Mercier",
    "Blanc",
    "Guérin",
    "Faure",
    "Rolland",
    "Morel",
    "Lemaire",
    "Renaud",
    "du Rhône",
    "de Provence",
    "d'Aquitaine",
    "des Alpes",
    "de Bretagne",
    "Île-de-France",
)
FORMS = ("SARL", "SAS", "SA", "EURL", "& Fils", "et Associés", "SNC", "")
CITIES = (
    "Paris",
    "Lyon",
    "Marseille",
    "Toulouse",
    "Nantes",
    "Strasbourg",
    "Montpellier",
    "Bordeaux",
    "Lille",
    "Rennes",
    "Reims",
    "Saint-Étienne",
    "Grenoble",
    "Dijon",
    "Angers",
    "Nîmes",
    "Clermont-Ferrand",
    "Besançon",
    "Orléans",
    "Mulhouse",
    "Malaucène",
    "Sète",
)
# Invoice vocabulary first (frequent), then ordinary French; drawn with Zipf weights.
_VOCABULARY_TEXT = """
facture total ttc ht tva montant date échéance règlement paiement client fournisseur
référence quantité prix unitaire désignation remise net à payer conditions virement
chèque bancaire iban bic siret siren adresse livraison commande bon numéro page taux
acompte escompte pénalités retard indemnité forfaitaire recouvrement euros article
service prestation période mois heures location maintenance contrat abonnement frais
port emballage transport main d'œuvre pièces fourniture installation dépannage
intervention déplacement matériel consommation relevé compteur électricité gaz eau
le la les de des du un une et en pour par sur avec dans au aux ce cette nous vous
est sont être avoir fait selon suivant ci-dessous ci-joint merci votre notre
bureau papier ramettes classeurs stylos cartouches encre imprimante ordinateur écran
clavier logiciel licence hébergement serveur réseau câble téléphone mobile forfait
carburant gazole péage stationnement véhicule réparation vidange pneus freinage
nettoyage locaux vitres entretien espaces verts sécurité alarme surveillance gardiennage
repas restaurant hôtel nuitée séminaire formation conseil audit expertise comptable
juridique honoraires mission étude rapport analyse déclaration fiscale sociale
boulangerie viennoiseries pain farine sucre beurre œufs lait fromage vin bière café
thé eau minérale boissons fruits légumes viande poisson surgelés épicerie conserves
quincaillerie vis boulons outillage perceuse peinture enduit plâtre carrelage bois
menuiserie fenêtres portes serrurerie vitrage isolation toiture chauffage climatisation
garantie retour avoir annulation rectificative duplicata original exemplaire signature
cachet tampon mention légale capital social rcs greffe tribunal commerce immatriculation
"""
VOCABULARY = _VOCABULARY_TEXT.split()


def _zipf_weights(n: int) -> list[float]:
    return [1.0 / (rank + 1) for rank in range(n)]


WEIGHTS = _zipf_weights(len(VOCABULARY))


@dataclass(frozen=True)
class Supplier:
    name: str
    siren: str
    vat: str
    city: str


def _siren(rng: random.Random) -> str:
    from stdnum import luhn

    body = "".join(rng.choice("0123456789") for _ in range(8))
    return body + luhn.calc_check_digit(body)


def suppliers(count: int, seed: int = 7) -> list[Supplier]:
    rng = random.Random(seed)
    found: dict[str, Supplier] = {}
    while len(found) < count:
        name = " ".join(
            p for p in (rng.choice(NAME_HEADS), rng.choice(NAME_TAILS), rng.choice(FORMS)) if p
        )
        siren = _siren(rng)
        key = (int(siren) * 100 + 12) % 97
        found.setdefault(
            name, Supplier(name, siren, f"FR{(12 + 3 * key) % 97:02d}{siren}", rng.choice(CITIES))
        )
    return list(found.values())


def _ocr_text(
    rng: random.Random, supplier: Supplier, number: str, issued: date, ttc: Decimal
) -> str:
    due = issued + timedelta(days=rng.choice((0, 30, 45, 60)))
    body = rng.choices(VOCABULARY, weights=WEIGHTS, k=rng.randint(200, 400))
    # Product references and quantities: the long tail of an OCR text's vocabulary.
    for _ in range(rng.randint(5, 15)):
        body.insert(rng.randrange(len(body)), f"REF-{rng.randint(1000, 99999)}")
        body.insert(rng.randrange(len(body)), f"{rng.randint(1, 500)},{rng.randint(0, 99):02d}")
    lines = [" ".join(body[i : i + 12]) for i in range(0, len(body), 12)]
    return "\n".join(
        [
            supplier.name.upper(),
            f"{rng.randint(1, 200)} rue de la République {rng.randint(10, 95)}000 {supplier.city}",
            f"SIRET {supplier.siren}{rng.randint(10000, 99999)} — TVA {supplier.vat}",
            f"FACTURE N° {number} du {issued:%d/%m/%Y}",
            *lines,
            f"Total TTC {ttc} € — échéance le {due:%d/%m/%Y}",
        ]
    )


def rows(
    n: int, companies: list[uuid.UUID], seed: int = 11
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]]:
    """Batches of (document rows, index rows, text rows), the same for a given seed."""
    rng = random.Random(seed)
    known = suppliers(2000)
    start = datetime(2019, 1, 2, 8, tzinfo=UTC)
    span = (datetime(2025, 12, 31, tzinfo=UTC) - start).total_seconds()
    documents: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    texts: list[dict[str, Any]] = []
    for i in range(n):
        supplier = rng.choice(known)
        company = rng.choices(companies, weights=COMPANY_SHARES)[0]
        received = start + timedelta(seconds=span * i / n + rng.random() * 3600)
        issued = (received - timedelta(days=rng.randint(0, 20))).date()
        ttc = Decimal(rng.lognormvariate(6, 1.3)).quantize(Decimal("0.01"))
        number = f"{supplier.name[:2].upper()}-{issued.year}-{rng.randint(1, 99999):05d}"
        key = uuid.UUID(int=rng.getrandbits(128), version=4)
        ocr = _ocr_text(rng, supplier, number, issued, ttc)
        documents.append(
            {
                "id": key,
                "company_id": company,
                "kind": "supplier_invoice",
                "source": "bench",
                "state": "archived",
                "original_sha256": f"{i:064x}",
                "media_type": "application/pdf",
                "format": "pdf",
                "size": 1,
                "received_at": received,
                "deposited_by": "bench",
            }
        )
        entries.append(
            {
                # Ids given here (the schema is dropped afterwards: no sequence to keep).
                "id": i + 1,
                "document_id": key,
                "company_id": company,
                "kind": "supplier_invoice",
                "state": "archived",
                "supplier_name": supplier.name,
                "supplier_key": " ".join(words(supplier.name)),
                "siren": supplier.siren,
                "vat": supplier.vat,
                "invoice_number": number,
                "issue_date": issued,
                "fiscal_year": issued.year,
                "total_ttc": ttc,
                "currency": "EUR",
                "received_at": received,
                "indexed_at": received,
            }
        )
        texts.append(
            {
                "entry_id": i + 1,
                "text": ocr,
                # What archive.search.text_values puts there: fields, then the text.
                "terms": " ".join(
                    words(f"{number} {supplier.name} {supplier.siren} {supplier.vat} {ocr}")
                ),
            }
        )
        if len(entries) == BATCH:
            yield documents, entries, texts
            documents, entries, texts = [], [], []
    if entries:
        yield documents, entries, texts


# -- load -----------------------------------------------------------------------------------
@dataclass
class Loaded:
    engine: Engine
    company: uuid.UUID
    generate_s: float
    documents_s: float
    index_s: float
    analyse_s: float
    size: str
    sample: list[dict[str, Any]]


def load(engine: Engine, n: int, console: Console) -> Loaded:
    migrate(engine)
    companies = [uuid.UUID(int=i + 1, version=4) for i in range(len(COMPANY_SHARES))]
    with engine.begin() as conn:
        conn.execute(
            insert(Company.__table__),  # type: ignore[arg-type]
            [
                {
                    "id": c,
                    "name": f"Société {i}",
                    "retention_years": 10,
                    "is_default": i == 0,
                    "created_at": datetime.now(UTC),
                }
                for i, c in enumerate(companies)
            ],
        )
    generate = documents_s = index_s = 0.0
    sample: list[dict[str, Any]] = []
    rng = random.Random(3)
    clock = time.perf_counter()
    for docs, entries, texts in rows(n, companies):
        generate += time.perf_counter() - clock
        sample += [
            {k: e[k] for k in ("siren", "invoice_number", "supplier_name", "company_id")}
            for e in rng.sample(entries, 20)
        ]
        with engine.begin() as conn:
            clock = time.perf_counter()
            conn.execute(insert(Document.__table__), docs)  # type: ignore[arg-type]
            documents_s += time.perf_counter() - clock
            clock = time.perf_counter()
            conn.execute(insert(SearchEntry.__table__), entries)  # type: ignore[arg-type]
            conn.execute(insert(SearchText.__table__), texts)  # type: ignore[arg-type]
            index_s += time.perf_counter() - clock
        clock = time.perf_counter()
    console.print(
        f"  {engine.dialect.name}: generated in {generate:.0f} s, documents {documents_s:.0f} s,"
        f" index {index_s:.0f} s"
    )
    clock = time.perf_counter()
    if engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load (visibility map and statistics).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE search_index"))
            conn.execute(text("VACUUM ANALYZE search_text"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    analyse = time.perf_counter() - clock
    if engine.dialect.name == "sqlite":
        size = f"{Path(str(engine.url.database)).stat().st_size / 2**20:.0f} MiB file"
    else:
        with engine.connect() as conn:
            table = conn.execute(
                text(
                    "SELECT pg_total_relation_size('search_index')"
                    " + pg_total_relation_size('search_text')"
                )
            ).scalar()
            gin = conn.execute(text("SELECT pg_relation_size('ix_search_text_fts')")).scalar()
        size = f"{(table or 0) / 2**20:.0f} MiB with indexes, GIN {(gin or 0) / 2**20:.0f} MiB"
    return Loaded(engine, companies[0], generate, documents_s, index_s, analyse, size, sample)


# -- queries --------------------------------------------------------------------------------
def queries(loaded: Loaded) -> dict[str, Callable[[random.Random], SearchQuery]]:
    own = [s for s in loaded.sample if s["company_id"] == loaded.company]
    content = [w for w in VOCABULARY[40:] if len(w) > 4]

    def year_window(rng: random.Random) -> dict[str, Any]:
        year = rng.choice(YEARS)
        return {"date_from": date(year, 1, 1), "date_to": date(year, 12, 31)}

    return {
        "by SIREN": lambda rng: SearchQuery(siren=rng.choice(own)["siren"]),
        "by invoice number": lambda rng: SearchQuery(number=rng.choice(own)["invoice_number"]),
        "by supplier name prefix": lambda rng: SearchQuery(
            supplier=rng.choice(own)["supplier_name"][: rng.randint(4, 12)]
        ),
        "full-text word": lambda rng: SearchQuery(q=rng.choice(content)),
        "full-text rare reference (REF-nnnnn)": lambda rng: SearchQuery(
            q=f"REF-{rng.randint(1000, 99999)}"
        ),
        "full-text word + dates + amounts": lambda rng: SearchQuery(
            q=rng.choice(content),
            amount_min=Decimal(rng.choice((50, 100, 200))),
            amount_max=Decimal(rng.choice((1000, 2000, 5000))),
            **year_window(rng),
        ),
        "sorted page 50 (3 sort keys, asc/desc)": lambda rng: SearchQuery(
            sort=rng.choice(("issue_date", "total_ttc", "received_at")),
            order=rng.choice(("asc", "desc")),
            limit=50,
            offset=49 * 50,
        ),
    }


def measure(
    loaded: Loaded, make: Callable[[random.Random], SearchQuery], runs: int
) -> tuple[float, float, int]:
    archive: Any = SimpleNamespace(engine=loaded.engine)
    principal = Principal(
        token_id=None, name="bench", role=Role.accountant, company_id=loaded.company
    )
    rng = random.Random(5)
    for _ in range(3):  # warm the caches
        search(archive, principal, make(rng))
    times, totals = [], []
    for _ in range(runs):
        query = make(rng)
        clock = time.perf_counter()
        page = search(archive, principal, query)
        times.append((time.perf_counter() - clock) * 1000)
        totals.append(page.total)
    cuts = statistics.quantiles(times, n=20, method="inclusive")
    return statistics.median(times), cuts[18], int(statistics.median(totals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--pg-url", default=PG_ADMIN_URL)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 150))
    loaded: dict[str, Loaded] = {}
    schema = f"bench_search_{uuid.uuid4().hex[:8]}"
    admin = None if args.no_pg else create_engine(args.pg_url)
    with tempfile.TemporaryDirectory(prefix="coffre-bench-search-") as tmp:
        try:
            console.print(f"loading {args.n} documents…")
            loaded["SQLite (FTS5)"] = load(
                make_engine(f"sqlite:///{tmp}/search.db"), args.n, console
            )
            if admin is not None:
                with admin.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                url = f"{args.pg_url}?options=-csearch_path%3D{schema}"
                loaded["PostgreSQL (GIN, simple)"] = load(make_engine(url), args.n, console)
            names = list(loaded)
            table = Table(
                title=f"search over {args.n} documents, {args.runs} runs per query, "
                f"{os.cpu_count()} cores (scope: one company, {COMPANY_SHARES[0]:.0%} of them)"
            )
            table.add_column("query")
            for name in names:
                table.add_column(f"{name}\np50 ms", justify="right")
                table.add_column("p95 ms", justify="right")
                table.add_column("matches", justify="right")
            for label, make in queries(next(iter(loaded.values()))).items():
                cells = []
                for name in names:
                    p50, p95, total = measure(loaded[name], make, args.runs)
                    cells += [f"{p50:.1f}", f"{p95:.1f}", str(total)]
                table.add_row(label, *cells)
            table.add_section()
            table.add_row(
                "load: index rows (bulk insert)",
                *[c for n in names for c in (f"{loaded[n].index_s:.1f} s", "", "")],
            )
            table.add_row(
                "load: document rows + (VACUUM) ANALYZE",
                *[
                    c
                    for n in names
                    for c in (f"{loaded[n].documents_s + loaded[n].analyse_s:.1f} s", "", "")
                ],
            )
            table.add_row("size", *[c for n in names for c in (loaded[n].size, "", "")])
            console.print(table)
        finally:
            for item in loaded.values():
                item.engine.dispose()
            if admin is not None:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                admin.dispose()


if __name__ == "__main__":
    main()
