"""Every KPI as a weekly series: the answers of :func:`abm.services.kpis.compute` for
each of the last weeks (Monday to Sunday; the current week so far last), in total and
for each group of the chosen grouping (playbook, channel, segment...).

One computation for all the weeks (:func:`abm.services.kpis.series`: one pass over the
touches and one attribution path) gives both: the totals and every group's row of each week.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from abm.db import utcnow
from abm.services import kpis

#: The totals' series, in the order the trends page shows them: (key of the totals, is money).
FIGURES = (("touches", False), ("accounts_reached", False), ("engaged_accounts", False), ("leads", False),
           ("cost", True), ("cost_per_lead", True), ("opportunities", False), ("won", False),
           ("pipeline_influenced", True), ("revenue_influenced", True))
#: Each group's series: every figure of a group's row (what the dashboard's table shows).
#: (key, kind): kind is "money", "rate", "days" or "count".
GROUP_FIGURES = (("touches", "count"), ("accounts_reached", "count"), ("engaged_accounts", "count"),
                 ("leads", "count"), ("cost", "money"), ("cost_per_lead", "money"), ("opportunities", "count"),
                 ("lead_to_opportunity_rate", "rate"), ("opportunity_to_won_rate", "rate"),
                 ("pipeline_influenced", "money"), ("revenue_influenced", "money"),
                 ("median_days_first_touch_to_opportunity", "days"))
MAX_WEEKS = 52


def week_periods(weeks: int, now: datetime) -> list[kpis.Period]:
    """The last ``weeks`` weeks, oldest first; the last one is this week up to today included."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise kpis.KpiError(f"weeks must be between 1 and {MAX_WEEKS}")
    today = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo)
    monday = today - timedelta(days=today.weekday())
    end = today + timedelta(days=1)
    return [kpis.Period(monday - timedelta(weeks=n), min(monday - timedelta(weeks=n - 1), end))
            for n in range(weeks - 1, -1, -1)]


def _empty_week(week: str) -> dict:
    """A group's week without any of its touches: counts and money 0, rates and days none."""
    return {"week": week, **{k: (0 if kind in ("count", "money") else None) for k, kind in GROUP_FIGURES}}


def weekly(weeks: int = 12, model: str | None = None, playbook: str | None = None, product: str | None = None,
           now: datetime | None = None, group_by: str = "playbook") -> dict:
    """``{"rows": [{"week", figure: total...}], "figures", "group_by", "group_figures",
    "groups": [{"group", "rows": [{"week", figure: value...}]}], "attribution"}``: every
    group that had a figure in one of the weeks has a row for every week."""
    now = now or utcnow()
    kpis.check_group(group_by)
    rows, by_group = [], {}
    attribution = None
    periods = week_periods(weeks, now)
    for period, data in zip(periods, kpis.series(group_by, periods, playbook, product, model), strict=True):
        attribution = data["attribution"]
        week = period.start.date().isoformat()
        rows.append({"week": week, **{k: data["totals"][k] for k, _ in FIGURES}})
        for g in data["groups"]:
            by_group.setdefault(g["group"], {})[week] = {"week": week, **{k: g[k] for k, _ in GROUP_FIGURES}}
    all_weeks = [r["week"] for r in rows]
    groups = [{"group": name, "rows": [series.get(w) or _empty_week(w) for w in all_weeks]}
              for name, series in by_group.items()]
    groups.sort(key=lambda g: (-sum(r["touches"] for r in g["rows"]), g["group"]))
    return {"rows": rows, "figures": [{"key": k, "money": m} for k, m in FIGURES], "attribution": attribution,
            "group_by": group_by, "group_figures": [{"key": k, "kind": kind} for k, kind in GROUP_FIGURES],
            "groups": groups}


def group_csv_rows(data: dict) -> list[dict]:
    """The groups' series as CSV rows: one per group and week."""
    return [{data["group_by"]: g["group"], **row} for g in data["groups"] for row in g["rows"]]
