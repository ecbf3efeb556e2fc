"""Alerts to an account's owner when it crosses a level (checked in each drain batch) or
jumps week over week (a periodic job against the daily score snapshots).

At most one alert per account per ``alerts.period_days`` (workspace settings). An
alert is recorded first, then sent after commit through the workspace's default
``alert`` connector (Slack, email...) by a job on the default queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select

from abm.db import db, in_list, utcnow
from abm.models import Account, Alert, ScoreSnapshot, User
from abm.scoring import level, level_rank
from abm.services import settings as settings_service


def _recently_alerted(account_ids: list[int], now: datetime, period: timedelta) -> set[int]:
    found: set[int] = set()
    for i in range(0, len(account_ids), 1000):
        found.update(db.session.execute(select(Alert.account_id).where(
            in_list(Alert.account_id, account_ids[i:i + 1000]), Alert.created_at >= now - period)).scalars())
    return found


def level_ups(changes: dict[int, tuple[float, float]], now: datetime | None = None) -> list[int]:
    """Alert the owners of accounts whose level rose (cold to warm, warm to hot) in this batch.

    ``changes`` maps account ids to (score before, score after). Returns the new alert ids.
    """
    now = now or utcnow()
    cfg = settings_service.current()
    thresholds = cfg["thresholds"]
    risen = {aid: (before, after) for aid, (before, after) in changes.items()
             if level_rank(level(after, thresholds)) > level_rank(level(before, thresholds))}
    if not risen:
        return []
    period = timedelta(days=cfg["alerts"].get("period_days", 7))
    skip = _recently_alerted(list(risen), now, period)
    rows = db.session.execute(select(Account.id, Account.name, Account.owner_id).where(
        in_list(Account.id, [a for a in risen if a not in skip]))).all() if len(risen) > len(skip) else []
    made = []
    for r in rows:
        before, after = risen[r.id]
        lvl = level(after, thresholds)
        made.append({"account_id": r.id, "user_id": r.owner_id, "kind": "level_up", "level": lvl,
                     "created_at": now, "status": "open",
                     "message": f"{r.name} is now {lvl} (score {after:.0f}, up from {before:.0f})"})
    return _record(made)


def surges(now: datetime | None = None) -> list[int]:
    """Alert on accounts whose score jumped week over week (a periodic job, against snapshots)."""
    now = now or utcnow()
    cfg = settings_service.current()
    rules = cfg["alerts"]
    week_ago = (now - timedelta(days=7)).date()
    snap = select(ScoreSnapshot.account_id, ScoreSnapshot.score).where(ScoreSnapshot.day == week_ago).subquery()
    rows = db.session.execute(
        select(Account.id, Account.name, Account.owner_id, Account.score, Account.engagement, snap.c.score)
        .join(snap, snap.c.account_id == Account.id)
        .where(Account.score >= snap.c.score * rules.get("surge_ratio", 2.0),
               Account.score - snap.c.score >= rules.get("surge_min_points", 10))).all()
    skip = _recently_alerted([r.id for r in rows], now, timedelta(days=rules.get("period_days", 7)))
    made = [{"account_id": r.id, "user_id": r.owner_id, "kind": "surge", "level": r.engagement,
             "created_at": now, "status": "open",
             "message": f"{r.name} is surging: score {r.score:.0f}, up from {r[5]:.0f} a week ago"}
            for r in rows if r.id not in skip]
    return _record(made)


SEND_BATCH = 100


def _record(made: list[dict]) -> list[int]:
    """Store alerts in bulk, then queue their sending after the commit (jobs of up to 100)."""
    if not made:
        return []
    ids = list(db.session.execute(insert(Alert).returning(Alert.id), made).scalars())
    db.session.commit()
    from abm.redis_conn import get_redis
    from workers.queues import get_queue

    queue = get_queue("default", get_redis())
    queue.enqueue_many([queue.prepare_data("workers.alert_jobs.send_alerts", args=(ids[i:i + SEND_BATCH],))
                        for i in range(0, len(ids), SEND_BATCH)])
    return ids


def send(alert_id: int) -> Alert:
    """Send one alert to the account's owner through the default alert connector."""
    from abm.services import connectors as connector_service
    from connectors.base import ConnectorError, Touch

    alert = db.session.get(Alert, alert_id)
    if alert is None or alert.status != "open":
        return alert
    owner = db.session.get(User, alert.user_id) if alert.user_id else None
    name = connector_service.default_for("alert")
    if owner is None or name is None:
        alert.status = "failed"
        alert.error = "the account has no owner" if owner is None else "no default alert connector is configured"
        db.session.commit()
        return alert
    account = db.session.get(Account, alert.account_id)
    touch = Touch(id=-alert.id, kind="alert", channel="alert",
                  account={"id": account.id, "name": account.name, "domain": account.domain,
                           "score": account.score, "engagement": account.engagement},
                  contact=None, payload={"to": owner.email, "message": alert.message}, key=f"alert:{alert.id}")
    try:
        result = connector_service.instantiate(name).send([touch])[0]
        alert.status, alert.error = ("sent", None) if result.ok else ("failed", result.error)
    except ConnectorError as exc:
        alert.status, alert.error = "failed", str(exc)
    alert.connector = name
    alert.sent_at = utcnow()
    db.session.commit()
    return alert
