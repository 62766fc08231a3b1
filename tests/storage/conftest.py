"""Fixtures of the storage contract suite: one SeaweedFS per session, a fresh store per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage.local import LocalWormStore
from storage.objects import ObjectStore
from storage.s3 import S3ObjectLockStore
from tests.s3server import S3Endpoint, SeaweedFSServer, start_seaweedfs


class FakeClock:
    """A settable clock for the local store, so retention can pass without waiting."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def seaweedfs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SeaweedFSServer]:
    """One real S3 gateway for the whole session. Fails (never skips) if `weed` is missing.

    Shares the suite-wide ``s3_server`` when a parent conftest provides one, so a full run
    starts a single SeaweedFS.
    """
    try:
        shared: SeaweedFSServer | None = request.getfixturevalue("s3_server")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared
        return
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_endpoint(seaweedfs: SeaweedFSServer) -> S3Endpoint:
    return seaweedfs.endpoint


@pytest.fixture
def bucket_name() -> str:
    return f"coffre-test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def make_s3_store(s3_endpoint: S3Endpoint) -> Callable[..., S3ObjectLockStore]:
    """Build a store on the session's server for a given bucket and options."""

    def make(bucket: str, **options: Any) -> S3ObjectLockStore:
        return S3ObjectLockStore(
            s3_endpoint.endpoint,
            s3_endpoint.access_key,
            s3_endpoint.secret_key,
            bucket,
            **options,
        )

    return make


@pytest.fixture
def s3_store(
    make_s3_store: Callable[..., S3ObjectLockStore], bucket_name: str
) -> S3ObjectLockStore:
    """A store on a new bucket (created with Object Lock on first use)."""
    return make_s3_store(bucket_name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 15, 9, 30, tzinfo=UTC))


@pytest.fixture
def local_store(tmp_path: Path, clock: FakeClock) -> LocalWormStore:
    """A local store on a fake clock (see :class:`FakeClock`)."""
    return LocalWormStore(tmp_path / "store", clock=clock)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each contract test runs once per backend."""
    if request.param == "local":
        return LocalWormStore(request.getfixturevalue("tmp_path") / "store")
    store: ObjectStore = request.getfixturevalue("s3_store")
    return store


@pytest.fixture
def in_one_hour() -> datetime:
    """A retention end in the future, already on a whole second."""
    return (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
