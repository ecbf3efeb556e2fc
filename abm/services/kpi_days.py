"""The attribution of each day's conversions, kept by day and refreshed incrementally.

Attribution is the costly part of the KPIs: every conversion joined to the touches at
its account within the window before it. A conversion's weights depend only on rows
dated before it (its account's touches within the window, its contact's earlier lead
events, its account's first lead event for the W-shaped model) and a lead's outcome on
the opportunities at its account within the window after it. So the rows that
:func:`abm.services.kpi_sql.attribution_statement` gives for one day's conversions (the
values behind the medians kept raw) change only when such a row arrives or changes.
:func:`refresh` keeps them in ``kpi_day_parts``, one row per (grouping, model, day),
and recomputes only the days that the rows changed since the last refresh reach;
:func:`period_rows` adds a period's days up into the rows the statement gives for the
whole period, which :func:`abm.services.kpis.compute` shapes: the same figures.

How changes are found (the state is in ``kpi_rollups`` under :data:`STATE_KEY`):

- touches by ``updated_at`` (``ix_touches_updated``) since the last refresh, less
  :data:`OVERLAP` for transactions that committed late: each dirties the days of the
  leads (a contact's first lead event) and opportunities at its account within the
  window after it;
- lead events inserted since (by id), and per day a fingerprint of the lead events of
  the days kept (their number and the sums of their ids, accounts and contacts), which
  catches events matched to an account or a contact after they arrived: each dirties
  its day, the days of its contact's later lead events (its first lead may have moved)
  and of the opportunities at its account created after it (the W-shaped model's lead);
- opportunities: a snapshot of every one (account, creation, close, won, amount)
  compared with the last; one changed, new or deleted dirties its day, before and
  after, and, when it is new, deleted, or moved (account or creation), the days of the
  leads at its account within the window before it (their outcome);
- the settings that weigh (model, window, half-life, lead events), the groupings kept,
  the playbooks' keys and the accounts (how many, the largest id): any change
  recomputes every day.

Only groupings a touch carries with it (:data:`GROUPS`) are kept: the others follow
account fields and segment memberships that change without a trace. The Markov model
is not kept: its weights depend on every journey of the period.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import aliased

from abm.db import db, utcnow
from abm.models import Account, Event, KpiDayPart, KpiRollup, Opportunity, Playbook, Touch
from abm.services import kpi_sql, kpis
from abm.services.kpi_sql import MARKETING_CHANNELS, at_or_before

STATE_KEY = "kpi-days"
#: Touches changed this long before the last refresh are read again: a transaction that
#: committed after the refresh read may carry an earlier ``updated_at``.
OVERLAP = timedelta(minutes=2)
GROUPS = ("playbook", "channel")
MEDIAN_VALUE = "days_to_opp_value"


def kept(group_by: str, model: str) -> bool:
    """Whether the answers of this grouping and model can be put together from days."""
    return group_by in GROUPS and model != "markov"


def day_of(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _sql_day(column):
    """The UTC day of a time column, in SQL (a date on PostgreSQL, text on SQLite)."""
    if db.dialect == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


# -- one day, and the days of a period ----------------------------------------------


def compute_day(group_by: str, model: str, day: date) -> dict:
    """The attribution rows of the conversions dated ``day`` (UTC)."""
    start = _start_of(day)
    _, path = kpis.touches_and_path(group_by, kpis.Period(start, start + timedelta(days=1)), None, None, model)
    return {"rows": [list(r) for r in kpi_sql.run(kpi_sql.attribution_statement(path, medians=False))]}


def _median(values: list[float]) -> float:
    """The middle value, or the mean of the two middle ones (as the SQL takes it)."""
    values = sorted(values)
    k = len(values)
    return (values[(k + 1) // 2 - 1] + values[(k + 2) // 2 - 1]) / 2


def period_rows(group_by: str, model: str, period: kpis.Period) -> list[tuple]:
    """The rows of :func:`kpi_sql.attribution_statement` for ``period`` (whole UTC days),
    added up from the days kept (:func:`refresh` first)."""
    parts = db.session.execute(select(KpiDayPart.data).where(
        KpiDayPart.group_by == group_by, KpiDayPart.model == model, KpiDayPart.day >= period.start.date(),
        KpiDayPart.day < period.end.date()).order_by(KpiDayPart.day)).scalars()
    sums: dict[tuple, list] = {}
    medians: dict[str, list[float]] = defaultdict(list)
    for data in parts:
        for part, g, *values in data["rows"]:
            if part == MEDIAN_VALUE:
                medians[g].append(values[0])
                continue
            acc = sums.setdefault((part, g), [None] * len(values))
            for i, v in enumerate(values):
                if v is not None:
                    acc[i] = v if acc[i] is None else acc[i] + v
    rows = [(part, g, *values) for (part, g), values in sums.items()]
    return rows + [("days_to_opp", g, _median(vs), 0.0, 0.0, 0.0) for g, vs in medians.items()]


# -- what changed --------------------------------------------------------------------


def _settings_mark(groups: tuple[str, ...], model: str) -> str:
    """A digest of what every day's rows depend on besides the rows themselves."""
    attribution = kpis.Attribution.current(model)
    accounts = db.session.execute(select(func.count(), func.max(Account.id))).one()
    playbooks = db.session.execute(select(Playbook.id, Playbook.key).order_by(Playbook.id)).all()
    seen = [sorted(groups), attribution.describe(), sorted(kpis.lead_types()), list(accounts),
            [list(p) for p in playbooks]]
    return hashlib.sha256(json.dumps(seen, default=str).encode()).hexdigest()


def _lead_events():
    return [Event.type.in_(kpis.lead_types()), Event.account_id.is_not(None)]


def _first_leads():
    """Lead events that are their contact's first at the account: the leads, whose
    weights and outcome are what touches and opportunities change."""
    earlier = aliased(Event)
    return [*_lead_events(), Event.contact_id.is_not(None),
            ~exists().where(earlier.contact_id == Event.contact_id, earlier.account_id == Event.account_id,
                            earlier.type.in_(kpis.lead_types()), earlier.occurred_at < Event.occurred_at)]


def lead_fingerprints(first: date, end: date) -> dict[str, list[int]]:
    """Per day of [first, end), the lead events' number and the sums of their ids,
    accounts and contacts."""
    day = _sql_day(Event.occurred_at)
    rows = db.session.execute(
        select(day, func.count(), func.sum(Event.id), func.sum(Event.account_id),
               func.coalesce(func.sum(Event.contact_id), 0))
        .where(*_lead_events(), Event.occurred_at >= _start_of(first), Event.occurred_at < _start_of(end))
        .group_by(day))
    return {str(d)[:10]: [int(v) for v in values] for d, *values in rows}


def opportunity_snapshot() -> dict[str, list]:
    """Every opportunity's account, creation, close, outcome and amount, by id."""
    rows = db.session.execute(select(Opportunity.id, Opportunity.account_id, Opportunity.created_at,
                                     Opportunity.closed_at, Opportunity.won, Opportunity.amount))
    return {str(i): [a, c.isoformat(), x.isoformat() if x else None, w, str(m) if m is not None else None]
            for i, a, c, x, w, m in rows}


def _days_in(statement) -> set[date]:
    return {day_of(at) for at in db.session.execute(statement).scalars() if at is not None}


def _after_touches(since: datetime, window: int) -> set[date]:
    """The days of the conversions that the touches changed since ``since`` may weigh in."""
    t = (select(Touch.account_id, Touch.sent_at).where(Touch.updated_at >= since, Touch.sent_at.is_not(None),
                                                       Touch.channel.in_(MARKETING_CHANNELS)).cte("changed"))

    def near(at_column):
        return and_(at_column >= t.c.sent_at, at_or_before(at_column, t.c.sent_at, window + 1))

    return (_days_in(select(Event.occurred_at).join(t, Event.account_id == t.c.account_id)
                     .where(*_first_leads(), near(Event.occurred_at)))
            | _days_in(select(Opportunity.created_at).join(t, Opportunity.account_id == t.c.account_id)
                       .where(near(Opportunity.created_at))))


def _after_lead_events(changed) -> set[date]:
    """The days that lead events (a CTE of them) may change: theirs, their contacts' later
    lead events' and the later opportunities' at their accounts."""
    later = (select(Event.occurred_at).join(changed, and_(Event.contact_id == changed.c.contact_id,
                                                          Event.account_id == changed.c.account_id,
                                                          Event.occurred_at >= changed.c.occurred_at))
             .where(*_lead_events()))
    opps = select(Opportunity.created_at).join(changed, and_(Opportunity.account_id == changed.c.account_id,
                                                             Opportunity.created_at >= changed.c.occurred_at))
    return _days_in(select(changed.c.occurred_at)) | _days_in(later) | _days_in(opps)


def _lead_events_of(since_id: int, days: set[date]):
    """The lead events inserted after ``since_id`` or dated on one of ``days``."""
    on_days = [and_(Event.occurred_at >= _start_of(d), Event.occurred_at < _start_of(d + timedelta(days=1)))
               for d in sorted(days)]
    return (select(Event.contact_id, Event.account_id, Event.occurred_at)
            .where(*_lead_events(), or_(Event.id > since_id, *on_days)).cte("changed_leads"))


def _around_opportunities(before: dict, after: dict, window: int) -> set[date]:
    """The days that new, changed or deleted opportunities may change: theirs (before and
    after) and, unless only its close, outcome or amount changed (the CRM's usual update),
    those of the lead events at its account within the window before it."""
    dirty: set[date] = set()
    for oid in set(before) | set(after):
        old, new = before.get(oid), after.get(oid)
        if old == new:
            continue
        moved = old is None or new is None or old[:2] != new[:2]
        for version in (old, new):
            if version is None:
                continue
            account_id, created = version[0], datetime.fromisoformat(version[1])
            dirty.add(day_of(created))
            if moved:
                dirty |= _days_in(select(Event.occurred_at).where(
                    *_first_leads(), Event.account_id == account_id,
                    Event.occurred_at >= created - timedelta(days=window + 1), Event.occurred_at <= created))
    return dirty


# -- the refresh ---------------------------------------------------------------------


def _state_row() -> KpiRollup | None:
    return db.session.execute(select(KpiRollup).where(KpiRollup.key == STATE_KEY)).scalar_one_or_none()


def _dirty(state: dict, now_state: dict, first: date, window: int) -> set[date]:
    """The days whose rows may have changed since the refresh that left ``state``."""
    since = datetime.fromisoformat(state["touches_at"]) - OVERLAP
    old_prints = state["leads"]
    changed_prints = {date.fromisoformat(d) for d in set(old_prints) | set(now_state["leads"])
                      if date.fromisoformat(d) >= first and old_prints.get(d) != now_state["leads"].get(d)}
    return (_after_touches(since, window)
            | _after_lead_events(_lead_events_of(state["event_id"], changed_prints))
            | _around_opportunities(state["opportunities"], now_state["opportunities"], window))


def refresh(now: datetime, first: date, groups: tuple[str, ...], model: str) -> dict[str, list[date]]:
    """Bring the days from ``first`` to ``now``'s day up to date for each grouping under
    ``model``; returns, per grouping, the days it recomputed."""
    started = utcnow()
    last = day_of(now)
    window = kpis.Attribution.current(model).window_days
    now_state = {"mark": _settings_mark(groups, model), "touches_at": started.isoformat(),
                 "event_id": db.session.execute(select(func.max(Event.id))).scalar() or 0,
                 "leads": lead_fingerprints(first, last + timedelta(days=1)),
                 "opportunities": opportunity_snapshot()}
    row = _state_row()
    state = row.data if row is not None else None
    if state is None or state.get("mark") != now_state["mark"] or state.get("first") is None:
        db.session.execute(delete(KpiDayPart))
        dirty = None
    else:
        dirty = _dirty(state, now_state, first, window)
    db.session.execute(delete(KpiDayPart).where(KpiDayPart.day < first))
    recomputed = {g: _bring_up_to_date(g, model, _days(first, last), dirty) for g in groups}
    now_state["first"] = first.isoformat()
    if row is None:
        db.session.add(KpiRollup(key=STATE_KEY, data=now_state, computed_at=started))
    else:
        row.data, row.computed_at = now_state, started
    db.session.commit()
    return recomputed


def _bring_up_to_date(group_by: str, model: str, days: list[date], dirty: set[date] | None) -> list[date]:
    """Recompute the grouping's days that are dirty (all when ``dirty`` is None) or missing."""
    stored = {p.day: p for p in db.session.execute(select(KpiDayPart).where(
        KpiDayPart.group_by == group_by, KpiDayPart.model == model, KpiDayPart.day >= days[0])).scalars()}
    todo = [d for d in days if dirty is None or d in dirty or d not in stored]
    for d in todo:
        data = compute_day(group_by, model, d)
        if d in stored:
            stored[d].data, stored[d].computed_at = data, utcnow()
        else:
            db.session.add(KpiDayPart(group_by=group_by, model=model, day=d, data=data))
    return todo
