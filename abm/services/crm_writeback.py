"""Engagement score and level written back to the CRM account.

Which connectors: enabled connectors whose type has ``write_scores`` (hubspot,
salesforce) and whose settings name the field to write, i.e. the admin set one of
``score_property``/``level_property`` (HubSpot) or ``score_field``/``level_field``
(Salesforce). A CRM connector whose settings leave them out only reads.

Which accounts: those with an id in this CRM (``Account.crm_ids[<connector name>]``)
whose score was updated since the last write-back, read in keyset order of
``(score_updated_at, id)`` from the watermark kept in the connector's state
(``state["crm_writeback"]``), and whose written value changed: the score is written as
a whole number with the level (cold, warm, hot), and the last value written for each
account is remembered, so the periodic decay of every score does not rewrite the
whole CRM each time.

How: ``write_scores`` in batches of the connector's ``max_batch``. An account the CRM
refused (deleted, merged) is logged and kept in ``retry``: the next run tries it
again, whatever the watermark. A batch-wide error (CRM down, rate limited) stops the
run before the watermark passes that batch, so the next run starts there.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from abm.db import db, utcnow
from abm.models import Account, ConnectorConfig
from abm.services import connectors as connector_service
from abm.services.crm_poll import crm_connectors
from connectors.base import ConnectorError

log = logging.getLogger(__name__)

STATE_KEY = "crm_writeback"
FIELDS = ("score_property", "level_property", "score_field", "level_field")
#: Batches one run writes for one connector; the rest waits for the next run.
MAX_BATCHES = 50


def enabled(config: ConnectorConfig) -> bool:
    """Whether ``config`` has write-back configured (see the module docstring)."""
    return any((config.settings or {}).get(key) for key in FIELDS)


def value_of(account: Account) -> list:
    """What is written for an account: [whole score, level]."""
    return [int(round(account.score or 0.0)), account.engagement or "cold"]


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _candidates(name: str, since: datetime | None, since_id: int, limit: int) -> list[Account]:
    crm_id = Account.crm_ids[name].as_string()
    query = select(Account).where(crm_id.is_not(None), Account.score_updated_at.is_not(None))
    if since is not None:
        query = query.where(or_(Account.score_updated_at > since,
                                and_(Account.score_updated_at == since, Account.id > since_id)))
    return list(db.session.execute(query.order_by(Account.score_updated_at, Account.id).limit(limit)).scalars())


def write_back(name: str, max_batches: int = MAX_BATCHES) -> dict[str, Any]:
    """Write changed scores of one connector's accounts; counts of what happened."""
    connector = connector_service.instantiate(name)
    size = max(int(getattr(connector, "max_batch", 100) or 100), 1)
    config = connector_service.get_config(name)
    section = dict((config.state or {}).get(STATE_KEY) or {})
    since, since_id = _parse_time(section.get("since")), int(section.get("since_id") or 0)
    sent: dict[str, list] = dict(section.get("sent") or {})
    retry: set[int] = set(section.get("retry") or [])
    totals: dict[str, Any] = {"written": 0, "failed": 0, "unchanged": 0}

    pending = _retry_accounts(name, retry)
    error = None
    for _ in range(max_batches):
        rows = _candidates(name, since, since_id, size)
        todo = pending + [a for a in rows if sent.get(str(a.id)) != value_of(a) and a.id not in retry]
        pending = []
        totals["unchanged"] += sum(1 for a in rows if sent.get(str(a.id)) == value_of(a))
        if todo:
            try:
                results = connector.write_scores([
                    {"crm_id": str(a.crm_ids[name]), "score": value_of(a)[0], "level": value_of(a)[1]}
                    for a in todo])
            except ConnectorError as exc:
                error = str(exc) or type(exc).__name__
                log.warning("score write-back to %r stopped; the next run starts again here: %s", name, error)
                break
            _record(name, todo, results, sent, retry, totals)
        if rows:
            since, since_id = rows[-1].score_updated_at, rows[-1].id
        if len(rows) < size:
            break
    config = connector_service.get_config(name)
    section.update(since=since.isoformat() if since else None, since_id=since_id, sent=sent,
                   retry=sorted(retry), written_at=utcnow().isoformat(), last_error=error)
    config.state = {**(config.state or {}), STATE_KEY: section}
    db.session.commit()
    if error:
        totals["error"] = error
    return totals


def _retry_accounts(name: str, retry: set[int]) -> list[Account]:
    if not retry:
        return []
    rows = db.session.execute(select(Account).where(Account.id.in_(sorted(retry)))).scalars().all()
    found = [a for a in rows if (a.crm_ids or {}).get(name)]
    retry.intersection_update(a.id for a in found)
    return found


def _record(name: str, accounts: list[Account], results, sent: dict, retry: set[int], totals: dict) -> None:
    for account, result in zip(accounts, results, strict=True):
        if result.ok:
            sent[str(account.id)] = value_of(account)
            retry.discard(account.id)
            totals["written"] += 1
        else:
            log.warning("CRM %r refused the score of account %s (%s, crm id %s): %s; retried next time",
                        name, account.id, account.domain, result.crm_id, result.error)
            retry.add(account.id)
            totals["failed"] += 1


def write_back_all() -> dict[str, dict]:
    """Run :func:`write_back` for every enabled CRM connector with write-back configured."""
    results: dict[str, dict] = {}
    for config in crm_connectors("write_scores"):
        if not enabled(config):
            continue
        try:
            results[config.name] = write_back(config.name)
        except ConnectorError as exc:
            db.session.rollback()
            results[config.name] = {"error": str(exc)}
    return results
