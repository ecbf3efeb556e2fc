"""The alerts inbox: a seller's alerts (a manager's team's), what each says and why, and
what the seller did with it: acknowledged, snoozed until a date, or not relevant (with
feedback kept on the alert, for whoever tunes the rules).

States, derived from the alert's columns at ``now``:

- ``new``: none of the below, or a snooze that has run out (it comes back);
- ``snoozed``: ``snoozed_until`` is still ahead;
- ``acknowledged``: the seller has seen it and acts on it;
- ``not_relevant``: dismissed, with the seller's reason.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select

from abm.db import db, in_list, utcnow
from abm.errors import ApiError
from abm.labels import event_count
from abm.models import Account, Alert, Playbook, User
from abm.services.alerts import open_opportunities
from abm.services.transactions import rolls_back_on_error

STATES = {"new": "New", "snoozed": "Snoozed", "acknowledged": "Acknowledged", "not_relevant": "Not relevant"}
ACTIONS = ("acknowledge", "snooze", "not_relevant", "reopen")
PAGE_SIZE = 25
MAX_SNOOZE_DAYS = 365
MAX_FEEDBACK = 2000
MANAGERS = ("admin", "manager")


def state_of(alert: Alert, now: datetime) -> str:
    if alert.dismissed_at:
        return "not_relevant"
    if alert.acknowledged_at:
        return "acknowledged"
    if alert.snoozed_until and alert.snoozed_until > now:
        return "snoozed"
    return "new"


def count_new(user_id: int, now: datetime | None = None) -> int:
    """The number in the navigation: the user's alerts waiting for them."""
    now = now or utcnow()
    return db.session.execute(select(func.count(Alert.id)).where(
        Alert.user_id == user_id, Alert.in_state("new", now))).scalar_one()


def _owners_clause(owner_ids: list[int] | None):
    return Alert.user_id.is_not(None) if owner_ids is None else in_list(Alert.user_id, owner_ids)


def inbox(owner_ids: list[int] | None, state: str = "new", page: int = 1, now: datetime | None = None) -> dict:
    """One page of alerts in ``state`` for ``owner_ids`` (None: every seller), newest first,
    with the count in each state, each alert explained."""
    now = now or utcnow()
    if state not in STATES:
        raise ApiError(400, f"unknown state {state!r}: use one of {', '.join(STATES)}")
    counts = {s: db.session.execute(select(func.count(Alert.id)).where(
        _owners_clause(owner_ids), Alert.in_state(s, now))).scalar_one() for s in STATES}
    pages = max(1, -(-counts[state] // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = db.session.execute(
        select(Alert, Account.name, Account.stage, Account.engagement, Account.score, User.name, User.email,
               Playbook.name)
        .join(Account, Account.id == Alert.account_id)
        .outerjoin(User, User.id == Alert.user_id)
        .outerjoin(Playbook, Playbook.id == Alert.playbook_id)
        .where(_owners_clause(owner_ids), Alert.in_state(state, now))
        .order_by(Alert.created_at.desc(), Alert.id.desc())
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    opportunities = open_opportunities(list({r[0].account_id for r in rows}))
    items = []
    for alert, name, stage, engagement, score, owner_name, owner_email, playbook in rows:
        items.append({
            "id": alert.id, "kind": alert.kind, "level": alert.level, "message": alert.message,
            "created_at": alert.created_at, "why": why(alert), "suggestion": alert.suggestion,
            "account": {"id": alert.account_id, "name": name, "stage": stage, "engagement": engagement,
                        "score": round(score or 0.0, 1)},
            "opportunity": opportunities.get(alert.account_id), "owner": owner_name or owner_email,
            "playbook": playbook, "step_id": alert.step_id, "state": state_of(alert, now),
            "snoozed_until": alert.snoozed_until, "acknowledged_at": alert.acknowledged_at,
            "dismissed_at": alert.dismissed_at, "feedback": alert.feedback,
        })
    return {"items": items, "counts": counts, "state": state, "page": page, "pages": pages}


def why(alert: Alert) -> str:
    """Why the alert was raised, in words: the score change and the week's events behind it."""
    details = alert.details or {}
    parts = []
    if alert.kind == "intent" and details.get("intent"):
        signal = details["intent"]
        source = f" from {signal['provider']}" if signal.get("provider") else ""
        parts.append(f"An intent signal{source}: researching {signal['topic']}, intent score {signal['score']:.0f} "
                     "of 100.")
    elif alert.score_before is not None and alert.score_after is not None:
        change = alert.score_after - alert.score_before
        since = "a week ago" if alert.kind == "surge" else "before"
        parts.append(f"Score {alert.score_before:.0f} {since}, {alert.score_after:.0f} then "
                     f"({'+' if change >= 0 else '−'}{abs(change):.0f}).")
    by_type = details.get("by_type") or []
    if by_type:
        listed = ", ".join(f"{event_count(t['type'], t['count'])} ({t['points']:g} points)" for t in by_type[:4])
        more = f" and {len(by_type) - 4} more kinds" if len(by_type) > 4 else ""
        parts.append(f"In the {details.get('days', 7)} days before: {listed}{more}.")
    elif details:
        parts.append("No engagement in the week before.")
    people = details.get("contacts") or []
    if people:
        names = ", ".join(p["name"] + (f" ({p['role'].replace('_', ' ')})" if p.get("role") else "")
                          for p in people)
        parts.append(f"Most of it from {names}.")
    playbooks = details.get("playbooks") or []
    if playbooks:
        parts.append("Responding to " + ", ".join(f"“{p['name']}”" for p in playbooks) + ".")
    return " ".join(parts)


def get_for(alert_id: int, user: User) -> Alert:
    """The alert, if ``user`` may act on it (its seller, or a manager or admin)."""
    alert = db.session.get(Alert, alert_id) if 0 < alert_id < 2**31 else None
    if alert is None:
        raise ApiError(404, f"no alert {alert_id}")
    if alert.user_id != user.id and user.role not in MANAGERS:
        raise ApiError(403, "this alert is another seller's; only they, managers and admins may act on it")
    return alert


def snooze_end(day: date, user: User) -> datetime:
    """The start of ``day`` in the user's time zone (UTC when they have none), as UTC."""
    try:
        zone = ZoneInfo(user.timezone) if user.timezone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(ZoneInfo("UTC"))


@rolls_back_on_error
def act(alert_id: int, user: User, action: str, until: str | None = None, feedback: str | None = None,
        now: datetime | None = None) -> Alert:
    """Acknowledge, snooze until a date (``until``, YYYY-MM-DD, after today), mark as not
    relevant (``feedback``: why, kept for the rules), or reopen. Raises ApiError (4xx)."""
    now = now or utcnow()
    if action not in ACTIONS:
        raise ApiError(400, f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    alert = get_for(alert_id, user)
    if action == "acknowledge":
        alert.acknowledged_at = now
    elif action == "snooze":
        alert.snoozed_until = _parse_until(until, user, now)
        alert.acknowledged_at = None
    elif action == "not_relevant":
        text = (feedback or "").strip()
        if len(text) > MAX_FEEDBACK:
            raise ApiError(422, f"the reason is {len(text)} characters long; keep it under {MAX_FEEDBACK}")
        alert.dismissed_at, alert.feedback = now, text or None
    else:
        alert.acknowledged_at = alert.snoozed_until = alert.dismissed_at = None
    alert.handled_by = user.id
    db.session.commit()
    return alert


def _parse_until(until: str | None, user: User, now: datetime) -> datetime:
    try:
        day = date.fromisoformat((until or "").strip())
    except ValueError:
        raise ApiError(422, f"snooze until: {until!r} is not a date (YYYY-MM-DD)") from None
    end = snooze_end(day, user)
    if end <= now:
        raise ApiError(422, f"snooze until: {day.isoformat()} has begun already; pick a later day")
    if end > now + timedelta(days=MAX_SNOOZE_DAYS):
        raise ApiError(422, f"snooze until: at most {MAX_SNOOZE_DAYS} days ahead")
    return end


def feedback(limit: int = 100) -> list[dict]:
    """Alerts marked not relevant, newest first, with their reason (for tuning the rules)."""
    rows = db.session.execute(select(Alert.id, Alert.kind, Alert.reason, Alert.feedback, Alert.dismissed_at,
                                     Account.name).join(Account, Account.id == Alert.account_id)
                              .where(Alert.dismissed_at.is_not(None)).order_by(Alert.dismissed_at.desc())
                              .limit(limit)).all()
    return [dict(r._mapping) for r in rows]
