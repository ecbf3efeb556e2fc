"""Alerts to an account's owner when it crosses a level (checked in each drain batch) or
jumps week over week (a periodic job against the daily score snapshots).

At most one alert per account per ``alerts.period_days`` (workspace settings). An
alert is recorded with the touch that delivers it through the workspace's default
``alert`` connector (Slack, email...); the touch goes out like a playbook step's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, select, update

from abm.db import db, in_list, utcnow
from abm.models import Account, Alert, ScoreSnapshot, Touch, User
from abm.scoring import level, level_rank
from abm.services import connectors as connector_service
from abm.services import settings as settings_service
from workers import enqueue


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


def _record(made: list[dict]) -> list[int]:
    """Store alerts in bulk, each with the touch that delivers it, and enqueue those after
    the commit. An alert is sent as a touch of the workspace's default ``alert``
    connector: the same claim, retry (the provider's Retry-After), rate limit and
    recovery as a playbook's steps; the alert shows the touch's outcome
    (``delivery.mirror_alerts``). Without an owner or an alert connector the alert is
    ``failed`` at once, with the reason."""
    if not made:
        return []
    ids = list(db.session.execute(insert(Alert).returning(Alert.id), made).scalars())
    name = connector_service.default_for("alert")
    owners = _owner_emails({m["user_id"] for m in made if m["user_id"]})
    now = made[0]["created_at"]
    rows, unsendable = [], []
    for alert_id, m in zip(ids, made, strict=True):
        to = owners.get(m["user_id"])
        if to is None or name is None:
            reason = "the account has no owner" if to is None else "no default alert connector is configured"
            unsendable.append({"aid": alert_id, "err": reason})
            continue
        rows.append(_touch_row(alert_id, m, to, name, now))
    if unsendable:
        table = Alert.__table__
        db.session.execute(update(table).where(table.c.id == bindparam("aid")).values(
            status="failed", error=bindparam("err")), unsendable)
    written = db.session.execute(insert(Touch).returning(Touch.id, Touch.connector), rows).all() if rows else []
    db.session.commit()
    enqueue.touches([(w[0], w[1]) for w in written])
    return ids


def _owner_emails(user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    return dict(db.session.execute(select(User.id, User.email).where(in_list(User.id, sorted(user_ids)))).all())


def _touch_row(alert_id: int, alert: dict, to: str, connector: str, now: datetime) -> dict:
    return {"alert_id": alert_id, "enrollment_id": None, "playbook_id": None, "account_id": alert["account_id"],
            "contact_id": None, "contact_key": 0, "step_id": f"alert:{alert_id}", "step_index": 0, "kind": "alert",
            "channel": "alert", "connector": connector, "status": "queued",
            "payload": {"to": to, "message": alert["message"]}, "due_at": now, "queued_at": now,
            "attempts": 0, "created_at": now, "updated_at": now}
