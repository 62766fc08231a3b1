"""Storage room: write-once object stores (local directory, S3 with Object Lock) and the
database engine, sessions and migrations. It knows no business concept."""

from storage.database import current_revision, is_sqlite, make_engine, migrate, session_scope
from storage.errors import (
    InvalidKey,
    InvalidRetention,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    SourceChanged,
    StorageError,
    StoreMisconfigured,
    StoreUnavailable,
    UnmanagedObject,
)
from storage.local import LocalWormStore
from storage.objects import (
    MAX_SEGMENT_BYTES,
    ObjectStore,
    PutItem,
    StoredObject,
    validate_key,
)
from storage.s3 import S3ObjectLockStore

__all__ = [
    "MAX_SEGMENT_BYTES",
    "InvalidKey",
    "InvalidRetention",
    "LocalWormStore",
    "ObjectExists",
    "ObjectLocked",
    "ObjectNotFound",
    "ObjectStore",
    "PutItem",
    "S3ObjectLockStore",
    "SourceChanged",
    "StorageError",
    "StoreMisconfigured",
    "StoreUnavailable",
    "StoredObject",
    "UnmanagedObject",
    "current_revision",
    "is_sqlite",
    "make_engine",
    "migrate",
    "session_scope",
    "validate_key",
]
