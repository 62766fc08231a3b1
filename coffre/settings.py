"""Coffre's one Settings object (environment prefix ``COFFRE_``, nested sections with ``__``).

Built by the app factory and the CLI, never at import time. The embedded default keeps
everything under ``COFFRE_DATA_DIR``; production refuses development secrets and
development certificates (see :func:`production_problems`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_S3_SECRET = "coffre-dev-secret"  # noqa: S105 - the documented development default


class StorageSettings(BaseModel):
    backend: Literal["local", "s3"] = "local"
    #: Local write-once store; default ``DATA_DIR/objects``.
    local_dir: Path | None = None
    s3_endpoint: str = "127.0.0.1:8333"
    s3_access_key: str = "coffre-dev"
    s3_secret_key: SecretStr = SecretStr(DEV_S3_SECRET)
    #: Read the secret key from this file instead (Docker/Kubernetes secrets).
    s3_secret_key_file: Path | None = None
    s3_bucket: str = "coffre"
    s3_secure: bool = False
    s3_region: str | None = None

    def secret_key(self) -> str:
        if self.s3_secret_key_file is not None:
            return self.s3_secret_key_file.read_text().strip()
        return self.s3_secret_key.get_secret_value()


class SealSettings(BaseModel):
    #: The organisation's seal (PKCS#12). None: the generated development seal.
    pkcs12_path: Path | None = None
    pkcs12_password_file: Path | None = None
    #: PKCS#11 (HSM) instead of PKCS#12: library, token label, key label, PIN file.
    pkcs11_lib: Path | None = None
    pkcs11_token_label: str | None = None
    pkcs11_key_label: str | None = None
    pkcs11_pin_file: Path | None = None
    level: Literal["B-T", "B-LT", "B-LTA"] = "B-LT"
    #: Extra trust roots (PEM) for validation; the development root is added in embedded mode.
    trust_roots: list[Path] = Field(default_factory=list)
    crls: list[Path] = Field(default_factory=list)


class TimestampSettings(BaseModel):
    #: RFC 3161 TSA URL. None: Coffre's own timestamp service, in process.
    url: str | None = None
    #: Certificate and key of Coffre's own TSA; None: the generated development TSA.
    tsa_cert: Path | None = None
    tsa_key: Path | None = None
    tsa_chain: list[Path] = Field(default_factory=list)


class JournalSettings(BaseModel):
    anchor_every: int = 100
    anchor_max_age_hours: int = 24


class ArchiveSettings(BaseModel):
    retention_years: int = 10
    default_company_name: str = "Default company"
    default_company_siren: str | None = None
    organisation: str = "Coffre"
    max_upload_mb: int = 200


class CaptureSettings(BaseModel):
    #: Where the e-invoice rule artefacts are (EN 16931 XSLT, XSD, BR-FR); default: corpora_dir.
    rules_dir: Path | None = None
    #: Tesseract languages for the OCR text layer.
    ocr_languages: str = "fra+eng"
    #: Seconds one document's conversion and OCR may take before it is retried.
    ocr_timeout: float = 600.0
    #: Pages OCR'd in parallel inside one job (each tesseract single-threaded).
    ocr_jobs: int = 1
    #: Scans below this resolution are flagged (and still archived).
    min_dpi: int = 200
    #: Images with more pixels than this are refused as decompression bombs.
    max_pixels: int = 200_000_000
    lease_seconds: int = 1800
    max_attempts: int = 3


class QueueSettings(BaseModel):
    #: huey queue: ``sqlite:///PATH`` (embedded; default DATA_DIR/queue.db) or
    #: ``redis://HOST:6379/0`` for workers on several machines.
    url: str | None = None
    #: Jobs one worker process runs at once. Each OCR is a single-threaded child process;
    #: one more job than cores lets a job's own work (pixel proof, seal, store) overlap
    #: the others' OCR.
    concurrency: int = Field(default_factory=lambda: (os.cpu_count() or 1) + 1)
    #: ``coffre serve`` also runs a worker in process (embedded default). Production runs
    #: ``coffre worker`` processes instead.
    embedded_worker: bool | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COFFRE_", env_nested_delimiter="__", extra="ignore"
    )

    mode: Literal["embedded", "production"] = "embedded"
    data_dir: Path = Path("./coffre-data")
    #: SQLAlchemy URL; default: SQLite in the data directory.
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    corpora_dir: Path = Path("../shared/corpora")

    storage: StorageSettings = Field(default_factory=StorageSettings)
    seal: SealSettings = Field(default_factory=SealSettings)
    timestamp: TimestampSettings = Field(default_factory=TimestampSettings)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'coffre.db').resolve()}"

    @property
    def objects_dir(self) -> Path:
        return self.storage.local_dir or self.data_dir / "objects"

    @property
    def queue_url(self) -> str:
        return self.queue.url or f"sqlite:///{(self.data_dir / 'queue.db').resolve()}"

    @property
    def run_embedded_worker(self) -> bool:
        if self.queue.embedded_worker is not None:
            return self.queue.embedded_worker
        return self.mode == "embedded"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "dev-pki"


def production_problems(settings: Settings) -> list[str]:
    """Why these settings are not fit for production (empty when they are)."""
    problems: list[str] = []
    if settings.db_url.startswith("sqlite"):
        problems.append("COFFRE_DATABASE_URL must name a PostgreSQL database")
    if settings.storage.backend != "s3":
        problems.append("COFFRE_STORAGE__BACKEND must be s3 (Object Lock)")
    if settings.storage.s3_secret_key_file is None and (
        settings.storage.s3_secret_key.get_secret_value() == DEV_S3_SECRET
    ):
        problems.append("COFFRE_STORAGE__S3_SECRET_KEY is the development default")
    if settings.seal.pkcs12_path is None and settings.seal.pkcs11_lib is None:
        problems.append("no seal certificate configured (COFFRE_SEAL__PKCS12_PATH or PKCS#11)")
    if settings.queue_url.startswith("sqlite"):
        problems.append("COFFRE_QUEUE__URL must name a Redis server (redis://...)")
    if settings.timestamp.url is None and settings.timestamp.tsa_cert is None:
        problems.append("no TSA configured (COFFRE_TIMESTAMP__URL or COFFRE_TIMESTAMP__TSA_CERT)")
    return problems
