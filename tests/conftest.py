"""Fixtures shared by every suite: a development PKI made once, real databases (SQLite
and the PostgreSQL on 127.0.0.1:5432), a real S3 server (SeaweedFS on loopback), and a
Coffre runtime assembled from Settings exactly as the CLI and the app do."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from archive.pki import ensure_dev_pki
from coffre.runtime import Runtime, build_runtime
from coffre.settings import Settings
from tests.s3server import SeaweedFSServer, start_seaweedfs

PG_ADMIN_URL = os.environ.get(
    "COFFRE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CORPORA = Path(
    os.environ.get("COFFRE_CORPORA_DIR", Path(__file__).parents[1] / "../shared/corpora")
)


@pytest.fixture(scope="session")
def corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.skip(f"corpora not found at {CORPORA} (set COFFRE_CORPORA_DIR)")
    return CORPORA.resolve()


@pytest.fixture(scope="session")
def pki_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One development PKI per test session; each runtime gets a copy (key generation is slow)."""
    directory = tmp_path_factory.mktemp("pki-template") / "dev-pki"
    ensure_dev_pki(directory)
    return directory


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFSServer]:
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the ``test`` database, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_settings(
    data_dir: Path,
    pki_template: Path,
    *,
    database_url: str | None = None,
    s3: SeaweedFSServer | None = None,
    **overrides: object,
) -> Settings:
    shutil.copytree(pki_template, data_dir / "dev-pki", dirs_exist_ok=True)
    # Tests start the embedded worker only where they exercise it.
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "queue": {"embedded_worker": False},
    }
    if s3 is not None:
        endpoint = s3.endpoint
        values["storage"] = {
            "backend": "s3",
            "s3_endpoint": endpoint.endpoint,
            "s3_access_key": endpoint.access_key,
            "s3_secret_key": endpoint.secret_key,
            "s3_bucket": f"coffre-{uuid.uuid4().hex[:12]}",
        }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(
    params=[
        pytest.param("sqlite-local", id="sqlite-local"),
        pytest.param("postgres-s3", id="postgres-s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
    ]
)
def runtime(
    request: pytest.FixtureRequest, tmp_path: Path, pki_template: Path
) -> Iterator[Runtime]:
    """Coffre as built from Settings: SQLite + local store, or PostgreSQL + S3 Object Lock."""
    if request.param == "sqlite-local":
        settings = make_settings(tmp_path / "data", pki_template)
    else:
        url = request.getfixturevalue("pg_url")
        server = request.getfixturevalue("s3_server")
        settings = make_settings(tmp_path / "data", pki_template, database_url=url, s3=server)
    rt = build_runtime(settings)
    try:
        yield rt
    finally:
        rt.archive.engine.dispose()


@pytest.fixture
def archive(runtime: Runtime):
    return runtime.archive
