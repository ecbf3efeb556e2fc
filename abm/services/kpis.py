"""The shared KPIs, computed from the raw rows (touches, events, opportunities, costs).

Definitions, with worked examples, are in docs/kpis.md; in short:

- A **touch** is a sent touch. Attribution counts only the marketing channels
  (email, ads, webhook): sales alerts and CRM tasks are the sales side's own work.
- A **lead** is a contact's first lead event (workspace setting ``lead_events``:
  form fill, reply or meeting by default) that a marketing touch at its account
  preceded within the attribution window (``attribution.window_days``, 90 by default).
- A lead, an opportunity, and a won deal's revenue are **attributed** to the groups
  (playbooks, channels or products) of the touches at the account within the window
  before it, by the model (``last_touch`` by default, ``first_touch``, ``even``): the
  shares of each conversion add up to one.
- **Pipeline and revenue influenced**: opportunities created in the period at accounts
  a group touched within the window before the opportunity was created; the full
  amount counts for every group that touched (influence does not add up across groups).
- **Cost**: spend entries prorated by day to the period, plus each connector's unit
  cost per sent touch.

Every figure is computed by :func:`compute`; the workers keep the answers for the usual
periods in the ``kpi_rollups`` table (:mod:`abm.services.rollups`) so that the
dashboard and the API answer fast at scale; the rollups equal a fresh computation.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from abm import metrics
from abm.db import db, utcnow
from abm.models import (
    ConnectorConfig,
    Contact,
    Cost,
    Enrollment,
    Event,
    Opportunity,
    Playbook,
    StageChange,
    Touch,
)
from abm.services import settings as settings_service

GROUPS = ("playbook", "channel", "product")
MARKETING_CHANNELS = ("email", "ads", "webhook")
#: Events that say nothing about interest: they do not make an account "engaged".
PASSIVE_EVENTS = ("email_delivered", "ad_impression", "email_bounce", "unsubscribe", "spam_report")


class KpiError(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive

    @classmethod
    def parse(cls, start: str | None, end: str | None, now: datetime | None = None) -> Period:
        """``from``/``to`` as ISO dates or times; ``to`` is inclusive when a date.

        Default: the last 90 days, today included (whole days, so that the workers'
        rollups answer it).
        """
        now = now or utcnow()

        def _at(value: str, name: str, end_of_day: bool) -> datetime:
            try:
                if len(value) == 10:
                    d = date.fromisoformat(value)
                    at = datetime(d.year, d.month, d.day, tzinfo=now.tzinfo)
                    return at + timedelta(days=1) if end_of_day else at
                at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise KpiError(f"{name}: {value!r} is not an ISO date (YYYY-MM-DD) or time") from None
            if at.tzinfo is None:
                raise KpiError(f"{name}: a time needs an offset")
            return at

        today = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo)
        end_at = _at(end, "to", True) if end else today + timedelta(days=1)
        start_at = _at(start, "from", False) if start else end_at - timedelta(days=90)
        if start_at >= end_at:
            raise KpiError("from must be before to")
        return cls(start_at, end_at)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


def _group_of(touch, group_by: str, playbooks: dict[int, Playbook]) -> str:
    if group_by == "channel":
        return touch.channel
    pb = playbooks.get(touch.playbook_id)
    if group_by == "product":
        return (pb.product if pb else None) or "(no product)"
    return pb.key if pb else "(deleted playbook)"


class _Touches:
    """Sent marketing touches by account, in time order, with their group."""

    def __init__(self, rows, group_by, playbooks):
        self.by_account: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
        for t in rows:
            if t.channel in MARKETING_CHANNELS:
                self.by_account[t.account_id].append((t.sent_at, _group_of(t, group_by, playbooks)))
        for lst in self.by_account.values():
            lst.sort(key=lambda x: x[0])
        self._times = {a: [t for t, _ in lst] for a, lst in self.by_account.items()}

    def before(self, account_id: int, at: datetime, window: timedelta) -> list[tuple[datetime, str]]:
        lst = self.by_account.get(account_id)
        if not lst:
            return []
        times = self._times[account_id]
        lo = bisect.bisect_left(times, at - window)
        hi = bisect.bisect_right(times, at)
        return lst[lo:hi]


def compute(group_by: str = "playbook", period: Period | None = None, playbook: str | None = None,
            product: str | None = None, now: datetime | None = None) -> dict:
    """Every KPI for each group over ``period``, plus the totals and the funnel."""
    if group_by not in GROUPS:
        raise KpiError(f"group_by must be one of {', '.join(GROUPS)}")
    now = now or utcnow()
    period = period or Period.parse(None, None, now)
    cfg = settings_service.current()
    window = timedelta(days=cfg["attribution"].get("window_days", 90))
    model = cfg["attribution"].get("model", "last_touch")
    s = db.session

    playbooks = {p.id: p for p in s.execute(select(Playbook)).scalars()}
    wanted_pb = {pid for pid, p in playbooks.items()
                 if (playbook is None or p.key == playbook) and (product is None or p.product == product)}
    filtered = playbook is not None or product is not None

    touch_q = select(Touch.id, Touch.account_id, Touch.contact_id, Touch.playbook_id, Touch.channel,
                     Touch.connector, Touch.sent_at).where(
        Touch.status == "sent", Touch.sent_at >= period.start - window, Touch.sent_at < period.end)
    if filtered:
        touch_q = touch_q.where(Touch.playbook_id.in_(wanted_pb or {-1}))
    touch_rows = s.execute(touch_q).all()
    in_period = [t for t in touch_rows if t.sent_at >= period.start and t.channel in MARKETING_CHANNELS]
    touches = _Touches(touch_rows, group_by, playbooks)

    groups: dict[str, dict] = defaultdict(_empty_group)
    reached: dict[str, set[int]] = defaultdict(set)
    first_touch_at: dict[tuple[str, int], datetime] = {}
    for t in in_period:
        g = _group_of(t, group_by, playbooks)
        groups[g]["touches"] += 1
        reached[g].add(t.account_id)
        key = (g, t.account_id)
        if key not in first_touch_at or t.sent_at < first_touch_at[key]:
            first_touch_at[key] = t.sent_at

    # engaged: reached accounts with an active engagement event after the group's first touch
    all_reached = {a for accs in reached.values() for a in accs}
    last_active: dict[int, list[datetime]] = defaultdict(list)
    for chunk in _chunks(all_reached):
        for aid, at in s.execute(select(Event.account_id, Event.occurred_at).where(
                Event.account_id.in_(chunk), Event.occurred_at >= period.start, Event.occurred_at < period.end,
                Event.type.not_in(PASSIVE_EVENTS))):
            last_active[aid].append(at)
    engaged: dict[str, set[int]] = defaultdict(set)
    for (g, aid), first in first_touch_at.items():
        if any(at >= first for at in last_active.get(aid, ())):
            engaged[g].add(aid)

    # leads: each contact's first lead event, attributed to the touches before it
    lead_types = cfg.get("lead_events", ["form_fill", "email_reply", "meeting"])
    firsts = s.execute(select(Event.contact_id, Event.account_id, func.min(Event.occurred_at)).where(
        Event.type.in_(lead_types), Event.contact_id.is_not(None), Event.account_id.is_not(None))
        .group_by(Event.contact_id, Event.account_id)).all()
    leads: list[tuple[int, int, datetime, dict]] = []
    for contact_id, account_id, at in firsts:
        if not (period.start <= at < period.end):
            continue
        before = touches.before(account_id, at, window)
        if before:
            leads.append((contact_id, account_id, at, metrics.attribution_shares([g for _, g in before], model)))

    # opportunities created in the period, attributed and influenced
    opps = s.execute(select(Opportunity.id, Opportunity.account_id, Opportunity.amount, Opportunity.created_at,
                            Opportunity.closed_at, Opportunity.won, Opportunity.product).where(
        Opportunity.created_at >= period.start, Opportunity.created_at < period.end)).all()
    opp_times: dict[int, list[datetime]] = defaultdict(list)
    for o in s.execute(select(Opportunity.account_id, Opportunity.created_at)):
        opp_times[o.account_id].append(o.created_at)

    for _contact, account_id, at, shares in leads:
        converted = any(at <= created <= at + window for created in opp_times.get(account_id, ()))
        for g, share in shares.items():
            groups[g]["leads"] += share
            if converted:
                groups[g]["leads_to_opportunity"] += share
    days_to_opp: dict[str, list[float]] = defaultdict(list)
    influenced = []
    for o in opps:
        before = touches.before(o.account_id, o.created_at, window)
        if not before:
            continue
        influenced.append(o)
        amount = float(o.amount or 0)
        for g, share in metrics.attribution_shares([g for _, g in before], model).items():
            groups[g]["opportunities"] += share
            if o.closed_at is not None:
                groups[g]["closed_opportunities"] += share
                if o.won:
                    groups[g]["won"] += share
        first_by_group: dict[str, datetime] = {}
        for at, g in before:
            first_by_group.setdefault(g, at)
        for g, first in first_by_group.items():
            groups[g]["pipeline_influenced"] += amount
            if o.won:
                groups[g]["revenue_influenced"] += amount
            days_to_opp[g].append((o.created_at - first).total_seconds() / 86400)

    _add_costs(groups, in_period, group_by, playbooks, period, filtered, playbook, product)

    out = []
    for g, v in groups.items():
        v["accounts_reached"] = len(reached.get(g, ()))
        v["engaged_accounts"] = len(engaged.get(g, ()))
        out.append(_finish(g, v, days_to_opp.get(g, [])))
    out.sort(key=lambda r: (-r["touches"], r["group"]))
    return {
        "group_by": group_by, "from": period.start.isoformat(), "to": period.end.isoformat(),
        "attribution": {"model": model, "window_days": window.days}, "groups": out,
        "totals": _totals(out, in_period, leads, influenced, all_reached, engaged),
        "funnel": funnel(period, wanted_pb if filtered else None),
    }


def _empty_group() -> dict:
    return {"touches": 0, "leads": 0.0, "leads_to_opportunity": 0.0, "opportunities": 0.0,
            "closed_opportunities": 0.0, "won": 0.0, "pipeline_influenced": 0.0, "revenue_influenced": 0.0,
            "cost": 0.0}


def _finish(group: str, v: dict, days: list[float]) -> dict:
    return {
        "group": group,
        "touches": v["touches"],
        "accounts_reached": v["accounts_reached"],
        "engaged_accounts": v["engaged_accounts"],
        "leads": round(v["leads"], 4),
        "cost": round(v["cost"], 2),
        "cost_per_lead": round(v["cost"] / v["leads"], 2) if v["leads"] else None,
        "opportunities": round(v["opportunities"], 4),
        "lead_to_opportunity_rate": _r(metrics.rate(v["leads_to_opportunity"], v["leads"])),
        "opportunity_to_won_rate": _r(metrics.rate(v["won"], v["closed_opportunities"])),
        "pipeline_influenced": round(v["pipeline_influenced"], 2),
        "revenue_influenced": round(v["revenue_influenced"], 2),
        "median_days_first_touch_to_opportunity": _r(metrics.median(days), 2),
    }


def _r(value, digits: int = 4):
    return None if value is None else round(value, digits)


def _totals(groups, in_period, leads, influenced, reached, engaged) -> dict:
    """Totals over all groups; each lead and opportunity counted once."""
    cost = sum(g["cost"] for g in groups)
    return {"touches": len(in_period), "accounts_reached": len(reached),
            "engaged_accounts": len({a for s in engaged.values() for a in s}), "leads": len(leads),
            "cost": round(cost, 2), "cost_per_lead": round(cost / len(leads), 2) if leads else None,
            "opportunities": len(influenced), "won": sum(1 for o in influenced if o.won),
            "pipeline_influenced": round(sum(float(o.amount or 0) for o in influenced), 2),
            "revenue_influenced": round(sum(float(o.amount or 0) for o in influenced if o.won), 2)}


def _prorate(cost: Cost, period: Period) -> float:
    start = datetime(cost.date_from.year, cost.date_from.month, cost.date_from.day, tzinfo=period.start.tzinfo)
    end = datetime(cost.date_to.year, cost.date_to.month, cost.date_to.day, tzinfo=period.start.tzinfo) + timedelta(days=1)
    overlap = (min(end, period.end) - max(start, period.start)).total_seconds()
    if overlap <= 0:
        return 0.0
    return float(cost.amount) * overlap / (end - start).total_seconds()


def _add_costs(groups, in_period, group_by, playbooks, period, filtered, playbook, product) -> None:
    unit = {c.name: float(c.unit_cost or 0) for c in db.session.execute(select(ConnectorConfig)).scalars()}
    for t in in_period:
        if unit.get(t.connector):
            groups[_group_of(t, group_by, playbooks)]["cost"] += unit[t.connector]
    q = select(Cost).where(Cost.date_to >= period.start.date(), Cost.date_from <= period.end.date())
    for c in db.session.execute(q).scalars():
        if playbook is not None and c.playbook_key != playbook:
            continue
        if product is not None and c.product != product:
            continue
        key = {"playbook": c.playbook_key, "channel": c.channel, "product": c.product}[group_by]
        if key is None and group_by == "product" and c.playbook_key:
            pb = next((p for p in playbooks.values() if p.key == c.playbook_key), None)
            key = pb.product if pb else None
        amount = _prorate(c, period)
        if amount:
            groups[key or "(unassigned)"]["cost"] += amount


FUNNEL_STEPS = ("target", "reached", "engaged", "lead", "opportunity", "won")


def funnel(period: Period, playbook_ids: set[int] | None = None) -> list[dict]:
    """Target accounts (enrolled in a playbook, not held out) to won, over the period."""
    return [{"step": step, "accounts": len(ids)} for step, ids in funnel_sets(period, playbook_ids).items()]


def funnel_sets(period: Period, playbook_ids: set[int] | None = None) -> dict[str, set[int]]:
    """The accounts at each step of the funnel (see :func:`funnel`)."""
    s = db.session
    enrolled = select(Enrollment.account_id).where(Enrollment.state != "held_out")
    if playbook_ids is not None:
        enrolled = enrolled.where(Enrollment.playbook_id.in_(playbook_ids or {-1}))
    targets = set(s.execute(enrolled.distinct()).scalars())
    reached = set(s.execute(select(Touch.account_id).where(
        Touch.status == "sent", Touch.sent_at >= period.start, Touch.sent_at < period.end,
        Touch.channel.in_(MARKETING_CHANNELS)).distinct()).scalars()) & targets
    engaged = set(s.execute(select(Event.account_id).where(
        Event.occurred_at >= period.start, Event.occurred_at < period.end, Event.type.not_in(PASSIVE_EVENTS),
        Event.account_id.is_not(None)).distinct()).scalars()) & reached
    lead_types = settings_service.current().get("lead_events", [])
    with_leads = set(s.execute(select(Event.account_id).where(
        Event.occurred_at >= period.start, Event.occurred_at < period.end, Event.type.in_(lead_types),
        Event.account_id.is_not(None)).distinct()).scalars()) & reached
    opp_rows = s.execute(select(Opportunity.account_id, Opportunity.won).where(
        Opportunity.created_at >= period.start, Opportunity.created_at < period.end)).all()
    with_opp = {a for a, _ in opp_rows} & targets
    won = {a for a, w in opp_rows if w} & targets
    return dict(zip(FUNNEL_STEPS, (targets, reached, engaged, with_leads, with_opp, won), strict=True))


def playbook_ids_for(playbook: str | None, product: str | None) -> set[int] | None:
    """The playbooks a dashboard filter keeps (None: no filter)."""
    if playbook is None and product is None:
        return None
    return {p.id for p in db.session.execute(select(Playbook)).scalars()
            if (playbook is None or p.key == playbook) and (product is None or p.product == product)}


def stage_velocity(period: Period) -> list[dict]:
    """Median days an account spent in each stage before moving on, for moves in the period."""
    stages = settings_service.current()["stages"]
    rows = db.session.execute(select(StageChange.account_id, StageChange.to_stage, StageChange.changed_at)
                              .order_by(StageChange.account_id, StageChange.changed_at)).all()
    spent: dict[str, list[float]] = defaultdict(list)
    previous: tuple[int, str, datetime] | None = None
    for aid, stage, at in rows:
        if previous and previous[0] == aid and period.start <= at < period.end:
            spent[previous[1]].append((at - previous[2]).total_seconds() / 86400)
        previous = (aid, stage, at)
    return [{"stage": st, "moves": len(spent.get(st, [])), "median_days": _r(metrics.median(spent.get(st, [])), 2)}
            for st in stages if st != "lost"]


def coverage(period: Period) -> dict:
    """Target accounts reached and engaged; per buying role, the share of targets with a contact reached."""
    cfg = settings_service.current()
    s = db.session
    targets = set(s.execute(select(Enrollment.account_id).where(Enrollment.state != "held_out").distinct()).scalars())
    sent = s.execute(select(Touch.account_id, Touch.contact_id).where(
        Touch.status == "sent", Touch.sent_at >= period.start, Touch.sent_at < period.end,
        Touch.channel.in_(MARKETING_CHANNELS))).all()
    reached = {a for a, _ in sent} & targets
    contacts_reached = {c for _, c in sent if c}
    engaged = set()
    for chunk in _chunks(reached):
        engaged.update(s.execute(select(Event.account_id).where(
            Event.occurred_at >= period.start, Event.occurred_at < period.end, Event.type.not_in(PASSIVE_EVENTS),
            Event.account_id.in_(chunk)).distinct()).scalars())
    roles: dict[str, set[int]] = defaultdict(set)
    for chunk in _chunks(contacts_reached):
        for aid, role in s.execute(select(Contact.account_id, Contact.buying_role).where(Contact.id.in_(chunk))):
            if aid in targets:
                roles[role or "other"].add(aid)
    n = len(targets)
    return {"target_accounts": n, "reached": len(reached), "engaged": len(engaged),
            "roles": [{"role": r, "accounts": len(roles.get(r, ())), "share": _r(metrics.rate(len(roles.get(r, ())), n))}
                      for r in cfg["roles"]]}


def lift(playbook_key: str, now: datetime | None = None) -> dict:
    """Enrolled against held-out accounts of one playbook: engaged, opportunity and won rates."""
    from abm.errors import NotFound

    s = db.session
    pb = s.execute(select(Playbook).where(Playbook.key == playbook_key)).scalar_one_or_none()
    if pb is None:
        raise NotFound("playbook")
    rows = s.execute(select(Enrollment.account_id, Enrollment.state, func.min(Enrollment.entered_at))
                     .where(Enrollment.playbook_id == pb.id).group_by(Enrollment.account_id, Enrollment.state)).all()
    entered: dict[int, datetime] = {}
    held: set[int] = set()
    for aid, state, at in rows:
        entered[aid] = min(at, entered.get(aid, at))
        if state == "held_out":
            held.add(aid)
    treated = set(entered) - held
    outcome = {"engaged": set(), "opportunity": set(), "won": set()}
    for chunk in _chunks(entered):
        for aid, at in s.execute(select(Event.account_id, func.max(Event.occurred_at)).where(
                Event.account_id.in_(chunk), Event.type.not_in(PASSIVE_EVENTS)).group_by(Event.account_id)):
            if at >= entered[aid]:
                outcome["engaged"].add(aid)
        for aid, created, won in s.execute(select(Opportunity.account_id, Opportunity.created_at, Opportunity.won)
                                           .where(Opportunity.account_id.in_(chunk))):
            if created >= entered[aid]:
                outcome["opportunity"].add(aid)
                if won:
                    outcome["won"].add(aid)
    result = {"playbook": pb.key, "name": pb.name, "enrolled": len(treated), "held_out": len(held), "metrics": []}
    for name, hits in outcome.items():
        st, sc = len(hits & treated), len(hits & held)
        diff = metrics.difference(st, len(treated), sc, len(held))
        result["metrics"].append({
            "metric": name,
            "enrolled_rate": _r(metrics.rate(st, len(treated))), "held_out_rate": _r(metrics.rate(sc, len(held))),
            "enrolled_count": st, "held_out_count": sc,
            "difference": _r(diff.estimate) if diff else None,
            "ci95": [_r(diff.low), _r(diff.high)] if diff else None,
            "sentence": metrics.lift_sentence(name, st, len(treated), sc, len(held)),
        })
    return result


def record_cost(data: dict, source: str = "api") -> Cost:
    """Store one spend entry (``{playbook?, channel?, product?, amount, currency, date | from, to}``)."""
    from abm.errors import ValidationError

    allowed = {"playbook", "channel", "product", "amount", "currency", "date", "from", "to"}
    problems = [{"path": k, "message": "unknown field"} for k in data if k not in allowed]
    try:
        amount = Decimal(str(data.get("amount")))
        if amount < 0 or not amount.is_finite():
            raise ValueError
    except (ValueError, ArithmeticError):
        problems.append({"path": "amount", "message": "must be a non-negative number"})
        amount = Decimal(0)
    currency = str(data.get("currency") or "USD").upper()
    if len(currency) != 3 or not currency.isalpha():
        problems.append({"path": "currency", "message": "must be a 3-letter ISO code such as USD"})
    dates = {}
    for key in ("date", "from", "to"):
        if data.get(key) is not None:
            try:
                dates[key] = date.fromisoformat(str(data[key]))
            except ValueError:
                problems.append({"path": key, "message": "must be a date YYYY-MM-DD"})
    if "date" in dates and ({"from", "to"} & set(data)):
        problems.append({"path": "date", "message": "give either date or from and to, not both"})
    elif "date" not in data and not ({"from", "to"} <= set(data)):
        problems.append({"path": "date", "message": "give a date, or from and to"})
    start, end = (dates.get("date"), dates.get("date")) if "date" in dates else (dates.get("from"), dates.get("to"))
    if start and end and end < start:
        problems.append({"path": "to", "message": "must not be before from"})
    if not any(data.get(k) for k in ("playbook", "channel", "product")):
        problems.append({"path": "playbook", "message": "name at least one of playbook, channel or product"})
    if data.get("channel") and data["channel"] not in ("email", "ads", "alert", "task", "webhook", "events", "other"):
        problems.append({"path": "channel", "message": "unknown channel"})
    if data.get("playbook") and not db.session.execute(
            select(Playbook.id).where(Playbook.key == data["playbook"])).first():
        problems.append({"path": "playbook", "message": f"no playbook with key {data['playbook']!r}"})
    if problems:
        raise ValidationError(problems)
    cost = Cost(playbook_key=data.get("playbook"), channel=data.get("channel"), product=data.get("product"),
                amount=amount, currency=currency, date_from=start, date_to=end, source=source)
    db.session.add(cost)
    db.session.commit()
    return cost


def accounts_behind(metric: str, group_by: str, group: str, period: Period, playbook: str | None = None,
                    product: str | None = None) -> list[int]:
    """The accounts behind one figure of the dashboard: ``reached``, ``engaged``, ``leads``,
    ``opportunities`` or ``won`` of one group, or ``funnel`` with the step as ``group``."""
    if metric == "funnel":
        if group not in FUNNEL_STEPS:
            raise KpiError(f"unknown funnel step {group!r} (steps: {', '.join(FUNNEL_STEPS)})")
        return sorted(funnel_sets(period, playbook_ids_for(playbook, product))[group])
    if group_by not in GROUPS:
        raise KpiError(f"group_by must be one of {', '.join(GROUPS)}")
    s = db.session
    playbooks = {p.id: p for p in s.execute(select(Playbook)).scalars()}
    rows = s.execute(select(Touch.account_id, Touch.playbook_id, Touch.channel, Touch.sent_at).where(
        Touch.status == "sent", Touch.sent_at >= period.start, Touch.sent_at < period.end)).all()
    accounts = {r.account_id for r in rows if _group_of(r, group_by, playbooks) == group}
    if metric == "reached":
        return sorted(accounts)
    if metric == "engaged":
        return sorted(set(s.execute(select(Event.account_id).where(
            Event.account_id.in_(accounts or {-1}), Event.occurred_at >= period.start,
            Event.occurred_at < period.end, Event.type.not_in(PASSIVE_EVENTS)).distinct()).scalars()))
    if metric == "leads":
        lead_types = settings_service.current().get("lead_events", [])
        return sorted(set(s.execute(select(Event.account_id).where(
            Event.account_id.in_(accounts or {-1}), Event.type.in_(lead_types),
            Event.occurred_at >= period.start, Event.occurred_at < period.end).distinct()).scalars()))
    if metric in ("opportunities", "won"):
        q = select(Opportunity.account_id).where(Opportunity.account_id.in_(accounts or {-1}),
                                                 Opportunity.created_at >= period.start,
                                                 Opportunity.created_at < period.end)
        if metric == "won":
            q = q.where(Opportunity.won.is_(True))
        return sorted(set(s.execute(q.distinct()).scalars()))
    raise KpiError(f"unknown metric {metric!r}")


def _chunks(items, size: int = 1000):
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]


def pipeline_series(period: Period, buckets: int = 12) -> list[dict]:
    """Pipeline and revenue influenced, per equal slice of the period (oldest first)."""
    window = timedelta(days=settings_service.current()["attribution"].get("window_days", 90))
    s = db.session
    opps = s.execute(select(Opportunity.account_id, Opportunity.amount, Opportunity.created_at, Opportunity.won)
                     .where(Opportunity.created_at >= period.start, Opportunity.created_at < period.end)).all()
    touched: dict[int, list[datetime]] = defaultdict(list)
    for chunk in _chunks({o.account_id for o in opps}):
        for aid, at in s.execute(select(Touch.account_id, Touch.sent_at).where(
                Touch.account_id.in_(chunk), Touch.status == "sent", Touch.channel.in_(MARKETING_CHANNELS),
                Touch.sent_at >= period.start - window, Touch.sent_at < period.end)):
            touched[aid].append(at)
    span = (period.end - period.start) / buckets
    series = [{"start": (period.start + span * i).date().isoformat(), "pipeline": 0.0, "revenue": 0.0}
              for i in range(buckets)]
    for o in opps:
        if any(o.created_at - window <= at <= o.created_at for at in touched.get(o.account_id, ())):
            i = min(int((o.created_at - period.start) / span), buckets - 1)
            series[i]["pipeline"] += float(o.amount or 0)
            if o.won:
                series[i]["revenue"] += float(o.amount or 0)
    return series


def lifts() -> list[dict]:
    """The lift of every playbook that has enrolled accounts."""
    keys = db.session.execute(select(Playbook.key).join(Enrollment, Enrollment.playbook_id == Playbook.id)
                              .distinct().order_by(Playbook.key)).scalars()
    return [lift(k) for k in keys]
