"""Alerts: reasons for a seller to act on an account, raised, explained and recorded.

Three things raise one:

- an account rises a level (cold to warm, warm to hot), checked in each drain batch;
- its engagement surges: its score now is at least ``alerts.surge_ratio`` times its
  score seven days ago and ``alerts.surge_min_points`` more. The score a week ago comes
  from the events themselves (``scores.scores_week_ago``), so a surge is seen from the
  first day, checked in each drain batch and swept hourly (events matched late);
- a playbook's alert step addressed to a user of the product (``from_playbook_touches``;
  the playbook's own touch delivers it, the inbox keeps it);
- a third-party intent signal on a topic at ``intent.alert_min_score`` or more
  (``on_intent``): "Acme is researching Zero Trust (score 78, bombora)".

De-duplication is per account and *reason* (``level:warm``, ``level:hot``, ``surge``,
``intent:<topic>``, ``playbook:<id>:<step>``) within ``alerts.period_days``: a warm-to-hot escalation is a
new alert, and so is a second surge (the score surging again from where the last surge
alert left it). Each alert keeps what was behind it (the week's events by type, contact
and playbook, the score before and after) and a suggested next step, so the inbox
(:mod:`abm.services.alert_inbox`) explains it without reading history again.

An alert is recorded with the touch that delivers it through the workspace's default
``alert`` connector (Slack, email...); the touch goes out like a playbook step's (claim,
retry, rate limit, recovery) and the alert shows its outcome. It obeys a playbook alert
step's rules too (``touches.schedule_alerts``): the workspace send window in the
account's time zone, and a cap per account (``alerts.cap``, by default 3 a day, counting
playbook alert steps' touches as well); a capped alert waits for the next free slot. The
inbox shows the alert at once; only the ping waits. ``alerts.immediate: true`` sends
alerts at once, day and night (the cap still applies), for teams whose sellers want a
surge the minute it happens, whatever the hour.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, select, update

from abm.db import db, in_list, utcnow
from abm.models import Account, Alert, Contact, Event, Opportunity, Playbook, Touch, User
from abm.scoring import level, level_rank, score_at
from abm.services import connectors as connector_service
from abm.services import scores, touches
from abm.services import settings as settings_service
from abm.services.sales_view import pre_opportunity_stages
from workers import enqueue

#: The window of events an alert's explanation and a surge look at.
WEEK = timedelta(days=7)
#: Intent signals older than this raise no alert (weekly files arrive a few days late).
INTENT_RECENT = timedelta(days=14)


@dataclass
class Candidate:
    account_id: int
    kind: str
    reason: str
    before: float
    after: float
    #: a level alert that is also a surge: it covers the surge reason too
    surge: bool = False
    #: what an intent alert says was researched: (topic, score, provider)
    intent: tuple | None = None


def on_scores_changed(changes: dict[int, tuple[float, float]], now: datetime | None = None) -> list[int]:
    """Raise the level and surge alerts a drain batch calls for.

    ``changes`` maps account ids to (score before, score after). Returns the new alert ids.
    """
    now = now or utcnow()
    cfg = settings_service.current()
    levels = _level_candidates(changes, cfg)
    surging = _surge_candidates([aid for aid, (before, after) in changes.items() if after > before], now, cfg)
    rising = {c.account_id: c for c in levels}
    for c in surging:  # one alert, not two, for an account that rises a level by surging
        if c.account_id in rising:
            rising[c.account_id].surge = True
    return _raise(levels + [c for c in surging if c.account_id not in rising], now, cfg)


def _level_candidates(changes: dict[int, tuple[float, float]], cfg: dict) -> list[Candidate]:
    thresholds = cfg["thresholds"]
    out = []
    for aid, (before, after) in changes.items():
        new = level(after, thresholds)
        if level_rank(new) > level_rank(level(before, thresholds)):
            out.append(Candidate(aid, "level_up", f"level:{new}", before, after))
    return out


def _surge_candidates(account_ids: list[int], now: datetime, cfg: dict) -> list[Candidate]:
    """Accounts among ``account_ids`` whose score surged against a week ago (from events)."""
    rules = cfg["alerts"]
    ratio, min_points = rules.get("surge_ratio", 2.0), rules.get("surge_min_points", 10)
    factor = score_at(1.0, now, cfg["half_life_days"])
    out = []
    for i in range(0, len(account_ids), 1000):
        rows = db.session.execute(select(Account.id, Account.score_ref).where(
            in_list(Account.id, account_ids[i:i + 1000]), Account.score_ref * factor >= min_points)).all()
        week_ago = scores.scores_week_ago(rows, now)
        for r in rows:
            score, then = r.score_ref * factor, week_ago[r.id]
            if score >= then * ratio and score - then >= min_points:
                out.append(Candidate(r.id, "surge", "surge", then, score))
    return out


def surges(now: datetime | None = None) -> list[int]:
    """The hourly sweep: surge alerts for accounts with events this week (late matches too)."""
    now = now or utcnow()
    cfg = settings_service.current()
    ids = list(db.session.execute(select(Event.account_id).where(
        Event.account_id.is_not(None), Event.occurred_at > now - WEEK).distinct()).scalars())
    return _raise(_surge_candidates(ids, now, cfg), now, cfg)


def on_intent(rows: list[dict], now: datetime | None = None) -> list[int]:
    """Alerts for stored intent events strong enough (``intent.alert_min_score``): the
    strongest signal per account and topic of the batch."""
    now = now or utcnow()
    cfg = settings_service.current()
    floor = cfg["intent"].get("alert_min_score", 60)
    best: dict[tuple[int, str], Candidate] = {}
    for r in rows:
        props = r.get("properties") or {}
        score, topic = props.get("score"), str(props.get("topic") or "").strip()
        if r["type"] != "intent" or not r.get("account_id") or not topic or not isinstance(score, (int, float)):
            continue
        if score < floor or r["occurred_at"] < now - INTENT_RECENT:  # an old file's signals are history
            continue
        key = (r["account_id"], topic.lower())
        if key not in best or score > best[key].after:
            best[key] = Candidate(r["account_id"], "intent", f"intent:{topic.lower()}"[:100], float(score),
                                  float(score), intent=(topic, score, props.get("provider")))
    return _raise(list(best.values()), now, cfg) if best else []


def _reason_of(alert) -> str:
    """An alert's reason (rows from before reasons were stored: derived from the kind)."""
    if alert.reason:
        return alert.reason
    return f"level:{alert.level}" if alert.kind == "level_up" else alert.kind


def _fresh(candidates: list[Candidate], now: datetime, cfg: dict) -> list[Candidate]:
    """The candidates no alert of the same account and reason already covers this period.

    A surge is covered only while the score has not surged again from the last surge
    alert's score (then it is a second surge, a new alert)."""
    rules = cfg["alerts"]
    period = timedelta(days=rules.get("period_days", 7))
    ratio, min_points = rules.get("surge_ratio", 2.0), rules.get("surge_min_points", 10)
    ids = list({c.account_id for c in candidates})
    last: dict[tuple[int, str], float | None] = {}
    for i in range(0, len(ids), 1000):
        for a in db.session.execute(select(Alert.account_id, Alert.reason, Alert.kind, Alert.level,
                                           Alert.score_after, Alert.details).where(
                in_list(Alert.account_id, ids[i:i + 1000]), Alert.created_at >= now - period)
                .order_by(Alert.created_at)):
            last[(a.account_id, _reason_of(a))] = a.score_after
            if (a.details or {}).get("surge"):
                last[(a.account_id, "surge")] = a.score_after
    fresh, seen = [], set()
    for c in candidates:
        key = (c.account_id, c.reason)
        if key in seen:
            continue
        if key in last:
            previous = last[key]
            if c.kind != "surge" or previous is None:
                continue
            if not (c.after >= previous * ratio and c.after - previous >= min_points):
                continue
        seen.add(key)
        fresh.append(c)
    return fresh


def _raise(candidates: list[Candidate], now: datetime, cfg: dict) -> list[int]:
    fresh = _fresh(candidates, now, cfg)
    if not fresh:
        return []
    ids = list({c.account_id for c in fresh})
    accounts = {a.id: a for a in db.session.execute(select(
        Account.id, Account.name, Account.owner_id, Account.stage).where(in_list(Account.id, ids))).all()}
    behind = explain_events(ids, now, cfg)
    open_opps = open_opportunities(ids)
    made = []
    for c in fresh:
        account = accounts.get(c.account_id)
        if account is None:
            continue
        details = dict(behind.get(c.account_id, {}), surge=c.kind == "surge" or c.surge)
        lvl = level(c.after, cfg["thresholds"])
        if c.kind == "intent":
            topic, strength, provider = c.intent
            message = f"{account.name} is researching {topic} (score {strength:.0f}{', ' + provider if provider else ''})"
            details["intent"] = {"topic": topic, "score": strength, "provider": provider}
        elif c.kind == "surge":
            message = f"{account.name} is surging: score {c.after:.0f}, up from {c.before:.0f} a week ago"
        else:
            message = f"{account.name} is now {lvl} (score {c.after:.0f}, up from {c.before:.0f})"
            message += ", a surge" if c.surge else ""
        made.append({"account_id": c.account_id, "user_id": account.owner_id, "kind": c.kind, "level": lvl,
                     "reason": c.reason, "score_before": round(c.before, 2), "score_after": round(c.after, 2),
                     "details": details, "created_at": now, "status": "open", "message": message,
                     "suggestion": suggest(account, details, open_opps.get(c.account_id), cfg)})
    return _record(made)


def explain_events(account_ids: list[int], now: datetime, cfg: dict) -> dict[int, dict]:
    """What each account did in the last seven days: points and counts by event type, the
    contacts and the playbooks behind them (a few of each, most points first)."""
    weight = scores.weight_expr(cfg) * Event.quantity * Event.factor
    groups: dict[int, list] = defaultdict(list)
    for i in range(0, len(account_ids), 1000):
        for row in db.session.execute(
                select(Event.account_id, Event.type, Event.contact_id, Event.playbook_id,
                       func.sum(Event.quantity), func.sum(weight))
                .where(in_list(Event.account_id, account_ids[i:i + 1000]), Event.occurred_at > now - WEEK)
                .group_by(Event.account_id, Event.type, Event.contact_id, Event.playbook_id)):
            groups[row[0]].append(row)
    contact_ids = {r[2] for rows in groups.values() for r in rows if r[2]}
    playbook_ids = {r[3] for rows in groups.values() for r in rows if r[3]}
    contacts = {c.id: c for c in db.session.execute(select(
        Contact.id, Contact.first_name, Contact.last_name, Contact.email, Contact.buying_role)
        .where(in_list(Contact.id, list(contact_ids)))).all()} if contact_ids else {}
    playbooks = dict(db.session.execute(select(Playbook.id, Playbook.name).where(
        in_list(Playbook.id, list(playbook_ids)))).all()) if playbook_ids else {}
    return {aid: _summary(rows, contacts, playbooks) for aid, rows in groups.items()}


def _summary(rows, contacts: dict, playbooks: dict) -> dict:
    by_type: dict[str, list] = defaultdict(lambda: [0, 0.0])
    by_contact: dict[int, float] = defaultdict(float)
    by_playbook: dict[int, float] = defaultdict(float)
    for _aid, etype, contact_id, playbook_id, count, points in rows:
        by_type[etype][0] += int(count or 0)
        by_type[etype][1] += float(points or 0.0)
        if contact_id:
            by_contact[contact_id] += float(points or 0.0)
        if playbook_id:
            by_playbook[playbook_id] += float(points or 0.0)

    def top(bucket, n):
        return sorted(bucket.items(), key=lambda kv: -kv[1])[:n]

    def contact_name(c):
        return " ".join(p for p in (c.first_name, c.last_name) if p) or c.email or "a contact"

    return {
        "days": WEEK.days,
        "by_type": [{"type": t, "count": n, "points": round(p, 1)}
                    for t, (n, p) in sorted(by_type.items(), key=lambda kv: -kv[1][1])],
        "contacts": [{"id": cid, "name": contact_name(contacts[cid]), "role": contacts[cid].buying_role,
                      "points": round(p, 1)} for cid, p in top(by_contact, 3) if cid in contacts],
        "playbooks": [{"id": pid, "name": playbooks.get(pid, "a playbook"), "points": round(p, 1)}
                      for pid, p in top(by_playbook, 2)],
    }


def open_opportunities(account_ids: list[int]) -> dict[int, dict]:
    """The newest open (not closed) opportunity of each account."""
    out: dict[int, dict] = {}
    for i in range(0, len(account_ids), 1000):
        for o in db.session.execute(select(
                Opportunity.account_id, Opportunity.name, Opportunity.stage, Opportunity.amount, Opportunity.currency)
                .where(in_list(Opportunity.account_id, account_ids[i:i + 1000]), Opportunity.closed_at.is_(None))
                .order_by(Opportunity.created_at)):
            out[o.account_id] = {"name": o.name, "stage": o.stage, "currency": o.currency,
                                 "amount": float(o.amount) if o.amount is not None else None}
    return out


def suggest(account, details: dict, opportunity: dict | None, cfg: dict) -> str:
    """A next step in words, from who engaged, the playbook behind it and the stage."""
    people = details.get("contacts") or []
    playbooks = details.get("playbooks") or []
    who = f"{people[0]['name']}" + (f" ({people[0]['role'].replace('_', ' ')})" if people[0].get("role") else "") \
        if people else None
    if opportunity:
        step = f"Check in on the open opportunity “{opportunity['name']}”"
        step += f" with {who}" if who else ""
    elif account.stage in pre_opportunity_stages(cfg["stages"]):
        step = f"Call {who}" if who else "Reach out to the buying committee"
        step += " and qualify an opportunity"
    else:
        step = f"Reach out to {who}" if who else "Reach out to the account"
    if playbooks:
        step += f"; they are responding to the playbook “{playbooks[0]['name']}”"
    if details.get("intent"):
        step += f"; open with {details['intent']['topic']}, which the account is researching"
    return step + "."


def _record(made: list[dict]) -> list[int]:
    """Store alerts in bulk; each one still to send (``open``) gets the touch that delivers
    it, enqueued after the commit. An alert goes out as a touch of the workspace's default
    ``alert`` connector: the same claim, retry (the provider's Retry-After), rate limit
    and recovery as a playbook's steps, and the alert shows the touch's outcome
    (``delivery.mirror_alerts``). Without an owner or an alert connector the alert is
    ``failed`` at once, with the reason."""
    if not made:
        return []
    ids = list(db.session.execute(insert(Alert).returning(Alert.id), made).scalars())
    to_send = [(i, m) for i, m in zip(ids, made, strict=True) if m["status"] == "open"]
    name = connector_service.default_for("alert") if to_send else None
    owners = _owner_emails({m["user_id"] for _, m in to_send if m["user_id"]})
    rows, unsendable = [], []
    for alert_id, m in to_send:
        to = owners.get(m["user_id"])
        if to is None or name is None:
            reason = "the account has no owner" if to is None else "no default alert connector is configured"
            unsendable.append({"aid": alert_id, "err": reason})
            continue
        rows.append(_touch_row(alert_id, m, to, name))
    zones = dict(db.session.execute(select(Account.id, Account.timezone).where(
        in_list(Account.id, sorted({r["account_id"] for r in rows})))).all()) if rows else {}
    touches.schedule_alerts(rows, zones, rows[0]["created_at"] if rows else None)
    unsendable += [{"aid": r["alert_id"], "err": f"not sent: {r['error']}"} for r in rows if r["status"] == "suppressed"]
    if unsendable:
        table = Alert.__table__
        db.session.execute(update(table).where(table.c.id == bindparam("aid")).values(
            status="failed", error=bindparam("err")), unsendable)
    written = db.session.execute(insert(Touch).returning(Touch.id, Touch.connector, Touch.status),
                                 rows).all() if rows else []
    db.session.commit()
    enqueue.touches([(w[0], w[1]) for w in written if w[2] == "queued"])  # the dispatcher queues the rest then
    return ids


def _owner_emails(user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    return dict(db.session.execute(select(User.id, User.email).where(in_list(User.id, sorted(user_ids)))).all())


def _touch_row(alert_id: int, alert: dict, to: str, connector: str) -> dict:
    now = alert["created_at"]
    return {"alert_id": alert_id, "enrollment_id": None, "playbook_id": None, "account_id": alert["account_id"],
            "contact_id": None, "contact_key": 0, "step_id": f"alert:{alert_id}", "step_index": 0, "kind": "alert",
            "channel": "alert", "connector": connector, "status": "queued",
            "payload": {"to": to, "message": alert["message"]}, "due_at": now, "queued_at": now,
            "attempts": 0, "created_at": now, "updated_at": now}


def from_playbook_touches(rows: list[dict], now: datetime | None = None) -> list[int]:
    """Inbox alerts for the alert touches a dispatcher batch made for users of the product.

    ``rows`` are the batch's touch rows; those of alert steps, queued or scheduled, whose
    recipient is a user get an alert (status ``playbook``: the touch delivers it), with
    the step's message as the suggested next step. Returns the new alert ids.
    """
    now = now or utcnow()
    wanted = [r for r in rows if r.get("kind") == "alert" and r.get("status") in ("queued", "scheduled")
              and (r.get("payload") or {}).get("to")]
    if not wanted:
        return []
    cfg = settings_service.current()
    users = dict(db.session.execute(select(func.lower(User.email), User.id).where(
        in_list(func.lower(User.email), list({r["payload"]["to"].lower() for r in wanted})))).all())
    wanted = [r for r in wanted if r["payload"]["to"].lower() in users]
    candidates = [Candidate(r["account_id"], "playbook", f"playbook:{r['playbook_id']}:{r['step_id']}", 0.0, 0.0)
                  for r in wanted]
    keep = {(c.account_id, c.reason) for c in _fresh(candidates, now, cfg)}
    ids = list({r["account_id"] for r in wanted})
    accounts = {a.id: a for a in db.session.execute(select(Account.id, Account.name, Account.score).where(
        in_list(Account.id, ids))).all()}
    names = dict(db.session.execute(select(Playbook.id, Playbook.name).where(
        in_list(Playbook.id, list({r["playbook_id"] for r in wanted})))).all())
    behind = explain_events(ids, now, cfg)
    made = []
    for r in wanted:
        reason = f"playbook:{r['playbook_id']}:{r['step_id']}"
        if (r["account_id"], reason) not in keep or r["account_id"] not in accounts:
            continue
        keep.discard((r["account_id"], reason))
        account = accounts[r["account_id"]]
        playbook = names.get(r["playbook_id"], "a playbook")
        made.append({"account_id": r["account_id"], "user_id": users[r["payload"]["to"].lower()],
                     "kind": "playbook", "level": level(account.score, cfg["thresholds"]), "reason": reason,
                     "score_before": None, "score_after": round(account.score, 2),
                     "details": behind.get(r["account_id"], {}), "created_at": now, "status": "playbook",
                     "message": f"The playbook “{playbook}” flagged {account.name} (step {r['step_id']})",
                     "playbook_id": r["playbook_id"], "step_id": r["step_id"],
                     "suggestion": r["payload"].get("message") or None})
    return _record(made)
