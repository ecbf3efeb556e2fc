"""Engagement on the CRM's timeline: a digest per account and period, where sellers live.

Which connectors: enabled connectors whose type has ``write_timeline`` (hubspot,
salesforce) and whose ``timeline_cadence`` setting is ``daily`` or ``weekly`` (``off``
by default: the admin decides that the product writes into the CRM).

What: for every account with an id in that CRM (``Account.crm_ids[<connector name>]``)
that was touched or did something in the period, one entry: the touches sent (by kind
and playbook: what marketing did), the engagement events (by type: what the account did
back), and the score with its breakdown by event type. HubSpot shows it as a note on the
company, Salesforce as a completed Task in the Account's activity history.

When: periods are whole days or weeks from the first run, so a period's entries are
the same whichever run writes them. The job runs hourly and writes every period that
has ended (at most ``MAX_PERIODS`` a run). The state (``state["crm_timeline"]``) keeps
where the next period starts and, for a period being written, the accounts already
written: a run stopped by a CRM error starts again with the accounts not yet written,
so no digest is written twice. An account the CRM refuses is logged and skipped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from abm.db import db, utcnow
from abm.models import Account, Event, Playbook, Touch
from abm.services import connectors as connector_service
from abm.services import scores as scores_service
from abm.services.crm_poll import crm_connectors
from connectors.base import ConnectorError

log = logging.getLogger(__name__)

STATE_KEY = "crm_timeline"
PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
#: Periods one run writes for one connector; the rest waits for the next run.
MAX_PERIODS = 4
#: Event types listed in a digest's score breakdown.
BREAKDOWN_TYPES = 5


def cadence_of(settings: dict[str, Any]) -> timedelta | None:
    return PERIODS.get(str(settings.get("timeline_cadence") or "off"))


def _activity(name: str, start: datetime, end: datetime) -> tuple[dict[int, list], dict[int, list]]:
    """(account id -> [(kind, playbook name, count)], account id -> [(event type, count)]) in [start, end)."""
    in_crm = Account.crm_ids[name].as_string().is_not(None)
    touches: dict[int, list] = defaultdict(list)
    rows = db.session.execute(
        select(Touch.account_id, Touch.kind, Playbook.name, func.count())
        .join(Playbook, Playbook.id == Touch.playbook_id).join(Account, Account.id == Touch.account_id)
        .where(in_crm, Touch.status == "sent", Touch.sent_at >= start, Touch.sent_at < end)
        .group_by(Touch.account_id, Touch.kind, Playbook.name).order_by(Touch.account_id, Touch.kind))
    for account_id, kind, playbook, count in rows:
        touches[account_id].append((kind, playbook, count))
    events: dict[int, list] = defaultdict(list)
    rows = db.session.execute(
        select(Event.account_id, Event.type, func.sum(Event.quantity)).join(Account, Account.id == Event.account_id)
        .where(in_crm, Event.occurred_at >= start, Event.occurred_at < end)
        .group_by(Event.account_id, Event.type).order_by(Event.account_id, func.sum(Event.quantity).desc()))
    for account_id, event_type, count in rows:
        events[account_id].append((event_type, int(count or 0)))
    return touches, events


def digest(account: Account, touches: list, events: list, cadence: str, start: datetime, end: datetime,
           now: datetime) -> dict[str, str]:
    """The subject and body of one account's digest (plain text, one fact a line)."""
    sent, done = sum(c for _, _, c in touches), sum(c for _, c in events)
    score = round(account.score or 0)
    subject = f"ABM {cadence} digest: {sent} touches, {done} engagement events; score {score} ({account.engagement})"
    lines = [f"Period: {start.date().isoformat()} to {(end - timedelta(seconds=1)).date().isoformat()}",
             "What marketing did:"]
    lines += [f"- {count} {kind} touch{'es' if count != 1 else ''} (playbook {playbook})"
              for kind, playbook, count in touches] or ["- nothing"]
    lines.append("What the account did:")
    lines += [f"- {count} {event_type.replace('_', ' ')}" for event_type, count in events] or ["- nothing"]
    breakdown = scores_service.breakdown(account.id, now=now, recent=0)
    lines.append(f"Engagement score {breakdown['score']:g} ({breakdown['engagement']}), by activity:")
    lines += [f"- {row['type'].replace('_', ' ')}: {row['points']:g} points from {row['events']} events"
              for row in breakdown["by_type"][:BREAKDOWN_TYPES]] or ["- no scored activity"]
    return {"subject": subject, "body": "\n".join(lines)}


def write_digests(name: str, now: datetime | None = None, max_periods: int = MAX_PERIODS) -> dict[str, Any]:
    """Write the digests of every ended period of one connector; counts of what happened."""
    now = now or utcnow()
    config = connector_service.get_config(name)
    period = cadence_of(config.settings or {})
    totals: dict[str, Any] = {"periods": 0, "written": 0, "failed": 0}
    if period is None:
        return {**totals, "skipped": "timeline_cadence is off"}
    section = dict((config.state or {}).get(STATE_KEY) or {})
    start = datetime.fromisoformat(section["next"]) if section.get("next") else now - period
    connector = connector_service.instantiate(name)
    size = max(int(getattr(connector, "max_batch", 100) or 100), 1)
    while totals["periods"] < max_periods and start + period <= now:
        end = start + period
        done = set(section.get("done") or [])
        error = _write_period(name, connector, size, start, end, now, done, totals)
        section.update(done=sorted(done), last_error=error, written_at=utcnow().isoformat())
        if error:
            totals["error"] = error
            break
        start = end
        section.update(next=start.isoformat(), done=[])
        totals["periods"] += 1
    section.setdefault("next", start.isoformat())
    config = connector_service.get_config(name)
    config.state = {**(config.state or {}), STATE_KEY: section}
    db.session.commit()
    return totals


def _write_period(name, connector, size, start, end, now, done: set[int], totals: dict) -> str | None:
    """Write one period's entries (skipping the accounts in ``done``, adding those written)."""
    cadence = str(connector.settings.get("timeline_cadence"))
    touches, events = _activity(name, start, end)
    ids = sorted((set(touches) | set(events)) - done)
    for chunk_start in range(0, len(ids), size):
        accounts = db.session.execute(select(Account).where(Account.id.in_(ids[chunk_start:chunk_start + size]))
                                      .order_by(Account.id)).scalars().all()
        entries = [{"crm_id": str(a.crm_ids[name]), "key": f"abm:{a.id}:{end.date().isoformat()}",
                    "occurred_at": end.isoformat(),
                    **digest(a, touches.get(a.id, []), events.get(a.id, []), cadence, start, end, now)}
                   for a in accounts]
        try:
            results = connector.write_timeline(entries)
        except ConnectorError as exc:
            log.warning("timeline write-back to %r stopped; the next run goes on from here: %s", name, exc)
            return str(exc) or type(exc).__name__
        for account, result in zip(accounts, results, strict=True):
            done.add(account.id)
            if result.ok:
                totals["written"] += 1
            else:
                totals["failed"] += 1
                log.warning("CRM %r refused the digest of account %s (crm id %s): %s",
                            name, account.id, result.crm_id, result.error)
    return None


def write_all(now: datetime | None = None) -> dict[str, dict]:
    """Run :func:`write_digests` for every enabled CRM connector whose cadence is set."""
    results: dict[str, dict] = {}
    for config in crm_connectors("write_timeline"):
        if cadence_of(config.settings or {}) is None:
            continue
        try:
            results[config.name] = write_digests(config.name, now=now)
        except ConnectorError as exc:
            db.session.rollback()
            results[config.name] = {"error": str(exc)}
    return results
