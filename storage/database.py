"""Database engines, sessions and migrations (SQLite embedded, PostgreSQL in production).

This room knows how to connect and how to bring a schema to its latest revision; it knows
nothing of the tables' meaning. The use cases own their transactions: nothing here commits.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``, with the SQLite settings a write-heavy journal needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _serialise_sqlite_writers(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    return create_engine(url, echo=echo, pool_pre_ping=True)


def _serialise_sqlite_writers(engine: Engine) -> None:
    """Take SQLite's write lock when a transaction begins.

    pysqlite's deferred transactions let two writers both read the journal head and then
    deadlock on the upgrade to a write lock; ``BEGIN IMMEDIATE`` queues them instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


_READ_ONLY = "coffre_read_only"


@contextmanager
def _sqlite_writer_lock(engine: Engine) -> Iterator[None]:
    """Queue SQLite writers of every process on a file lock.

    SQLite's own busy handler polls with growing sleeps (up to 100 ms), so two processes
    contending for the write lock waste most of their time asleep; ``flock`` wakes the next
    writer as soon as the previous one is done.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.writer.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """One unit of work: committed when the block ends normally, rolled back otherwise.

    ``read_only`` scopes take no write lock (SQLite: a deferred transaction), so readers
    never queue behind writers; a write inside one is a bug.
    """
    if read_only:
        with Session(
            engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        ) as session:
            # Closing ends the transaction without expiring what was loaded.
            yield session
        return
    with _sqlite_writer_lock(engine), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(engine: Engine, metadata: MetaData | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["engine"] = engine
    config.attributes["target_metadata"] = metadata
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
