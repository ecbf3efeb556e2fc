"""``abm doctor``: what an operator should fix before it bites, one line a check.

Each check in :data:`CHECKS` returns ``[(level, text)]`` with level ``ok``, ``warn`` or
``fail``; ``abm doctor`` prints them all and exits 1 when any failed (warnings alone
exit 0). Add a check by appending a function to :data:`CHECKS`.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from flask.cli import with_appcontext
from sqlalchemy import text

from abm.db import db
from abm.redis_conn import get_redis, persistence_problem
from abm.services import connectors as service

Finding = tuple[str, str]


def check_database() -> list[Finding]:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - a check reports, it never raises
        return [("fail", f"database: unreachable ({type(exc).__name__})")]
    return [("ok", "database: reachable")]


def check_connector_versions() -> list[Finding]:
    """Provider API versions of the enabled connectors: warn 60 days before a sunset, fail after."""

    problems = service.version_problems()
    if not problems:
        return [("ok", "connectors: every enabled connector uses a provider API version that is served")]
    return [(status["level"], f"connector {name}: {status['message']}") for name, status in problems]


def check_redis_persistence() -> list[Finding]:
    """A Redis without an append-only file loses queued events and jobs when it restarts."""

    try:
        problem = persistence_problem(get_redis())
    except Exception as exc:  # noqa: BLE001 - a check reports, it never raises
        return [("fail", f"redis: unreachable ({type(exc).__name__})")]
    return [("warn", f"redis: {problem}")] if problem else [("ok", "redis: keeps an append-only file")]


CHECKS: list[Callable[[], list[Finding]]] = [check_database, check_connector_versions, check_redis_persistence]


@click.command("doctor", help="Check the installation (database, connectors' provider API versions, Redis persistence); "
                              "exit 1 when a check fails.")
@with_appcontext
def doctor():
    failed = False
    for check in CHECKS:
        for level, message in check():
            failed = failed or level == "fail"
            click.echo(f"{level.upper():4}  {message}")
    if failed:
        raise SystemExit(1)


commands = [doctor]
