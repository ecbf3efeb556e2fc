"""Finding 8 of issue 13 (secrets): production accepted a 32-character secret of one
repeated letter. Now a production secret needs about 128 bits by a pessimistic
estimate, and the error says how to make one."""

from __future__ import annotations

import secrets

import pytest
from cryptography.fernet import Fernet

import config

WEAK = ["a" * 32, "k" * 40, "abcdefghijklmnopqrstuvwxyzabcdef", "0123456789" * 4, "ab" * 20,
        "my-company-abm-secret-key-2026!!"]


@pytest.fixture
def production(monkeypatch, tmp_path):
    monkeypatch.setenv("ABM_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("ABM_ENV", "production")
    monkeypatch.setenv("ABM_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("ABM_DATABASE_URL", "postgresql://x/y")
    monkeypatch.setenv("ABM_REDIS_URL", "redis://x")
    return monkeypatch


@pytest.mark.parametrize("weak", WEAK)
def test_a_guessable_secret_is_refused_and_the_error_says_how_to_make_one(production, weak):
    production.setenv("ABM_SECRET_KEY", weak)
    with pytest.raises(config.ConfigError) as err:
        config.load().validate()
    assert "ABM_SECRET_KEY is not random enough" in str(err.value)
    assert "secrets.token_urlsafe(48)" in str(err.value)


def test_random_secrets_pass(production):
    for _ in range(200):
        production.setenv("ABM_SECRET_KEY", secrets.token_urlsafe(32))
        config.load().validate()
    production.setenv("ABM_SECRET_KEY", secrets.token_hex(32))
    config.load().validate()


def test_a_valid_but_empty_fernet_key_is_refused(production):
    production.setenv("ABM_SECRET_KEY", secrets.token_urlsafe(48))
    production.setenv("ABM_ENCRYPTION_KEYS", "A" * 43 + "=")  # a Fernet key of 32 zero bytes
    with pytest.raises(config.ConfigError, match="ABM_ENCRYPTION_KEYS holds a key that is not random enough"):
        config.load().validate()
