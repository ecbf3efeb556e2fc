"""Surge alerts to an account's owner when it crosses a level or jumps week over week.

At most one alert per account per ``alerts.period_days`` (workspace settings). An
alert is recorded first, then sent after commit through the workspace's default
``alert`` connector (Slack, email...) by a job on the default queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from abm.db import db, utcnow
from abm.models import Account, Alert, User
from abm.scoring import level_rank
from abm.services import scores
from abm.services import settings as settings_service


def check(account_ids: set[int], now: datetime | None = None) -> list[int]:
    """Raise alerts for the accounts that warmed up or surged; returns the new alert ids."""
    now = now or utcnow()
    cfg = settings_service.current()
    rules = cfg["alerts"]
    period = timedelta(days=rules.get("period_days", 7))
    ids = list(account_ids)
    if not ids:
        return []
    recent = set(db.session.execute(select(Alert.account_id).where(
        Alert.account_id.in_(ids), Alert.created_at >= now - period)).scalars())
    candidates = db.session.execute(
        select(Account.id, Account.name, Account.score, Account.engagement, Account.owner_id)
        .where(Account.id.in_([i for i in ids if i not in recent]), Account.engagement != "cold")).all()
    if not candidates:
        return []
    last_level = dict(db.session.execute(
        select(Alert.account_id, Alert.level).where(Alert.account_id.in_([c.id for c in candidates]))
        .order_by(Alert.created_at)).all())
    week_ago = scores.scores_at([c.id for c in candidates], now - timedelta(days=7))
    made = []
    for c in candidates:
        before = week_ago.get(c.id, 0.0)
        previous_level = last_level.get(c.id) or ("hot" if before >= cfg["thresholds"]["hot"] else
                                                   "warm" if before >= cfg["thresholds"]["warm"] else "cold")
        if level_rank(c.engagement) > level_rank(previous_level):
            kind = "level_up"
            message = (f"{c.name} is now {c.engagement} (score {c.score:.0f}, "
                       f"{c.score - before:+.0f} this week)")
        elif c.score >= before * rules.get("surge_ratio", 2.0) and c.score - before >= rules.get("surge_min_points", 10):
            kind = "surge"
            message = f"{c.name} is surging: score {c.score:.0f}, up from {before:.0f} a week ago"
        else:
            continue
        alert = Alert(account_id=c.id, user_id=c.owner_id, kind=kind, level=c.engagement, message=message,
                      created_at=now)
        db.session.add(alert)
        made.append(alert)
    db.session.commit()
    if made:
        from abm.redis_conn import get_redis
        from workers.queues import get_queue

        queue = get_queue("default", get_redis())
        queue.enqueue_many([queue.prepare_data("workers.alert_jobs.send_alert", args=(a.id,)) for a in made])
    return [a.id for a in made]


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
