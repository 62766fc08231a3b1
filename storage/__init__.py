"""Storage room: write-once object stores (local directory, S3 with Object Lock) and the
database engine, sessions and migrations. It knows no business concept."""

from storage.database import current_revision, is_sqlite, make_engine, migrate, session_scope
from storage.errors import (
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    StorageError,
    StoreUnavailable,
)
from storage.local import LocalWormStore
from storage.objects import ObjectStore, StoredObject
from storage.s3 import S3ObjectLockStore

__all__ = [
    "LocalWormStore",
    "ObjectExists",
    "ObjectLocked",
    "ObjectNotFound",
    "ObjectStore",
    "S3ObjectLockStore",
    "StorageError",
    "StoreUnavailable",
    "StoredObject",
    "current_revision",
    "is_sqlite",
    "make_engine",
    "migrate",
    "session_scope",
]
