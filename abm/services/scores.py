"""Account scores: incremental updates per drain batch, full recompute, breakdowns.

The rules are in :mod:`abm.scoring`. ``add_events`` adds each stored event's term to
its account's ``score_ref`` (one executemany), then ``refresh`` turns ``score_ref``
into ``score`` and ``engagement`` at ``now`` with one UPDATE. ``recompute`` rebuilds
every ``score_ref`` from the events table in one aggregate UPDATE, with the weights
and half-life in force: the two agree to the cent (a test holds them to it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, case, func, literal, or_, select, text, update

from abm.db import db, in_list, utcnow
from abm.models import Account, Contact, Event, Playbook, ScoreSnapshot
from abm.scoring import (
    DAY,
    SCORE_EPOCH,
    decayed,
    driven_by,
    event_weight,
    level,
    level_case,
    level_rank,
    level_sql,
    ref_term,
    round_score,
    score_at,
)
from abm.services import settings as settings_service

_EPOCH_S = SCORE_EPOCH.timestamp()


def _epoch_seconds(column):
    """Seconds since 1970 as a float (date_part is float8 on PostgreSQL; extract is numeric)."""
    if db.dialect == "postgresql":
        return func.date_part("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def weight_expr(settings: dict, frequent: list[str] | None = None):
    """SQL for an event's weight: one CASE on the type; URL rules only inside web visits.

    The CASE tries the types in the order of ``frequent`` (most common first, the others
    after, in the settings' order): over millions of rows the comparisons a row goes
    through before its own type are a good part of the cost. The weights are the same
    whatever the order."""
    weights = settings["weights"]
    rules = settings.get("url_rules", [])
    by_type = {etype: literal(float(w)) for etype, w in weights.items() if w and etype != "web_visit"}
    if rules:
        by_type["web_visit"] = case(
            *[(Event.url.contains(rule["pattern"], autoescape=True), literal(float(rule["weight"]))) for rule in rules],
            else_=literal(float(weights.get("web_visit", 0))))
    elif weights.get("web_visit"):
        by_type["web_visit"] = literal(float(weights["web_visit"]))
    if frequent:
        rank = {etype: i for i, etype in enumerate(frequent)}
        by_type = dict(sorted(by_type.items(), key=lambda kv: rank.get(kv[0], len(rank))))  # stable for the rest
    return case(by_type, value=Event.type, else_=literal(0.0)) if by_type else literal(0.0)


def term_expr(settings: dict, frequent: list[str] | None = None):
    """weight * quantity * factor * 2 ** ((occurred_at - SCORE_EPOCH) / half_life), as exp() for speed."""
    rate = math.log(2.0) / (float(settings["half_life_days"]) * DAY)
    return (weight_expr(settings, frequent) * Event.quantity * Event.factor
            * func.exp((_epoch_seconds(Event.occurred_at) - _EPOCH_S) * rate))


def passive_term_expr(settings: dict, frequent: list[str] | None = None):
    """:func:`term_expr` for passive exposure (``heat.passive_types``), 0 for the rest."""
    passive = sorted(settings["heat"]["passive_types"])
    if not passive:
        return literal(0.0)
    # one comparison per type, not IN: the recompute's statement is compiled once and run as text
    return case((or_(*[Event.type == t for t in passive]), term_expr(settings, frequent)), else_=literal(0.0))


def _frequent_types() -> list[str]:
    """The event types from the most to the least common, from the planner's statistics
    (PostgreSQL; empty when the table was never analyzed)."""
    row = db.session.execute(text(
        "SELECT most_common_vals::text::text[], most_common_freqs FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = 'events' AND attname = 'type'")).first()
    if not row or not row[0]:
        return []
    return [t for t, _ in sorted(zip(row[0], row[1], strict=True), key=lambda tf: -tf[1])]


def _level_text(score_sql: str, cfg: dict) -> str:
    return level_sql(score_sql, cfg["thresholds"], db.session.get_bind().dialect)


def add_events(rows: list[dict], now: datetime | None = None) -> dict[int, tuple[float, float]]:
    """Add stored events (dicts with account_id, type, url, quantity, occurred_at) to their
    accounts' scores, and set their score and level at ``now``, in one statement.

    Returns ``{account_id: (score before, score after)}`` for every account the events touched.
    """
    now = now or utcnow()
    cfg = settings_service.current()
    hl = cfg["half_life_days"]
    passive = set(cfg["heat"]["passive_types"])
    increments: dict[int, float] = defaultdict(float)
    passive_inc: dict[int, float] = defaultdict(float)
    for r in rows:
        if r.get("account_id"):
            w = event_weight(r["type"], r.get("url"), cfg) * r.get("quantity", 1) * r.get("factor", 1.0)
            term = ref_term(w, r["occurred_at"], hl) if w else 0.0
            increments[r["account_id"]] += term
            passive_inc[r["account_id"]] += term if r["type"] in passive else 0.0
    if not increments:
        return {}
    factor = score_at(1.0, now, hl)
    if db.dialect == "postgresql":
        result = db.session.execute(text(
            "UPDATE accounts SET score_ref = accounts.score_ref + v.inc, passive_ref = accounts.passive_ref + v.pinc, "
            "score = (accounts.score_ref + v.inc) * :f, score_updated_at = :now, "
            f"engagement = {_level_text('(accounts.score_ref + v.inc) * :f', cfg)} "
            "FROM unnest(CAST(:ids AS integer[]), CAST(:incs AS double precision[]), "
            "CAST(:pincs AS double precision[])) AS v(aid, inc, pinc) "
            "WHERE accounts.id = v.aid RETURNING accounts.id, accounts.score_ref"),
            {"ids": list(increments), "incs": list(increments.values()),
             "pincs": [passive_inc[aid] for aid in increments], "f": factor, "now": now})
        after_ref = dict(result.all())
    else:
        db.session.execute(
            update(Account.__table__).where(Account.__table__.c.id == bindparam("aid"))
            .values(score_ref=Account.__table__.c.score_ref + bindparam("inc"),
                    passive_ref=Account.__table__.c.passive_ref + bindparam("pinc")),
            [{"aid": aid, "inc": inc, "pinc": passive_inc[aid]} for aid, inc in increments.items()])
        refresh(set(increments), now)
        after_ref = dict(db.session.execute(select(Account.id, Account.score_ref)
                                            .where(Account.id.in_(list(increments)))).all())
    return {aid: ((ref - increments[aid]) * factor, ref * factor) for aid, ref in after_ref.items()}


def refresh(account_ids: set[int] | None = None, now: datetime | None = None) -> None:
    """Set ``score`` and ``engagement`` from ``score_ref`` at ``now``, for some or all accounts."""
    now = now or utcnow()
    cfg = settings_service.current()
    factor = score_at(1.0, now, cfg["half_life_days"])
    current = Account.score_ref * factor
    values = {
        "updated_at": Account.updated_at,  # a score is not an edit of the account
        "score": current,
        "engagement": level_case(current, cfg["thresholds"]),
        "score_updated_at": now,
    }
    if account_ids is None:
        db.session.execute(update(Account).values(**values).execution_options(synchronize_session=False))
        return
    ids = list(account_ids)
    for i in range(0, len(ids), 1000):
        db.session.execute(update(Account).where(Account.id.in_(ids[i:i + 1000])).values(**values)
                           .execution_options(synchronize_session=False))


def recompute(now: datetime | None = None) -> int:
    """Rebuild every account's score from all its events; returns the accounts with a score.

    On PostgreSQL: the per-account sums go into a temporary table with one
    ``CREATE TABLE AS`` (which, unlike an ``UPDATE ... FROM (aggregate)``, the server runs
    as a parallel scan), one row per account with 0.0 where an account has no events;
    then one ``UPDATE`` of all accounts joins that table (one scan of the accounts; the
    sums never travel to Python and back). The events table is locked against inserts
    (SHARE) for the duration, so a drain running at the same time waits instead of
    adding terms between the sum and the update.
    """
    now = now or utcnow()
    cfg = settings_service.current()
    postgresql = db.dialect == "postgresql"
    frequent = _frequent_types() if postgresql else None
    sums = (select(Event.account_id.label("aid"), func.sum(term_expr(cfg, frequent)).label("total"),
                   func.sum(passive_term_expr(cfg, frequent)).label("passive"))
            .where(Event.account_id.is_not(None)).group_by(Event.account_id).subquery())
    if postgresql:
        db.session.execute(text("LOCK TABLE events IN SHARE MODE"))
        db.session.execute(text("SET LOCAL work_mem = '64MB'"))  # the per-account sums fit in memory
        per_account = (select(Account.id, func.coalesce(sums.c.total, 0.0).label("ref"),
                              func.coalesce(sums.c.passive, 0.0).label("passive"),
                              (sums.c.aid.is_not(None)).label("has_events"))
                       .select_from(Account.__table__.outerjoin(sums, sums.c.aid == Account.id)))
        conn = db.session.connection()
        compiled = per_account.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE recompute_sums ON COMMIT DROP AS {compiled}", compiled.params)
        factor = score_at(1.0, now, cfg["half_life_days"])
        db.session.execute(text(
            "UPDATE accounts SET score_ref = s.ref, passive_ref = s.passive, score = s.ref * :f, "
            "score_updated_at = :now, "
            f"engagement = {_level_text('s.ref * :f', cfg)} FROM recompute_sums AS s WHERE accounts.id = s.id"),
            {"f": factor, "now": now})
        n = db.session.execute(text("SELECT count(*) FROM recompute_sums WHERE has_events")).scalar_one()
        db.session.commit()
        return n
    db.session.execute(update(Account.__table__).where(Account.__table__.c.score_ref != 0)
                       .values(score_ref=0.0, passive_ref=0.0, updated_at=Account.__table__.c.updated_at))
    db.session.execute(update(Account.__table__).where(Account.__table__.c.id == sums.c.aid)
                       .values(score_ref=sums.c.total, passive_ref=sums.c.passive,
                               updated_at=Account.__table__.c.updated_at))
    refresh(None, now)
    db.session.commit()
    return db.session.execute(select(func.count()).select_from(sums)).scalar_one()


def rescore(account_ids: set[int], now: datetime | None = None) -> None:
    """Recompute the scores of a few accounts from their events (after late matching)."""
    if not account_ids:
        return
    cfg = settings_service.current()
    ids = list(account_ids)
    for i in range(0, len(ids), 1000):
        chunk = ids[i:i + 1000]
        sub = (select(func.coalesce(func.sum(term_expr(cfg)), 0.0))
               .where(Event.account_id == Account.id).scalar_subquery())
        passive = (select(func.coalesce(func.sum(passive_term_expr(cfg)), 0.0))
                   .where(Event.account_id == Account.id).scalar_subquery())
        db.session.execute(update(Account).where(Account.id.in_(chunk)).values(score_ref=sub, passive_ref=passive)
                           .execution_options(synchronize_session=False))
    refresh(set(ids), now)


def breakdown(account_id: int, now: datetime | None = None, recent: int = 50) -> dict:
    """The score of one account, by event type, by contact, by playbook and by intent topic,
    with its events (an intent event with its topic, strength and provider)."""
    now = now or utcnow()
    cfg = settings_service.current()
    hl = cfg["half_life_days"]
    rows = db.session.execute(
        select(Event.id, Event.type, Event.occurred_at, Event.url, Event.contact_id, Event.playbook_id,
               Event.source, Event.quantity, Event.factor, Event.properties).where(Event.account_id == account_id)
        .order_by(Event.occurred_at.desc())).all()
    passive_types = set(cfg["heat"]["passive_types"])
    by_type: dict[str, dict] = defaultdict(lambda: {"events": 0, "points": 0.0})
    by_contact: dict[int | None, dict] = defaultdict(lambda: {"events": 0, "points": 0.0})
    by_playbook: dict[int | None, dict] = defaultdict(lambda: {"events": 0, "points": 0.0})
    by_topic: dict[str, dict] = defaultdict(lambda: {"events": 0, "points": 0.0, "strength": None, "last": None})
    events, total, passive = [], 0.0, 0.0
    for r in rows:
        weight = event_weight(r.type, r.url, cfg) * r.quantity * r.factor
        points = decayed(weight, r.occurred_at, now, hl)
        total += points
        passive += points if r.type in passive_types else 0.0
        for bucket, key in ((by_type, r.type), (by_contact, r.contact_id), (by_playbook, r.playbook_id)):
            bucket[key]["events"] += r.quantity
            bucket[key]["points"] += points
        signal = intent_of(r.type, r.properties)
        if signal is not None:
            topic = by_topic[signal["topic"]]
            topic["events"] += r.quantity
            topic["points"] += points
            if signal["strength"] is not None and (topic["strength"] is None or signal["strength"] > topic["strength"]):
                topic["strength"] = signal["strength"]
            topic["last"] = topic["last"] or r.occurred_at.isoformat()  # rows come newest first
        if len(events) < recent:
            events.append({"id": r.id, "type": r.type, "occurred_at": r.occurred_at.isoformat(),
                           "url": r.url, "contact_id": r.contact_id, "playbook_id": r.playbook_id,
                           "source": r.source, "quantity": r.quantity, "weight": weight, "points": round_score(points),
                           "counted": r.factor, "passive": r.type in passive_types, "intent": signal})
    contacts = {c.id: c for c in db.session.execute(
        select(Contact).where(Contact.id.in_([k for k in by_contact if k]))).scalars()} if by_contact else {}
    playbooks = {p.id: p for p in db.session.execute(
        select(Playbook).where(Playbook.id.in_([k for k in by_playbook if k]))).scalars()} if by_playbook else {}

    def _rows(bucket, label):
        out = [{**label(k), "events": v["events"], "points": round_score(v["points"])} for k, v in bucket.items()]
        return sorted(out, key=lambda x: -x["points"])

    score = round_score(total)
    return {
        "account_id": account_id,
        "score": score,
        "engagement": level(total, cfg["thresholds"]),
        "half_life_days": hl,
        "at": now.isoformat(),
        "active": round_score(total - passive),
        "passive": round_score(passive),
        "driven_by": driven_by(total, passive),
        "passive_cap": cfg["heat"]["passive_cap"] if cfg["heat"]["passive_cap"].get("points") is not None else None,
        "by_type": _rows(by_type, lambda k: {"type": k, "passive": k in passive_types}),
        "by_contact": _rows(by_contact, lambda k: {
            "contact_id": k,
            "name": (contacts[k].full_name or contacts[k].email) if k in contacts else "(account-level)",
            "role": contacts[k].buying_role if k in contacts else None}),
        "by_playbook": _rows(by_playbook, lambda k: {
            "playbook": playbooks[k].key if k in playbooks else None,
            "name": playbooks[k].name if k in playbooks else "(not from a playbook)"}),
        "by_topic": sorted(({"topic": k, "events": v["events"], "points": round_score(v["points"]),
                             "strength": v["strength"], "last": v["last"]} for k, v in by_topic.items()),
                           key=lambda x: (-x["points"], x["topic"])),
        "events": events,
    }


def intent_of(event_type: str, properties: dict | None) -> dict | None:
    """An intent event's topic, strength (its score, 0 to 100) and provider; None for others."""
    if event_type != "intent":
        return None
    props = properties or {}
    score = props.get("score")
    try:
        strength = None if score is None else round(float(score), 1)
    except (TypeError, ValueError):
        strength = None
    return {"topic": str(props.get("topic") or "(no topic)"), "strength": strength,
            "provider": props.get("provider")}


def scores_at(account_ids: list[int], at: datetime) -> dict[int, float]:
    """Each account's score as it was at ``at``, computed from the events up to then."""
    if not account_ids:
        return {}
    cfg = settings_service.current()
    out: dict[int, float] = {}
    for i in range(0, len(account_ids), 1000):
        chunk = account_ids[i:i + 1000]
        q = (select(Event.account_id, func.sum(term_expr(cfg)))
             .where(Event.account_id.in_(chunk), Event.occurred_at <= at).group_by(Event.account_id))
        for aid, ref in db.session.execute(q):
            out[aid] = score_at(float(ref or 0.0), at, cfg["half_life_days"])
    return {aid: out.get(aid, 0.0) for aid in account_ids}


def scores_week_ago(accounts, now: datetime) -> dict[int, float]:
    """Each account's score seven days before ``now``, for rows with ``id`` and ``score_ref``.

    Exact and cheap: ``score_ref`` holds every stored event's term, so the score then is
    ``score_ref`` less the terms of the events of the last seven days, decayed to then.
    Only the week's events are read (the ``(account_id, occurred_at)`` index), whatever
    the length of the history and whether or not daily snapshots exist.
    """
    at = now - timedelta(days=7)
    refs = {a.id: a.score_ref or 0.0 for a in accounts}
    cfg = settings_service.current()
    ids = list(refs)
    for i in range(0, len(ids), 1000):
        q = (select(Event.account_id, func.sum(term_expr(cfg)))
             .where(in_list(Event.account_id, ids[i:i + 1000]), Event.occurred_at > at).group_by(Event.account_id))
        for aid, recent in db.session.execute(q):
            refs[aid] -= float(recent or 0.0)
    return {aid: score_at(ref, at, cfg["half_life_days"]) for aid, ref in refs.items()}


def snapshot(day: date | None = None, now: datetime | None = None) -> int:
    """Record today's score of every account with a score (for trends); idempotent per day."""
    now = now or utcnow()
    day = day or now.date()
    refresh(None, now)
    db.session.query(ScoreSnapshot).filter(ScoreSnapshot.day == day).delete(synchronize_session=False)
    rows = db.session.execute(select(Account.id, Account.score).where(Account.score > 0.005)).all()
    if rows:
        db.session.execute(ScoreSnapshot.__table__.insert(),
                           [{"account_id": a, "day": day, "score": round(s, 4)} for a, s in rows])
    db.session.commit()
    return len(rows)


def trend(account_ids: list[int], days: int = 30, now: datetime | None = None) -> dict[int, list[float]]:
    """Daily scores over the last ``days`` days from the snapshots (0 where none).

    On PostgreSQL each account's days come back as two arrays in one row (a page of 200
    accounts is 200 rows, not 6,000)."""
    now = now or utcnow()
    start = now.date() - timedelta(days=days - 1)
    out = {aid: [0.0] * days for aid in account_ids}
    if not account_ids:
        return out
    if db.dialect == "postgresql":
        rows = db.session.execute(text(
            "SELECT account_id, array_agg(day - CAST(:start AS date)), array_agg(score) FROM score_snapshots "
            "WHERE account_id = ANY(CAST(:ids AS integer[])) AND day >= :start GROUP BY account_id"),
            {"ids": list(account_ids), "start": start})
        for aid, offsets, values in rows:
            series = out[aid]
            for i, value in zip(offsets, values, strict=True):
                series[i] = value
        return out
    q = select(ScoreSnapshot.account_id, ScoreSnapshot.day, ScoreSnapshot.score).where(
        ScoreSnapshot.account_id.in_(account_ids), ScoreSnapshot.day >= start)
    for aid, day, score in db.session.execute(q):
        out[aid][(day - start).days] = score
    return out


def level_changes(candidate: dict, now: datetime | None = None) -> dict:
    """How many accounts would change level under the ``candidate`` settings (weights, URL
    rules, half-life, thresholds) against the levels now: ``{"changed", "up", "down",
    "moves": {(from, to): n}, "accounts", "later_only"}``. One aggregate over the events,
    as the recompute.

    The honest heat rules set each event's factor as it arrives (:mod:`abm.services.heat`):
    a change of them counts for the events after the save and moves no level now.
    ``later_only`` names such changed settings (``["heat"]`` or ``[]``), so the page can
    say why a heat change previews as no change."""
    now = now or utcnow()
    later_only = ["heat"] if candidate["heat"] != settings_service.current()["heat"] else []
    factor = score_at(1.0, now, candidate["half_life_days"])
    sums = (select(Event.account_id.label("aid"), func.sum(term_expr(candidate)).label("ref"))
            .where(Event.account_id.is_not(None)).group_by(Event.account_id).subquery())
    new_level = level_case(func.coalesce(sums.c.ref, 0.0) * factor, candidate["thresholds"]).label("new")
    rows = db.session.execute(select(Account.engagement, new_level, func.count())
                              .select_from(Account.__table__.outerjoin(sums, sums.c.aid == Account.id))
                              .group_by(Account.engagement, new_level)).all()
    moves = {(old, new): n for old, new, n in rows if old != new}
    return {"changed": sum(moves.values()), "accounts": sum(n for *_, n in rows),
            "up": sum(n for (old, new), n in moves.items() if level_rank(new) > level_rank(old)),
            "down": sum(n for (old, new), n in moves.items() if level_rank(new) < level_rank(old)),
            "moves": moves, "later_only": later_only}
