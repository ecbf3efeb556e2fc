"""Shared fixtures: the app on SQLite and on a real PostgreSQL, a real Redis.

Every test that takes ``app`` (or a fixture built on it) runs once per backend.
Databases are migrated with Alembic once per session, and emptied between tests.

Environment:
- ``ABM_TEST_BACKENDS``: comma list, default ``sqlite,postgresql``.
- ``ABM_TEST_PG_URL``: the PostgreSQL server (default postgresql://postgres@127.0.0.1:5432/postgres);
  ``ABM_TEST_PG_DB``: the test database created there (default ``abm_test``).
- ``ABM_TEST_REDIS_URL``: default redis://127.0.0.1:6379/15 (flushed between tests).
- ``CI=true``: a PostgreSQL or Redis that cannot be reached fails the run instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, text

import config
from abm import create_app
from abm.auth import issue_token
from abm.db import Base, db
from abm.migrate import upgrade
from abm.services.users import create_user

#: The real-browser fixtures, registered once for the whole suite: one Playwright per
#: process (a second one started beside it refuses to run).
pytest_plugins = ["tests.web.browser"]

IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = [b.strip() for b in os.environ.get("ABM_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
PG_SERVER = os.environ.get("ABM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("ABM_TEST_PG_DB", "abm_test")
REDIS_URL = os.environ.get("ABM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: The tests' provider servers listen on 127.0.0.1; the guard against private connector
#: targets has tests of its own (tests/connectors/test_targets.py), which unset this.
os.environ.setdefault("ABM_ALLOW_PRIVATE_URLS", "1")


def unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI (CI=true) and could not be reached")
    pytest.skip(f"{what} not reachable")


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def redis_url():
    client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis_lib.ConnectionError:
        unavailable(f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("instance")
    os.environ["ABM_INSTANCE_PATH"] = str(path)
    return path


def _make_pg_database() -> str:
    admin = create_engine(_psycopg_url(PG_SERVER), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_DB}"'))
    except Exception as exc:  # noqa: BLE001 - turned into a skip or a CI failure
        unavailable(f"PostgreSQL at {PG_SERVER} ({type(exc).__name__}: {exc})")
    finally:
        admin.dispose()
    base = PG_SERVER.rsplit("/", 1)[0]
    return f"{base}/{PG_DB}"


_migrated: dict[str, str] = {}


def _drop_pg_database() -> None:
    admin = create_engine(_psycopg_url(PG_SERVER), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
    finally:
        admin.dispose()


def pytest_sessionfinish(session, exitstatus):
    """The PostgreSQL database the session made is dropped at its end (docs/testing.md)."""
    if "postgresql" in _migrated and not hasattr(session.config, "workerinput"):
        _drop_pg_database()


def database_url(backend: str, instance: Path) -> str:
    """A migrated database of ``backend``, made once per test session."""
    if backend not in _migrated:
        if backend == "sqlite":
            url = f"sqlite:///{instance / 'test.sqlite3'}"
        elif backend == "postgresql":
            url = _make_pg_database()
        else:
            raise ValueError(backend)
        upgrade(url)
        _migrated[backend] = url
    return _migrated[backend]


def empty_database(engine) -> None:
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # DELETE of a test's few rows is several times faster than TRUNCATE of every table
            for t in reversed(tables):
                conn.execute(text(f'DELETE FROM "{t}"'))
            sequences = conn.execute(text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"))
            for (seq,) in sequences.all():
                conn.execute(text(f'ALTER SEQUENCE "{seq}" RESTART'))
        else:
            for t in reversed(tables):
                conn.execute(text(f'DELETE FROM "{t}"'))
            conn.execute(text("DELETE FROM sqlite_sequence")) if conn.execute(
                text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first() else None


def make_app(backend: str, instance: Path, redis_url: str, **overrides):
    os.environ["ABM_INSTANCE_PATH"] = str(instance)
    cfg = config.TestingConfig()
    cfg.DATABASE_URL = database_url(backend, instance)
    cfg.REDIS_URL = redis_url
    cfg.BASE_URL = "http://abm.test"
    cfg.OUTBOX_DIR = str(instance / "outbox")
    settings = {"WTF_CSRF_ENABLED": False, "SERVER_NAME": None}
    settings.update(overrides)
    return create_app(cfg, **settings)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def app(backend, instance_dir, redis_url):
    """The app on an empty, migrated database of each backend and an empty Redis db."""
    application = make_app(backend, instance_dir, redis_url)
    empty_database(db.engine)
    redis_lib.Redis.from_url(redis_url).flushdb()
    with application.app_context():
        yield application
        db.session.rollback()
    db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    """make_user(role, email=None, password='password123') -> User."""
    counter = {"n": 0}

    def _make(role: str = "admin", email: str | None = None, password: str = "password123", name: str = ""):
        counter["n"] += 1
        return create_user(email=email or f"{role}{counter['n']}@example.com", role=role,
                           password=password, name=name)

    return _make


@pytest.fixture
def api(app, make_user):
    """api(role) -> a test client whose requests carry a bearer token for a new user of that role."""

    def _client(role: str = "admin", user=None):
        user = user or make_user(role)
        token = issue_token(user, "test")
        db.session.commit()
        c = app.test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        c.user = user
        return c

    return _client
