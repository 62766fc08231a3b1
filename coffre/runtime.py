"""Turns Settings into running parts: engine, store, PKI, TSA, sealer, journal.

The one place where the embedded default and production differ; every use case below
receives the same :class:`archive.context.Archive` either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from archive.context import Archive
from archive.integrity import integrity_sweep, sweep_due
from archive.journal import Journal
from archive.models import Company
from archive.pki import (
    DevPki,
    cert_sha256,
    ensure_dev_pki,
    is_development_certificate,
    load_certificates,
    load_private_key_pem,
)
from archive.seal import Sealer, SealIdentity
from archive.service import ensure_default_company, record_configuration
from archive.timestamp import Timestamper
from archive.tsa import TimestampAuthority
from capture.einvoice.validate import Validator
from capture.pipeline import Pipeline, ScanOptions
from capture.queue import WorkQueue
from coffre.settings import Settings, production_problems
from storage import (
    LocalWormStore,
    ObjectStore,
    S3ObjectLockStore,
    make_engine,
    migrate,
    session_scope,
)


class ConfigurationError(Exception):
    """Settings that Coffre refuses to run with; the message says what to change."""


@dataclass
class Runtime:
    settings: Settings
    archive: Archive
    tsa: TimestampAuthority | None
    dev_pki: DevPki | None
    _validator: Validator | None = None
    _pipeline: Pipeline | None = None
    _queue: WorkQueue | None = None

    def validator(self) -> Validator:
        """The e-invoice validator, built on first use (its stylesheets compile lazily)."""
        if self._validator is None:
            rules = self.settings.capture.rules_dir or self.settings.corpora_dir
            self._validator = Validator(rules)
        return self._validator

    @property
    def pipeline(self) -> Pipeline:
        """Capture intake and processing over this runtime's archive."""
        if self._pipeline is None:
            c = self.settings.capture
            options = ScanOptions(
                languages=c.ocr_languages,
                ocr_timeout=c.ocr_timeout,
                ocr_jobs=c.ocr_jobs,
                min_dpi=c.min_dpi,
                max_pixels=c.max_pixels,
                lease_seconds=c.lease_seconds,
                max_attempts=c.max_attempts,
            )
            self._pipeline = Pipeline(self.archive, self.validator, options)
        return self._pipeline

    @property
    def queue(self) -> WorkQueue:
        """The job queue (producers and workers build it from the same URL)."""
        if self._queue is None:
            self._queue = WorkQueue.from_url(self.settings.queue_url)
        return self._queue

    def bind_worker(self) -> WorkQueue:
        """The queue with this runtime's pipeline bound to its tasks (a worker)."""
        pipeline = self.pipeline
        archive = self.archive

        def daily_integrity_sweep() -> None:
            if sweep_due(archive):
                integrity_sweep(archive, actor=f"system:scheduler:{pipeline.worker_name}")

        self.queue.bind(pipeline.process, pipeline.stale, daily_integrity_sweep)
        return self.queue


def _read_secret(path: Path | None) -> bytes | None:
    return path.read_bytes().strip() if path else None


def build_store(settings: Settings) -> ObjectStore:
    if settings.storage.backend == "s3":
        s = settings.storage
        return S3ObjectLockStore(
            s.s3_endpoint,
            s.s3_access_key,
            s.secret_key(),
            s.s3_bucket,
            secure=s.s3_secure,
            region=s.s3_region,
        )
    return LocalWormStore(settings.objects_dir)


def _seal_identity(settings: Settings, dev: DevPki | None) -> SealIdentity:
    seal = settings.seal
    if seal.pkcs11_lib is not None:
        if not (seal.pkcs11_token_label and seal.pkcs11_key_label):
            raise ConfigurationError("PKCS#11 needs COFFRE_SEAL__PKCS11_TOKEN_LABEL and _KEY_LABEL")
        pin = _read_secret(seal.pkcs11_pin_file)
        return SealIdentity.from_pkcs11(
            seal.pkcs11_lib,
            seal.pkcs11_token_label,
            seal.pkcs11_key_label,
            pin.decode() if pin else None,
        )
    if seal.pkcs12_path is not None:
        return SealIdentity.from_pkcs12(seal.pkcs12_path, _read_secret(seal.pkcs12_password_file))
    if dev is None:
        raise ConfigurationError("no seal configured")
    return SealIdentity.from_pkcs12(dev.seal_p12, dev.seal_password())


def build_runtime(settings: Settings, *, migrate_db: bool = True) -> Runtime:
    production = settings.mode == "production"
    if production and (problems := production_problems(settings)):
        raise ConfigurationError(
            "refusing to start in production mode:\n  - " + "\n  - ".join(problems)
        )
    needs_dev = (settings.seal.pkcs12_path is None and settings.seal.pkcs11_lib is None) or (
        settings.timestamp.url is None and settings.timestamp.tsa_cert is None
    )
    dev = (
        ensure_dev_pki(settings.pki_dir, organisation=settings.archive.organisation)
        if needs_dev
        else None
    )

    trust_roots: list[Any] = []
    crls: list[bytes] = []
    if dev is not None:
        trust_roots.append(dev.load_root())
        crls.append(dev.crl.read_bytes())
    for path in settings.seal.trust_roots:
        trust_roots.extend(load_certificates(path))
    for path in settings.seal.crls:
        crls.append(path.read_bytes())

    tsa: TimestampAuthority | None = None
    if settings.timestamp.tsa_cert is not None and settings.timestamp.tsa_key is not None:
        cert = load_certificates(settings.timestamp.tsa_cert)[0]
        key = load_private_key_pem(settings.timestamp.tsa_key.read_bytes())
        chain = [c for p in settings.timestamp.tsa_chain for c in load_certificates(p)]
        tsa = TimestampAuthority(cert, key, chain)
    elif dev is not None:
        key, cert = dev.load_tsa()
        tsa = TimestampAuthority(cert, key, [dev.load_root()])
    if production and tsa is not None and is_development_certificate(tsa.cert):
        raise ConfigurationError("refusing a development TSA certificate in production mode")

    timestamper = (
        Timestamper.http(settings.timestamp.url)
        if settings.timestamp.url
        else Timestamper.local(tsa)  # type: ignore[arg-type]
    )
    identity = _seal_identity(settings, dev)
    if production and is_development_certificate(identity.cert):
        raise ConfigurationError("refusing a development seal certificate in production mode")
    sealer = Sealer(
        identity, timestamper, level=settings.seal.level, trust_roots=trust_roots, crls=crls
    )

    def company_sealer(company: Company) -> Sealer:
        password = (
            _read_secret(Path(company.seal_password_file)) if company.seal_password_file else None
        )
        own = SealIdentity.from_pkcs12(Path(str(company.seal_pkcs12_path)), password)
        return Sealer(
            own, timestamper, level=settings.seal.level, trust_roots=trust_roots, crls=crls
        )

    engine = make_engine(settings.db_url)
    if migrate_db:
        migrate(engine)
    archive = Archive(
        engine=engine,
        store=build_store(settings),
        sealer=sealer,
        timestamper=timestamper,
        journal=Journal(
            anchor_every=settings.journal.anchor_every,
            anchor_max_age=timedelta(hours=settings.journal.anchor_max_age_hours),
        ),
        trust_roots=trust_roots,
        crls=crls,
        default_retention_years=settings.archive.retention_years,
        max_upload_bytes=settings.archive.max_upload_mb * 1024 * 1024,
        company_sealer_factory=company_sealer,
    )
    with session_scope(engine) as session:
        ensure_default_company(
            session,
            name=settings.archive.default_company_name,
            siren=settings.archive.default_company_siren,
        )
        record_configuration(archive, session, _journaled_configuration(settings, archive, tsa))
    return Runtime(settings=settings, archive=archive, tsa=tsa, dev_pki=dev)


def _journaled_configuration(
    settings: Settings, archive: Archive, tsa: TimestampAuthority | None
) -> dict[str, Any]:
    """What the journal records of the configuration: settings (secrets masked by pydantic)
    and the fingerprints of the certificates in force."""
    return {
        "settings": settings.model_dump(mode="json", exclude={"database_url"}),
        "database": settings.db_url.split("@")[-1],
        "seal_cert_sha256": archive.sealer.identity.cert_sha256,
        "tsa": settings.timestamp.url or (tsa.cert_sha256 if tsa else None),
        "trust_roots": sorted(cert_sha256(root) for root in archive.trust_roots),
    }
