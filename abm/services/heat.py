"""Honest heat: how much of each new event counts, before the drain scores it.

Two rules of the workspace's ``heat`` settings set an event's ``factor`` (the share of
its points that counts, stored with it, so that the incremental score and a full
recompute agree exactly):

- **Repeated opens.** An ``email_open`` of a touch (one email to one contact) that comes
  within ``open_window_hours`` of a counted open of the same touch counts nothing
  (factor 0): three loads of the same email are one open. The event is still stored.
- **Passive cap.** Passive exposure (``passive_types``: ad impressions, opens,
  deliveries) earns an account at most ``passive_cap.points`` points per period of
  ``passive_cap.days`` days (periods counted from 2020-01-01, the score's epoch),
  before decay. Within a period the points are handed out in the order the events
  happened; the event that reaches the cap counts in part, later ones not at all.

- **Intent strength.** A third-party ``intent`` event counts in proportion to its
  strength (``properties.score``, 0 to 100) times its topic's weight (settings
  ``intent.topics``, by topic name without case; ``intent.default_topic_weight`` for
  the others): a 78 on a topic of weight 1.5 counts 1.17 times the ``intent`` weight.

The rules apply to events as they arrive: changing them re-scores history with the
factors already stored, and applies the new rule to the events that come after.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import func, select

from abm.db import db, in_list
from abm.models import Event
from abm.scoring import DAY, SCORE_EPOCH, event_weight
from abm.services import scores


def passive_types(cfg: dict) -> frozenset[str]:
    return frozenset(cfg["heat"]["passive_types"])


def set_factors(rows: list[dict], cfg: dict) -> None:
    """Set ``factor`` on each of a batch's matched event rows (dicts, before insert)."""
    for r in rows:
        r.setdefault("factor", 1.0)
    _repeated_opens(rows, cfg)
    _intent_strength(rows, cfg)
    _passive_cap(rows, cfg)


def _intent_strength(rows: list[dict], cfg: dict) -> None:
    topics = {name.lower(): float(weight) for name, weight in cfg["intent"]["topics"].items()}
    default = float(cfg["intent"]["default_topic_weight"])
    for r in rows:
        if r["type"] != "intent":
            continue
        props = r.get("properties") or {}
        score = props.get("score")
        strength = float(score) / 100 if isinstance(score, (int, float)) and 0 <= score <= 100 else 1.0
        r["factor"] *= strength * topics.get(str(props.get("topic") or "").lower(), default)


def _repeated_opens(rows: list[dict], cfg: dict) -> None:
    hours = float(cfg["heat"].get("open_window_hours") or 0)
    opens = sorted((r for r in rows if r["type"] == "email_open" and r.get("touch_id")),
                   key=lambda r: r["occurred_at"])
    if not hours or not opens:
        return
    window = timedelta(hours=hours)
    counted: dict[int, list[datetime]] = defaultdict(list)
    touch_ids = list({r["touch_id"] for r in opens})
    for i in range(0, len(touch_ids), 1000):
        for touch_id, at in db.session.execute(select(Event.touch_id, Event.occurred_at).where(
                Event.type == "email_open", in_list(Event.touch_id, touch_ids[i:i + 1000]), Event.factor > 0,
                Event.occurred_at >= opens[0]["occurred_at"] - window,
                Event.occurred_at <= opens[-1]["occurred_at"])):
            counted[touch_id].append(at)
    for r in opens:
        times = counted[r["touch_id"]]
        if any(r["occurred_at"] - window < at <= r["occurred_at"] for at in times):
            r["factor"] = 0.0
        else:
            times.append(r["occurred_at"])


def period_of(at: datetime, days: int) -> tuple[datetime, datetime]:
    """The cap period holding ``at``: [start, end)."""
    index = int((at - SCORE_EPOCH).total_seconds() // (days * DAY))
    start = SCORE_EPOCH + timedelta(days=index * days)
    return start, start + timedelta(days=days)


def _passive_cap(rows: list[dict], cfg: dict) -> None:
    cap = cfg["heat"]["passive_cap"]
    if cap.get("points") is None:
        return
    passive = passive_types(cfg)
    groups: dict[tuple[int, datetime], list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("account_id") and r["type"] in passive and r["factor"] > 0:
            groups[(r["account_id"], period_of(r["occurred_at"], cap["days"])[0])].append(r)
    if not groups:
        return
    used = _used(groups, cfg)
    for key, members in groups.items():
        left = max(0.0, float(cap["points"]) - used.get(key, 0.0))
        for r in sorted(members, key=lambda r: r["occurred_at"]):
            points = event_weight(r["type"], r.get("url"), cfg) * r.get("quantity", 1) * r["factor"]
            if points <= 0:
                continue
            share = min(1.0, left / points)
            r["factor"] *= share
            left -= points * share


def _used(groups: dict, cfg: dict) -> dict[tuple[int, datetime], float]:
    """Passive points already stored per (account, period start) of the groups."""
    days = cfg["heat"]["passive_cap"]["days"]
    points = scores.weight_expr(cfg) * Event.quantity * Event.factor
    by_period: dict[datetime, list[int]] = defaultdict(list)
    for account_id, start in groups:
        by_period[start].append(account_id)
    used: dict[tuple[int, datetime], float] = {}
    for start, ids in by_period.items():
        for i in range(0, len(ids), 1000):
            for account_id, total in db.session.execute(
                    select(Event.account_id, func.sum(points)).where(
                        in_list(Event.account_id, ids[i:i + 1000]), Event.type.in_(sorted(passive_types(cfg))),
                        Event.occurred_at >= start, Event.occurred_at < start + timedelta(days=days))
                    .group_by(Event.account_id)):
                used[(account_id, start)] = float(total or 0.0)
    return used
