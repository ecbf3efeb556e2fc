"""What an account executive reads: my accounts, the stage by engagement matrix,
buying committee coverage and the playbooks an account is in.

Every list is a handful of queries whatever its length (no query per account).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from abm.db import db, in_list, utcnow
from abm.models import Account, Alert, Contact, Enrollment, Event, Playbook, Touch
from abm.services import scores
from abm.services import settings as settings_service

ENGAGED_WINDOW = timedelta(days=90)


def pre_opportunity_stages(stages: list[str]) -> list[str]:
    """The stages before ``opportunity`` in the workspace's order (all but lost if absent)."""
    if "opportunity" in stages:
        return stages[:stages.index("opportunity")]
    return [s for s in stages if s not in ("customer", "lost")]


def my_accounts(owner_id: int, sort: str = "score", limit: int = 200, now: datetime | None = None) -> list[dict]:
    """The owner's accounts with score, change this week, trend, last touch and open alerts.

    Sorted by score, the page is the top ``limit`` by ``score_ref`` (the same order);
    sorted by change, every account's change is computed first (from the week's events
    only). Trends, last touches and alerts are read for the page's accounts only.
    """
    now = now or utcnow()
    rows = db.session.execute(
        select(Account.id, Account.name, Account.domain, Account.stage, Account.tier, Account.score_ref)
        .where(Account.owner_id == owner_id).order_by(Account.score_ref.desc(), Account.id)).all()
    if not rows:
        return []
    cfg = settings_service.current()
    factor = scores.score_at(1.0, now, cfg["half_life_days"])
    if sort == "change":
        week_ago = scores.scores_week_ago(rows, now)
        change = {a.id: round(a.score_ref * factor - week_ago[a.id], 1) for a in rows}
        rows = sorted(rows, key=lambda a: (-change[a.id], a.name))[:limit]
    else:
        rows = rows[:limit]
        week_ago = scores.scores_week_ago(rows, now)
    ids = [a.id for a in rows]
    last_touch = dict(db.session.execute(select(Touch.account_id, func.max(Touch.sent_at)).where(
        in_list(Touch.account_id, ids), Touch.status == "sent").group_by(Touch.account_id)).all())
    open_alerts = dict(db.session.execute(select(Alert.account_id, func.count(Alert.id)).where(
        in_list(Alert.account_id, ids), Alert.status.in_(("open", "sent"))).group_by(Alert.account_id)).all())
    trends = scores.trend(ids, days=30, now=now)
    out = []
    for a in rows:
        score_now = a.score_ref * factor
        trend = trends[a.id]
        trend[-1] = round(score_now, 1)
        out.append({"id": a.id, "name": a.name, "domain": a.domain, "stage": a.stage, "tier": a.tier,
                    "score": round(score_now, 1), "engagement": _level(score_now, cfg),
                    "change_week": round(score_now - week_ago[a.id], 1), "trend": trend,
                    "last_touch_at": last_touch.get(a.id), "open_alerts": open_alerts.get(a.id, 0)})
    return out


def _level(score: float, cfg: dict) -> str:
    from abm.scoring import level

    return level(score, cfg["thresholds"])


def matrix(owner_id: int | None = None) -> dict:
    """Accounts counted by stage and engagement level, with the two cells sales acts on."""
    cfg = settings_service.current()
    q = select(Account.stage, Account.engagement, func.count(Account.id)).group_by(Account.stage, Account.engagement)
    if owner_id is not None:
        q = q.where(Account.owner_id == owner_id)
    counts: dict[str, dict[str, int]] = {s: {"cold": 0, "warm": 0, "hot": 0} for s in cfg["stages"]}
    for stage, level, n in db.session.execute(q):
        counts.setdefault(stage, {"cold": 0, "warm": 0, "hot": 0})[level] = n
    early = pre_opportunity_stages(cfg["stages"])
    return {
        "stages": list(counts),
        "levels": ["cold", "warm", "hot"],
        "counts": counts,
        "hot_not_in_opportunity": {"stages": early, "level": "hot",
                                   "count": sum(counts[s]["hot"] for s in early if s in counts)},
        "opportunities_gone_cold": {"stages": ["opportunity"], "level": "cold",
                                    "count": counts.get("opportunity", {}).get("cold", 0)},
    }


def coverage(account_id: int, now: datetime | None = None) -> list[dict]:
    """Per buying role: contacts, how many were reached (sent a touch) and engaged (recent events)."""
    now = now or utcnow()
    roles = settings_service.current()["roles"]
    contacts = db.session.execute(select(Contact.id, Contact.buying_role).where(
        Contact.account_id == account_id, Contact.erased_at.is_(None))).all()
    reached = set(db.session.execute(select(Touch.contact_id).where(
        Touch.account_id == account_id, Touch.status == "sent", Touch.contact_id.is_not(None)).distinct()).scalars())
    engaged = set(db.session.execute(select(Event.contact_id).where(
        Event.account_id == account_id, Event.contact_id.is_not(None),
        Event.occurred_at >= now - ENGAGED_WINDOW).distinct()).scalars())
    out = []
    for role in roles:
        ids = [c.id for c in contacts if (c.buying_role or "other") == role]
        out.append({"role": role, "contacts": len(ids), "reached": sum(1 for i in ids if i in reached),
                    "engaged": sum(1 for i in ids if i in engaged)})
    return out


def playbooks_of(account_id: int) -> list[dict]:
    rows = db.session.execute(
        select(Enrollment, Playbook.key, Playbook.name, Playbook.status).join(Playbook, Playbook.id == Enrollment.playbook_id)
        .where(Enrollment.account_id == account_id).order_by(Enrollment.entered_at.desc())).all()
    return [{"playbook": key, "name": name, "playbook_status": status, "state": e.state,
             "step_index": e.step_index, "next_run_at": e.next_run_at, "entered_at": e.entered_at,
             "exit_reason": e.exit_reason} for e, key, name, status in rows]
