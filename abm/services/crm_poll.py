"""The periodic CRM poll: stages and opportunities in from HubSpot and Salesforce.

For every enabled connector whose type can ``poll`` (hubspot, salesforce),
:func:`poll_connector` calls ``poll(cursor)`` with the cursor kept in the connector's
state (``ConnectorConfig.state["crm_poll"]["cursor"]``), applies the events with
:func:`abm.services.crm_sync.apply` and saves the new cursor **in the same commit** as
the changes the events made. So a poll that dies anywhere (the CRM failing half-way,
the worker killed) leaves either both or neither: the next run starts from the last
cursor saved, loses nothing and applies nothing twice (and applying an event again is
harmless anyway: a stage already held is not moved, opportunities are upserted by
their CRM id). It repeats while the connector says ``cursor["more"]``, up to
``max_rounds`` rounds a run; the next run goes on from there.

A connector error (retryable or not) ends that connector's run: the cursor stays, the
error is kept in the state (``last_error``) for the Connectors page, and the other
connectors are polled all the same. One poller per connector at a time (a Redis lock).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from sqlalchemy import select

from abm.db import db, utcnow
from abm.models import ConnectorConfig
from abm.redis_conn import get_redis
from abm.services import connectors as connector_service
from abm.services import crm_sync
from abm.services.inbound import to_queue_json
from connectors.base import ConnectorError

log = logging.getLogger(__name__)

STATE_KEY = "crm_poll"
LOCK_KEY = "abm:crm-poll:{name}"
#: Rounds of ``poll`` one run makes for one connector (each reads up to ``max_pages`` pages).
MAX_ROUNDS = 20


def crm_connectors(feature: str) -> list[ConnectorConfig]:
    """Enabled connectors whose type has the method ``feature`` (``poll``, ``write_scores``)."""
    rows = db.session.execute(select(ConnectorConfig).where(ConnectorConfig.enabled.is_(True))
                              .order_by(ConnectorConfig.name)).scalars()
    found = []
    for row in rows:
        cls = connector_service.type_of(row)
        if cls is not None and callable(getattr(cls, feature, None)):
            found.append(row)
    return found


def cursor_of(config: ConnectorConfig) -> dict | None:
    return ((config.state or {}).get(STATE_KEY) or {}).get("cursor")


def _set_poll_state(config: ConnectorConfig, **changes: Any) -> None:
    state = dict(config.state or {})
    section = dict(state.get(STATE_KEY) or {})
    section.update(changes)
    state[STATE_KEY] = section
    config.state = state


def poll_connector(name: str, max_rounds: int = MAX_ROUNDS, max_pages: int | None = None) -> dict:
    """Poll one CRM connector until it has nothing more (or ``max_rounds``); counts of what changed."""
    totals = {"rounds": 0, "events": 0, "stages": 0, "opportunities": 0, "unmatched": 0, "unknown_stage": 0,
              "more": False}
    connector = connector_service.instantiate(name)
    for _ in range(max_rounds):
        config = connector_service.get_config(name)
        try:
            events, cursor = connector.poll(cursor_of(config), max_pages=max_pages)
        except ConnectorError as exc:
            db.session.rollback()
            _record_error(name, str(exc) or type(exc).__name__)
            totals["error"] = str(exc)
            return totals
        items = [to_queue_json(name, e) for e in events]
        counts = crm_sync.apply(items, commit=False)
        config = connector_service.get_config(name)
        _set_poll_state(config, cursor=cursor, polled_at=utcnow().isoformat(), last_error=None)
        db.session.commit()
        totals["rounds"] += 1
        totals["events"] += len(items)
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        totals["more"] = bool(cursor.get("more"))
        if not totals["more"]:
            break
    return totals


def _record_error(name: str, message: str) -> None:
    log.warning("CRM poll of %r failed; it resumes from its last cursor next time: %s", name, message)
    config = connector_service.get_config(name)
    _set_poll_state(config, last_error=message[:500], last_error_at=utcnow().isoformat())
    db.session.commit()


def poll_all(max_rounds: int = MAX_ROUNDS) -> dict[str, dict]:
    """Poll every enabled CRM connector, one at a time, each under its own lock."""
    results: dict[str, dict] = {}
    for config in crm_connectors("poll"):
        name = config.name
        try:
            lock = get_redis().lock(LOCK_KEY.format(name=name), timeout=900, blocking=False)
            if not lock.acquire(blocking=False):
                results[name] = {"skipped": "another poll of this connector is running"}
                continue
        except redis.RedisError:
            lock = None  # polling twice at once is wasteful, never wrong: go on without the lock
        try:
            results[name] = poll_connector(name, max_rounds=max_rounds)
        except ConnectorError as exc:  # unreadable secrets, a type no longer installed
            db.session.rollback()
            results[name] = {"error": str(exc)}
        finally:
            if lock is not None:
                try:
                    lock.release()
                except redis.RedisError:
                    pass
    return results
