"""Production mode refuses development certificates and default secrets."""

from __future__ import annotations

import pytest

from coffre.runtime import ConfigurationError, build_runtime
from coffre.settings import Settings, production_problems


def _production(tmp_path, pki_template, **extra) -> Settings:
    secret = tmp_path / "s3.secret"
    secret.write_text("a-real-secret")
    return Settings(
        mode="production",
        data_dir=tmp_path / "data",
        database_url="postgresql+psycopg://coffre@db/coffre",
        storage={"backend": "s3", "s3_secret_key_file": secret},
        seal={
            "pkcs12_path": pki_template / "dev-seal.p12",
            "pkcs12_password_file": pki_template / "dev-seal.password",
        },
        timestamp={"url": "http://tsa.example.invalid/tsa"},
        queue={"url": "redis://redis:6379/0"},
        **extra,
    )


def test_complete_production_settings_have_no_problem(tmp_path, pki_template):
    assert production_problems(_production(tmp_path, pki_template)) == []


def test_production_refuses_the_development_seal_even_when_named_explicitly(tmp_path, pki_template):
    with pytest.raises(ConfigurationError, match="development seal certificate"):
        build_runtime(_production(tmp_path, pki_template))


def test_production_lists_every_development_default():
    problems = production_problems(Settings(mode="production"))
    assert len(problems) == 6
    assert any("S3_SECRET_KEY" in p for p in problems)
    assert any("QUEUE__URL" in p for p in problems)
    assert any("seal certificate" in p for p in problems)
