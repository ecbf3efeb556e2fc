"""The foundation: configuration, health, auth tokens, settings with history, the CLI."""

from __future__ import annotations

import secrets

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.fernet import Fernet
from flask import g
from sqlalchemy import select, text

import config
from abm.auth import issue_token, user_from_bearer
from abm.db import Base, db
from abm.errors import ValidationError
from abm.models import ApiToken
from abm.services import settings


def test_production_refuses_to_start_without_secrets(monkeypatch):
    monkeypatch.setenv("ABM_ENV", "production")
    for var in ("ABM_SECRET_KEY", "ABM_ENCRYPTION_KEYS", "ABM_DATABASE_URL", "ABM_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(config.ConfigError) as err:
        config.load().validate()
    text = str(err.value)
    assert "ABM_SECRET_KEY" in text and "ABM_ENCRYPTION_KEYS" in text and "ABM_REDIS_URL" in text


def test_production_refuses_placeholder_secret(monkeypatch):
    monkeypatch.setenv("ABM_ENV", "production")
    monkeypatch.setenv("ABM_SECRET_KEY", "change-me")
    monkeypatch.setenv("ABM_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("ABM_DATABASE_URL", "postgresql://x/y")
    monkeypatch.setenv("ABM_REDIS_URL", "redis://x")
    with pytest.raises(config.ConfigError, match="ABM_SECRET_KEY"):
        config.load().validate()
    monkeypatch.setenv("ABM_SECRET_KEY", "k" * 40)  # long but guessable: tests/security/test_secrets.py
    with pytest.raises(config.ConfigError, match="not random enough"):
        config.load().validate()
    monkeypatch.setenv("ABM_SECRET_KEY", secrets.token_urlsafe(48))
    config.load().validate()  # complete and real: starts


def test_unknown_environment_is_refused(monkeypatch):
    monkeypatch.setenv("ABM_ENV", "staging")
    with pytest.raises(config.ConfigError, match="staging"):
        config.load()


@pytest.mark.parametrize("value", ["0", "two", "-1", "65"])
def test_a_bad_number_of_dispatchers_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("ABM_DISPATCHERS", value)
    with pytest.raises(config.ConfigError, match=f"ABM_DISPATCHERS='{value}' is not a whole number from 1 to 64"):
        config.load().validate()
    monkeypatch.setenv("ABM_DISPATCHERS", "3")
    cfg = config.load()
    cfg.validate()
    assert cfg.ABM_DISPATCHERS == 3


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "redis": "ok"}


def test_api_tokens_are_stored_hashed_and_authenticate(app, make_user):
    user = make_user("manager")
    token = issue_token(user, "laptop")
    db.session.commit()
    stored = db.session.execute(select(ApiToken)).scalar_one()
    assert token not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        assert user_from_bearer().id == user.id
    with app.test_request_context(headers={"Authorization": f"Bearer {token}x"}):
        assert user_from_bearer() is None


def test_settings_changes_are_validated_and_versioned(app, make_user):
    admin = make_user("admin")
    assert settings.current()["half_life_days"] == 30
    with pytest.raises(ValidationError) as err:
        settings.update({"thresholds": {"warm": 60, "hot": 50}, "half_life_days": -1}, admin.id)
    paths = {d["path"] for d in err.value.details}
    assert "half_life_days" in paths
    with pytest.raises(ValidationError) as err:
        settings.update({"colour": "blue"}, admin.id)
    assert err.value.details == [{"path": "colour", "message": "unknown setting"}]
    settings.update({"half_life_days": 14}, admin.id)
    settings.update({"thresholds": {"warm": 10, "hot": 40}}, admin.id)

    g.pop("abm_settings", None)
    now = settings.current()
    assert now["half_life_days"] == 14 and now["thresholds"] == {"warm": 10, "hot": 40}
    assert [h.version for h in settings.history()] == [2, 1]


def test_cli_creates_users_and_tokens(runner):
    result = runner.invoke(args=["users", "create", "Ann@Example.com", "--role", "ae"])
    assert result.exit_code == 0, result.output
    assert "created ae ann@example.com" in result.output and "password:" in result.output
    result = runner.invoke(args=["tokens", "create", "ann@example.com"])
    assert result.exit_code == 0 and result.output.strip().startswith("abm_")
    result = runner.invoke(args=["tokens", "create", "nobody@example.com"])
    assert result.exit_code == 1 and "no user with email" in result.output
    result = runner.invoke(args=["users", "create", "ann@example.com", "--role", "ae"])
    assert result.exit_code == 1 and "exists already" in result.output


def test_migrations_match_the_models(app):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # expression indexes cannot be reflected on SQLite; everything else must match
    diff = [d for d in diff if not (d[0] == "add_index" and d[1].name == "ix_accounts_lower_name")]
    assert diff == []


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_kpis_event_indexes_carry_what_the_kpis_read(app):
    """The KPIs' probes and lead scan are index-only only while these INCLUDE columns are
    there; Alembic's comparison above does not see them."""
    defs = dict(db.session.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'")).all())
    assert defs["ix_events_account_at"].endswith("(account_id, occurred_at) INCLUDE (type)")
    assert defs["ix_events_type_at"].endswith("(type, occurred_at) INCLUDE (account_id, contact_id)")
