"""The weekly digest of each seller: their accounts that warmed up this week and why, the
people newly engaging, what marketing runs at each, with links back; a manager's covers
the team. Sent by the workers (``workers/digest_jobs.py``) on the reader's Monday morning.

Who gets one: active AEs and managers, unless they turned it off (``preferences.digest``
False, a toggle on My accounts). When: the first run of the hourly job from 08:00 on
Monday in the reader's time zone (their own, else the workspace's send window zone); a
marker per reader and week makes it once a week whatever the job's timing.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, render_template
from sqlalchemy import exists, func, select

from abm.db import db, in_list
from abm.labels import event_count
from abm.models import Account, AuditLog, Contact, Enrollment, Event, Playbook, User
from abm.scoring import level, level_rank, score_at
from abm.services import clock, scores
from abm.services import settings as settings_service
from abm.services.alerts import explain_events

READERS = ("ae", "manager")
SEND_FROM = time(8, 0)
LIST_LIMIT = 20
WEEK = timedelta(days=7)


def enabled(user: User) -> bool:
    return (user.preferences or {}).get("digest", True) is not False


def set_enabled(user: User, on: bool) -> None:
    user.preferences = {**(user.preferences or {}), "digest": bool(on)}
    db.session.add(AuditLog(actor_id=user.id, action="digest.on" if on else "digest.off", target_type="user",
                            target_id=str(user.id), details={}))
    db.session.commit()


def _zone(user: User) -> ZoneInfo:
    for name in (user.timezone, settings_service.current()["send_window"]["timezone"]):
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def week_of(user: User, now: datetime) -> str | None:
    """The reader's Monday (ISO date) when it is their Monday morning (08:00 or later), else None."""
    local = now.astimezone(_zone(user))
    if local.weekday() != 0 or local.time() < SEND_FROM:
        return None
    return local.date().isoformat()


def _marker(user: User, week: str) -> str:
    return f"{user.id}|{week}"


def due(now: datetime | None = None) -> list[tuple[User, str]]:
    """(reader, their Monday) for everyone whose digest should go now and has not gone."""
    now = now or clock.now()
    out = []
    for user in db.session.scalars(select(User).where(User.active.is_(True), User.role.in_(READERS))):
        week = week_of(user, now) if enabled(user) else None
        if week and not db.session.scalar(select(AuditLog.id).where(
                AuditLog.action == "digest.sent", AuditLog.target_type == "digest",
                AuditLog.target_id == _marker(user, week))):
            out.append((user, week))
    return out


def mark_sent(user: User, week: str, channels: list[str]) -> None:
    db.session.add(AuditLog(actor_id=None, action="digest.sent", target_type="digest",
                            target_id=_marker(user, week), details={"channels": channels}))
    db.session.commit()


def build(user: User, now: datetime | None = None) -> dict:
    """The digest's content for ``user`` (a manager: the whole team's accounts)."""
    now = now or clock.now()
    cfg = settings_service.current()
    team = user.role == "manager"
    owned = select(Account.id).where(Account.owner_id.is_not(None) if team else Account.owner_id == user.id)
    active_ids = list(db.session.scalars(owned.where(exists().where(
        Event.account_id == Account.id, Event.occurred_at > now - WEEK))))
    rows = db.session.execute(select(Account.id, Account.name, Account.stage, Account.score_ref, Account.owner_id)
                              .where(in_list(Account.id, active_ids))).all() if active_ids else []
    week_ago = scores.scores_week_ago(rows, now)
    factor = score_at(1.0, now, cfg["half_life_days"])
    warmed = []
    for r in rows:
        before, after = level(week_ago[r.id], cfg["thresholds"]), level(r.score_ref * factor, cfg["thresholds"])
        if level_rank(after) > level_rank(before):
            warmed.append({"id": r.id, "name": r.name, "stage": r.stage, "from": before, "to": after,
                           "score": round(r.score_ref * factor, 1), "owner_id": r.owner_id})
    warmed.sort(key=lambda a: -a["score"])
    warmed = warmed[:LIST_LIMIT]
    behind = explain_events([a["id"] for a in warmed], now, cfg)
    running = _running([a["id"] for a in warmed])
    owners = dict(db.session.execute(select(User.id, User.name)).all()) if team else {}
    for a in warmed:
        a["why"] = _why(behind.get(a["id"], {}))
        a["playbooks"] = running.get(a["id"], [])
        a["owner"] = owners.get(a["owner_id"]) if team else None
    return {"user": user, "team": team, "week_start": (now - WEEK).date().isoformat(),
            "warmed": warmed, "people": _new_people(active_ids, now), "base_url": base_url()}


def _why(details: dict) -> str:
    kinds = ", ".join(event_count(t["type"], t["count"]) for t in (details.get("by_type") or [])[:3])
    people = ", ".join(p["name"] for p in (details.get("contacts") or [])[:2])
    return (kinds or "engagement") + (f", mostly {people}" if people else "")


def _running(account_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if not account_ids:
        return out
    for aid, name in db.session.execute(
            select(Enrollment.account_id, Playbook.name).join(Playbook, Playbook.id == Enrollment.playbook_id)
            .where(in_list(Enrollment.account_id, account_ids), Enrollment.state.in_(("active", "waiting")))):
        out.setdefault(aid, []).append(name)
    return out


def _new_people(account_ids: list[int], now: datetime) -> list[dict]:
    """Contacts of these accounts whose first engagement ever is this week."""
    if not account_ids:
        return []
    first = (select(Event.contact_id, func.min(Event.occurred_at).label("first"))
             .where(in_list(Event.account_id, account_ids), Event.contact_id.is_not(None))
             .group_by(Event.contact_id).subquery())
    rows = db.session.execute(
        select(Contact.id, Contact.first_name, Contact.last_name, Contact.email, Contact.title, Account.id,
               Account.name).join(first, first.c.contact_id == Contact.id).join(Account, Account.id == Contact.account_id)
        .where(first.c.first > now - WEEK).order_by(first.c.first.desc()).limit(LIST_LIMIT)).all()
    return [{"name": " ".join(p for p in (r[1], r[2]) if p) or r[3], "title": r[4], "account_id": r[5],
             "account": r[6]} for r in rows]


def base_url() -> str:
    return current_app.config.get("BASE_URL", "").rstrip("/")


def render(digest: dict) -> dict:
    """Subject, text and HTML of the email, and a short text for a Slack direct message."""
    who = "your team's" if digest["team"] else "your"
    n = len(digest["warmed"])
    subject = f"This week: {n} of {who} accounts warmed up, {len(digest['people'])} new people engaging"
    return {"subject": subject,
            "text": render_template("email/internal/digest.txt", d=digest),
            "html": render_template("email/internal/digest.html", d=digest),
            "slack": f"{subject}. {digest['base_url']}/engagement/mine?changed=week&sort=change"}
