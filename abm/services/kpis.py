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

from sqlalchemy import select

from abm import metrics
from abm.db import db, utcnow
from abm.errors import NotFound
from abm.models import (
    Playbook,
)
from abm.services import kpi_accounts, kpi_reach, kpi_sql, spend
from abm.services import settings as settings_service
from abm.services.kpi_sql import MARKETING_CHANNELS, PASSIVE_EVENTS  # noqa: F401 - part of this module's API

GROUPS = tuple(kpi_sql.GROUP_COLUMNS)
MODELS = metrics.MODELS


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
        chosen = metrics.MODEL_ALIASES.get(chosen, chosen)
        if chosen not in MODELS:
            raise KpiError(f"model must be one of {', '.join(MODELS)}")
        return cls(chosen, int(cfg.get("window_days", 90)), float(cfg.get("half_life_days", 7)))

    def describe(self) -> dict:
        return {"model": self.model, "window_days": self.window_days, "half_life_days": self.half_life_days}


def check_group(group_by: str) -> None:
    if group_by not in GROUPS:
        raise KpiError(f"group_by must be one of {', '.join(GROUPS)}")


def compute(group_by: str = "playbook", period: Period | None = None, playbook: str | None = None,
            product: str | None = None, now: datetime | None = None, model: str | None = None,
            with_funnel: bool = True) -> dict:
    """Every KPI for each group over ``period``, plus the totals and (``with_funnel``) the funnel."""
    return compute_many((group_by,), period, playbook, product, now, model, with_funnel)[group_by]


def compute_many(groupings: tuple[str, ...], period: Period | None = None, playbook: str | None = None,
                 product: str | None = None, now: datetime | None = None, model: str | None = None,
                 with_funnel: bool = True) -> dict[str, dict]:
    """:func:`compute` for several groupings of one period, each answer the same as its own.

    Groupings by a field of the touch or its playbook (:data:`kpi_sql.TOUCH_GROUPS`) are
    computed together: one pass over the touches, one probe of the events per account and
    one attribution path serve them all (not under the Markov model, whose weights depend
    on the grouping). The funnel does not depend on the grouping: it is computed once.
    """
    for group_by in groupings:
        check_group(group_by)
    period = period or Period.parse(None, None, now)
    attribution = Attribution.current(model)
    playbook_ids = playbook_ids_for(playbook, product)
    together = attribution.model != "markov" and set(groupings) <= set(kpi_sql.TOUCH_GROUPS)
    answers: dict[str, dict] = {}
    for batch in [tuple(groupings)] if together else [(g,) for g in groupings]:
        answers.update(_compute(batch, [period], attribution, playbook_ids, playbook, product)[0])
    the_funnel = funnel(period, playbook_ids) if with_funnel else None
    return {g: {**answers[g], "funnel": the_funnel} for g in groupings}


def series(group_by: str, periods: list[Period], playbook: str | None = None, product: str | None = None,
           model: str | None = None) -> list[dict]:
    """:func:`compute` (without the funnel) for each of consecutive ``periods`` (the
    trends page's weeks), each answer the same as its own: one pass over the touches and
    one attribution path serve them all (not under the Markov model, whose weights
    depend on each period's journeys)."""
    check_group(group_by)
    attribution = Attribution.current(model)
    if attribution.model == "markov":
        return [compute(group_by, p, playbook, product, model=model, with_funnel=False) for p in periods]
    answers = _compute((group_by,), periods, attribution, playbook_ids_for(playbook, product), playbook, product)
    return [{**a[group_by], "funnel": None} for a in answers]


def _compute(batch: tuple[str, ...], periods: list[Period], attribution: Attribution,
             playbook_ids: set[int] | None, playbook: str | None, product: str | None) -> list[dict[str, dict]]:
    """For each of consecutive ``periods``, the answer of each grouping of ``batch``."""
    first, *also = batch
    kpi_sql.tune()
    span = Period(periods[0].start, periods[-1].end)
    mt = kpi_sql.marketing_touches(first, span.start - timedelta(days=attribution.window_days), span.end,
                                   playbook_ids, tuple(also))
    cut = kpi_sql.Cut([(p.start, p.end) for p in periods])
    columns = {g: kpi_sql.label_column(g, first) for g in batch}
    groups = [{g: defaultdict(_empty_group) for g in batch} for _ in periods]
    totals = [defaultdict(float) for _ in periods]
    _shape(groups, totals, kpi_sql.run(kpi_reach.reach_statement(mt, cut, columns)))
    path = _path(mt, span, attribution, first, playbook_ids)
    _shape(groups, totals, kpi_sql.run(kpi_sql.attribution_statement(path, columns, cut)))
    answers = []
    for period, by_grouping, period_totals in zip(periods, groups, totals, strict=True):
        answers.append({group_by: _answer(group_by, period, attribution, by_grouping[group_by], period_totals,
                                          playbook, product) for group_by in batch})
    return answers


def _answer(group_by: str, period: Period, attribution: Attribution, groups: dict, totals: dict,
            playbook: str | None, product: str | None) -> dict:
    spend.add_to_groups(groups, group_by, period.start, period.end, playbook, product)
    rows = sorted((_finish(g, v) for g, v in groups.items()), key=lambda r: (-r["touches"], r["group"]))
    return {"group_by": group_by, "from": period.start.isoformat(), "to": period.end.isoformat(),
            "attribution": attribution.describe(), "groups": rows, "totals": _totals(totals, groups)}


def markov_removal_effects(group_by: str, period: Period, playbook_ids: set[int] | None = None,
                           window_days: int | None = None) -> dict[str, float]:
    """Each group's removal effect in the Markov chain of the period's journeys."""
    window_days = window_days or Attribution.current().window_days
    mt = kpi_sql.marketing_touches(group_by, period.start - timedelta(days=window_days), period.end, playbook_ids)
    conv = kpi_sql.conversions(lead_types(), period.start, period.end, window_days, with_lead_at=False)
    statement = kpi_sql.transitions_statement(kpi_sql.numbered(conv, mt, window_days),
                                              kpi_reach.in_periods(mt, kpi_sql.Cut([(period.start, period.end)])), conv)
    return metrics.removal_effects({(a, b): n for a, b, n in db.session.execute(statement)})


def lead_types() -> list[str]:
    return settings_service.current().get("lead_events", ["form_fill", "email_reply", "meeting"])


def touches_and_path(group_by: str, period: Period, playbook: str | None, product: str | None,
                     model: str | None):
    """The period's touches labelled with their group (``mt``) and the weighted conversion paths."""
    attribution = Attribution.current(model)
    playbook_ids = playbook_ids_for(playbook, product)
    mt = kpi_sql.marketing_touches(group_by, period.start - timedelta(days=attribution.window_days), period.end,
                                   playbook_ids)
    return mt, _path(mt, period, attribution, group_by, playbook_ids)


def _path(mt, period: Period, attribution: Attribution, group_by: str, playbook_ids: set[int] | None):
    """The conversions of the period joined to the touches before them, with their weights."""
    conv = kpi_sql.conversions(lead_types(), period.start, period.end, attribution.window_days,
                               with_lead_at=attribution.model == "w_shaped")
    removal = (markov_removal_effects(group_by, period, playbook_ids, attribution.window_days)
               if attribution.model == "markov" else None)
    return kpi_sql.weighted(kpi_sql.numbered(conv, mt, attribution.window_days), attribution.model,
                            attribution.half_life_days, removal)


COMPARED = {"leads": "leads", "opportunities": "opportunities", "won": "won"}


def compare_models(group_by: str, period: Period, metric: str = "leads", playbook: str | None = None,
                   product: str | None = None) -> dict:
    """One row per group, one column per attribution model: the conversions credited."""
    check_group(group_by)
    if metric not in COMPARED:
        raise KpiError(f"metric must be one of {', '.join(COMPARED)}")
    playbook_ids = playbook_ids_for(playbook, product)
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    totals: dict[str, float] = {}
    for model in MODELS:
        attribution = Attribution.current(model)
        mt = kpi_sql.marketing_touches(group_by, period.start - timedelta(days=attribution.window_days),
                                       period.end, playbook_ids)
        groups: dict[str, dict] = defaultdict(_empty_group)
        path = _path(mt, period, attribution, group_by, playbook_ids)
        cut = kpi_sql.Cut([(period.start, period.end)])
        _shape([{group_by: groups}], [defaultdict(float)],
               kpi_sql.run(kpi_sql.attribution_statement(path, {group_by: "g"}, cut)))
        for g, v in groups.items():
            if v[COMPARED[metric]]:
                rows[g][model] = round(v[COMPARED[metric]], 4)
        totals[model] = round(sum(rows[g].get(model, 0.0) for g in rows), 4)
    return {"group_by": group_by, "metric": metric, "from": period.start.isoformat(), "to": period.end.isoformat(),
            "models": list(MODELS), "totals": totals,
            "groups": sorted(({"group": g, **{m: v.get(m, 0.0) for m in MODELS}} for g, v in rows.items()),
                             key=lambda r: (-r["linear"], r["group"]))}


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


def _shape(groups: list[dict[str, dict]], totals: list[dict], rows) -> None:
    """Put each (grouping, part, group, period, values...) row where it belongs: a group's
    of that grouping in that period (``groups[period][grouping][group]``) or the period's
    totals."""
    for grouping, part, g, b, *values in rows:
        fields = _GROUP_FIELDS[part] if g is not None else _TOTAL_FIELDS[part]
        target = groups[int(b)][grouping][g] if g is not None else totals[int(b)]
        for name, value in zip(fields, values, strict=False):
            target[name] = value or 0.0 if name != "median_days" else value


def _finish(group: str, v: dict) -> dict:
    return {
        "group": group,
        "touches": int(v["touches"]),
        "accounts_reached": int(v["accounts_reached"]),
        "engaged_accounts": int(v["engaged_accounts"]),
        "leads": round(v["leads"], 4),
        "cost": metrics.cents(v["cost"]),
        "cost_per_lead": metrics.cents(v["cost"] / v["leads"]) if v["leads"] else None,
        "opportunities": round(v["opportunities"], 4),
        "lead_to_opportunity_rate": _r(metrics.rate(v["leads_to_opportunity"], v["leads"])),
        "opportunity_to_won_rate": _r(metrics.rate(v["won"], v["closed_opportunities"])),
        "pipeline_influenced": metrics.cents(v["pipeline_influenced"]),
        "revenue_influenced": metrics.cents(v["revenue_influenced"]),
        "median_days_first_touch_to_opportunity": _r(v["median_days"], 2),
    }


def _r(value, digits: int = 4):
    return None if value is None else round(value, digits)


def _totals(t: dict, groups: dict[str, dict]) -> dict:
    """Totals over all groups; each lead and opportunity counted once. The cost is the
    groups' costs added before rounding (rounding each first could be a cent off)."""
    cost = sum(g["cost"] for g in groups.values())
    leads = int(t["leads"])
    return {"touches": int(t["touches"]), "accounts_reached": int(t["accounts_reached"]),
            "engaged_accounts": int(t["engaged_accounts"]), "leads": leads,
            "cost": metrics.cents(cost), "cost_per_lead": metrics.cents(cost / leads) if leads else None,
            "opportunities": int(t["opportunities"]), "won": int(t["won"]),
            "pipeline_influenced": metrics.cents(t["pipeline_influenced"]),
            "revenue_influenced": metrics.cents(t["revenue_influenced"])}


FUNNEL_STEPS = kpi_accounts.FUNNEL_STEPS


def funnel(period: Period, playbook_ids: set[int] | None = None) -> list[dict]:
    """Target accounts (enrolled in a playbook, not held out) to won, over the period."""
    counts = kpi_accounts.funnel_counts(period.start, period.end, lead_types(), playbook_ids)
    return [{"step": step, "accounts": counts.get(step, 0)} for step in FUNNEL_STEPS]


def playbook_ids_for(playbook: str | None, product: str | None) -> set[int] | None:
    """The playbooks a dashboard filter keeps (None: no filter)."""
    if playbook is None and product is None:
        return None
    q = select(Playbook.id)
    if playbook is not None:
        q = q.where(Playbook.key == playbook)
    if product is not None:
        q = q.where(Playbook.product == product)
    return set(db.session.execute(q).scalars())


def stage_velocity(period: Period) -> list[dict]:
    """Median days an account spent in each stage before moving on, for moves in the period."""
    spent: dict[str, list[float]] = defaultdict(list)
    for stage, days, *_move in db.session.execute(kpi_accounts.velocity_statement(period.start, period.end)):
        spent[stage].append(days)
    return [{"stage": st, "moves": len(spent.get(st, [])), "median_days": _r(metrics.median(spent.get(st, [])), 2)}
            for st in settings_service.current()["stages"] if st != "lost"]


def coverage(period: Period, funnel_steps: list[dict] | None = None) -> dict:
    """Target accounts reached and engaged; per buying role, the share of targets with a contact reached.

    ``funnel_steps``: the unfiltered :func:`funnel` of the same period, whose first three
    steps are these counts (the same conditions), so that they are not counted twice.
    """
    rows = db.session.execute(kpi_accounts.coverage_statement(period.start, period.end,
                                                              with_counts=funnel_steps is None)).all()
    counts = ({s["step"]: s["accounts"] for s in funnel_steps if s["step"] in kpi_accounts.COVERAGE_PARTS}
              if funnel_steps is not None else {part: n for part, _, n in rows if part != "role"})
    roles = {role: n for part, role, n in rows if part == "role"}
    n = counts["target"]
    return {"target_accounts": n, "reached": counts["reached"], "engaged": counts["engaged"],
            "roles": [{"role": r, "accounts": roles.get(r, 0), "share": _r(metrics.rate(roles.get(r, 0), n))}
                      for r in settings_service.current()["roles"]]}


def lift(playbook_key: str, now: datetime | None = None) -> dict:
    """Enrolled against held-out accounts of one playbook: engaged, opportunity and won rates."""
    pb = db.session.execute(select(Playbook).where(Playbook.key == playbook_key)).scalar_one_or_none()
    if pb is None:
        raise NotFound("playbook")
    return _lift_of(pb.key, pb.name, db.session.execute(kpi_accounts.lift_statement(pb.id)).all())


def lifts() -> list[dict]:
    """The lift of every playbook that has enrolled accounts (one statement for all)."""
    rows = defaultdict(list)
    for row in db.session.execute(kpi_accounts.lift_statement()):
        rows[row[0]].append(row)
    return [_lift_of(key, name, rows[pid]) for pid, key, name in kpi_accounts.playbooks_with_enrollments()]


def _lift_of(key: str, name: str, rows) -> dict:
    counts = {held: (n, {"engaged": e, "opportunity": o, "won": w}) for _, held, n, e, o, w in rows}
    treated, t_hits = counts.get(0, (0, {}))
    held, h_hits = counts.get(1, (0, {}))
    result = {"playbook": key, "name": name, "enrolled": treated, "held_out": held, "metrics": []}
    for metric in ("engaged", "opportunity", "won"):
        st, sc = int(t_hits.get(metric) or 0), int(h_hits.get(metric) or 0)
        diff = metrics.difference(st, treated, sc, held)
        result["metrics"].append({
            "metric": metric,
            "enrolled_rate": _r(metrics.rate(st, treated)), "held_out_rate": _r(metrics.rate(sc, held)),
            "enrolled_count": st, "held_out_count": sc,
            "difference": _r(diff.estimate) if diff else None,
            "ci95": [_r(diff.low), _r(diff.high)] if diff else None,
            "sentence": metrics.lift_sentence(metric, st, treated, sc, held),
        })
    return result


#: The pipeline chart's columns: equal slices of the period.
PIPELINE_SLICES = 12


def slices(period: Period, buckets: int = PIPELINE_SLICES) -> list[Period]:
    """The period cut into ``buckets`` equal slices, oldest first: the pipeline chart's columns."""
    span = (period.end - period.start) / buckets
    return [Period(period.start + span * i, period.end if i == buckets - 1 else period.start + span * (i + 1))
            for i in range(buckets)]


def pipeline_series(period: Period, buckets: int = PIPELINE_SLICES, playbook_ids: set[int] | None = None) -> list[dict]:
    """Pipeline and revenue influenced, per equal slice of the period (oldest first); with
    ``playbook_ids`` (the playbook and product filters), by those playbooks' touches only."""
    span = (period.end - period.start) / buckets
    series = [{"start": s.start.date().isoformat(), "pipeline": 0.0, "revenue": 0.0} for s in slices(period, buckets)]
    window = Attribution.current().window_days
    for b, pipeline, revenue in db.session.execute(kpi_accounts.pipeline_statement(
            period.start, period.end, window, span.total_seconds() / 86400, playbook_ids)):
        i = min(int(b), buckets - 1)
        series[i]["pipeline"] += float(pipeline or 0)
        series[i]["revenue"] += float(revenue or 0)
    return series
