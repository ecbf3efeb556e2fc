"""The shared KPIs: what each figure counts, computed in the database, shaped here.

Definitions, with worked examples, are in docs/kpis.md (and on the glossary page, from
:mod:`abm.services.kpi_glossary`); in short:

- A **touch** is a sent touch. Attribution counts only the marketing channels
  (email, ads, webhook): sales alerts and CRM tasks are the sales side's own work.
- A **lead** is a contact's first lead event (workspace setting ``lead_events``:
  form fill, reply or meeting by default) that a marketing touch at its account
  preceded within the attribution window (``attribution.window_days``, 90 by default).
- A lead, an opportunity, and a won deal are **attributed** to the groups of the
  touches at the account within the window before it, by the model (``model=`` on each
  request, else the workspace's ``attribution.model``): the shares of each conversion
  add up to one.
- **Pipeline and revenue influenced**: opportunities created in the period at accounts
  a group touched within the window before the opportunity was created; the full
  amount counts for every group that touched (influence does not add up across groups).
- **Cost**: spend entries prorated by day to the period, plus each connector's unit
  cost per sent touch.

The SQL is in :mod:`abm.services.kpi_sql`; :func:`compute` runs its statements and
shapes their rows into the answer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from abm import metrics
from abm.db import db, utcnow
from abm.models import (
    Contact,
    Cost,
    Enrollment,
    Event,
    Opportunity,
    Playbook,
    StageChange,
    Touch,
)
from abm.services import kpi_sql
from abm.services import settings as settings_service
from abm.services.kpi_sql import MARKETING_CHANNELS, PASSIVE_EVENTS

GROUPS = tuple(kpi_sql.GROUP_COLUMNS)
#: The attribution models, in the order the comparison page shows them.
MODELS = kpi_sql.POSITION_MODELS
#: Older names still accepted (settings saved before the models were renamed).
MODEL_ALIASES = {"even": "linear"}


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


@dataclass(frozen=True)
class Attribution:
    """How conversions are credited: the model, the window, the time-decay half-life."""

    model: str
    window_days: int
    half_life_days: float

    @classmethod
    def current(cls, model: str | None = None) -> Attribution:
        cfg = settings_service.current()["attribution"]
        chosen = model or cfg.get("model", "last_touch")
        chosen = MODEL_ALIASES.get(chosen, chosen)
        if chosen not in MODELS:
            raise KpiError(f"model must be one of {', '.join(MODELS)}")
        return cls(chosen, int(cfg.get("window_days", 90)), float(cfg.get("half_life_days", 7)))

    def describe(self) -> dict:
        return {"model": self.model, "window_days": self.window_days, "half_life_days": self.half_life_days}


def check_group(group_by: str) -> None:
    if group_by not in GROUPS:
        raise KpiError(f"group_by must be one of {', '.join(GROUPS)}")


def compute(group_by: str = "playbook", period: Period | None = None, playbook: str | None = None,
            product: str | None = None, now: datetime | None = None, model: str | None = None) -> dict:
    """Every KPI for each group over ``period``, plus the totals and the funnel."""
    check_group(group_by)
    period = period or Period.parse(None, None, now)
    attribution = Attribution.current(model)
    playbook_ids = playbook_ids_for(playbook, product)
    mt = kpi_sql.marketing_touches(group_by, period.start - timedelta(days=attribution.window_days), period.end,
                                   playbook_ids)
    groups: dict[str, dict] = defaultdict(_empty_group)
    totals: dict = defaultdict(float)
    _add_reach(groups, totals, kpi_sql.run(kpi_sql.reach_statement(mt, period.start, period.end)))
    _add_attribution(groups, totals, kpi_sql.run(_attribution_statement(mt, period, attribution)))
    _add_spend(groups, group_by, period, playbook, product)
    rows = sorted((_finish(g, v) for g, v in groups.items()), key=lambda r: (-r["touches"], r["group"]))
    return {
        "group_by": group_by, "from": period.start.isoformat(), "to": period.end.isoformat(),
        "attribution": attribution.describe(), "groups": rows, "totals": _totals(totals, rows),
        "funnel": funnel(period, playbook_ids),
    }


def _attribution_statement(mt, period: Period, attribution: Attribution):
    return kpi_sql.attribution_statement(_path(mt, period, attribution))


def lead_types() -> list[str]:
    return settings_service.current().get("lead_events", ["form_fill", "email_reply", "meeting"])


def _path(mt, period: Period, attribution: Attribution):
    """The conversions of the period joined to the touches before them, with their weights."""
    conv = kpi_sql.conversions(lead_types(), period.start, period.end, attribution.window_days,
                               with_lead_at=attribution.model == "w_shaped")
    return kpi_sql.paths(conv, mt, attribution.window_days, attribution.model, attribution.half_life_days)


def _empty_group() -> dict:
    return {"touches": 0, "accounts_reached": 0, "engaged_accounts": 0, "leads": 0.0, "leads_to_opportunity": 0.0,
            "opportunities": 0.0, "closed_opportunities": 0.0, "won": 0.0, "pipeline_influenced": 0.0,
            "revenue_influenced": 0.0, "cost": 0.0, "median_days": None}


#: Where each part of the SQL answers goes: part -> the fields its values fill, in order.
_GROUP_FIELDS = {
    "reach": ("touches", "accounts_reached", "cost"),
    "engaged": ("engaged_accounts",),
    "leads": ("leads", "leads_to_opportunity"),
    "opps": ("opportunities", "closed_opportunities", "won"),
    "influence": ("pipeline_influenced", "revenue_influenced"),
    "days_to_opp": ("median_days",),
}
_TOTAL_FIELDS = {
    "reach": ("touches", "accounts_reached", "unit_cost"),
    "engaged": ("engaged_accounts",),
    "totals": ("leads", "opportunities", "won", "pipeline_influenced"),
    "revenue": ("revenue_influenced",),
}


def _shape(groups: dict, totals: dict, rows) -> None:
    """Put each (part, group, values...) row where it belongs: a group's or the totals'."""
    for part, g, *values in rows:
        fields = _GROUP_FIELDS[part] if g is not None else _TOTAL_FIELDS[part]
        target = groups[g] if g is not None else totals
        for name, value in zip(fields, values, strict=False):
            target[name] = value or 0.0 if name != "median_days" else value


_add_reach = _add_attribution = _shape


def _finish(group: str, v: dict) -> dict:
    return {
        "group": group,
        "touches": int(v["touches"]),
        "accounts_reached": int(v["accounts_reached"]),
        "engaged_accounts": int(v["engaged_accounts"]),
        "leads": round(v["leads"], 4),
        "cost": round(v["cost"], 2),
        "cost_per_lead": round(v["cost"] / v["leads"], 2) if v["leads"] else None,
        "opportunities": round(v["opportunities"], 4),
        "lead_to_opportunity_rate": _r(metrics.rate(v["leads_to_opportunity"], v["leads"])),
        "opportunity_to_won_rate": _r(metrics.rate(v["won"], v["closed_opportunities"])),
        "pipeline_influenced": round(v["pipeline_influenced"], 2),
        "revenue_influenced": round(v["revenue_influenced"], 2),
        "median_days_first_touch_to_opportunity": _r(v["median_days"], 2),
    }


def _r(value, digits: int = 4):
    return None if value is None else round(value, digits)


def _totals(t: dict, groups: list[dict]) -> dict:
    """Totals over all groups; each lead and opportunity counted once."""
    cost = sum(g["cost"] for g in groups)
    leads = int(t["leads"])
    return {"touches": int(t["touches"]), "accounts_reached": int(t["accounts_reached"]),
            "engaged_accounts": int(t["engaged_accounts"]), "leads": leads,
            "cost": round(cost, 2), "cost_per_lead": round(cost / leads, 2) if leads else None,
            "opportunities": int(t["opportunities"]), "won": int(t["won"]),
            "pipeline_influenced": round(t["pipeline_influenced"], 2),
            "revenue_influenced": round(t["revenue_influenced"], 2)}


def _prorate(cost: Cost, period: Period) -> float:
    start = datetime(cost.date_from.year, cost.date_from.month, cost.date_from.day, tzinfo=period.start.tzinfo)
    end = datetime(cost.date_to.year, cost.date_to.month, cost.date_to.day, tzinfo=period.start.tzinfo) + timedelta(days=1)
    overlap = (min(end, period.end) - max(start, period.start)).total_seconds()
    if overlap <= 0:
        return 0.0
    return float(cost.amount) * overlap / (end - start).total_seconds()


def _spend_group(cost: Cost, group_by: str, products: dict[str, str | None]) -> str:
    """The group a spend entry belongs to: the field it names, else ``(unassigned)``."""
    key = {"playbook": cost.playbook_key, "channel": cost.channel, "product": cost.product}.get(group_by)
    if key is None and group_by == "product" and cost.playbook_key:
        key = products.get(cost.playbook_key)
    return key or "(unassigned)"


def _add_spend(groups, group_by, period, playbook, product) -> None:
    """Spend entries prorated by day to the period (unit costs per touch come with the reach)."""
    q = select(Cost).where(Cost.date_to >= period.start.date(), Cost.date_from <= period.end.date())
    if playbook is not None:
        q = q.where(Cost.playbook_key == playbook)
    if product is not None:
        q = q.where(Cost.product == product)
    products = dict(db.session.execute(select(Playbook.key, Playbook.product)).all())
    for c in db.session.execute(q).scalars():
        amount = _prorate(c, period)
        if amount:
            groups[_spend_group(c, group_by, products)]["cost"] += amount

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


BEHIND = ("reached", "engaged", "leads", "opportunities", "won", "funnel")


def accounts_behind(metric: str, group_by: str, group: str, period: Period, playbook: str | None = None,
                    product: str | None = None, model: str | None = None) -> list[int]:
    """The accounts behind one figure: ``reached``, ``engaged``, ``leads`` (credited to the
    group), ``opportunities`` or ``won`` (influenced by the group), or ``funnel`` with the
    step as ``group``."""
    if metric not in BEHIND:
        raise KpiError(f"unknown metric {metric!r} (metrics: {', '.join(BEHIND)})")
    if metric == "funnel":
        if group not in FUNNEL_STEPS:
            raise KpiError(f"unknown funnel step {group!r} (steps: {', '.join(FUNNEL_STEPS)})")
        return sorted(funnel_sets(period, playbook_ids_for(playbook, product))[group])
    check_group(group_by)
    attribution = Attribution.current(model)
    mt = kpi_sql.marketing_touches(group_by, period.start - timedelta(days=attribution.window_days), period.end,
                                   playbook_ids_for(playbook, product))
    inp = kpi_sql.in_period(mt, period.start)
    if metric == "reached":
        q = select(inp.c.account_id).where(inp.c.g == group)
    elif metric == "engaged":
        pairs = kpi_sql.engaged_pairs(inp, period.end)
        q = select(pairs.c.account_id).where(pairs.c.g == group)
    else:
        path = _path(mt, period, attribution)
        q = select(path.c.account_id).where(path.c.g == group)
        q = q.where(path.c.kind == "lead", path.c.w > 0) if metric == "leads" else q.where(path.c.kind == "opp")
        if metric == "won":
            q = q.where(path.c.won == 1)
    return sorted(db.session.execute(q.distinct()).scalars())


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
