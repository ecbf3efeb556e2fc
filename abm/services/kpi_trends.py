"""Every KPI as a weekly series: the totals of :func:`abm.services.kpis.compute` for each
of the last weeks (Monday to Sunday; the current week so far last)."""

from __future__ import annotations

from datetime import datetime, timedelta

from abm.db import utcnow
from abm.services import kpis

#: The series, in the order the trends page shows them: (key of the totals, is money).
FIGURES = (("touches", False), ("accounts_reached", False), ("engaged_accounts", False), ("leads", False),
           ("cost", True), ("cost_per_lead", True), ("opportunities", False), ("won", False),
           ("pipeline_influenced", True), ("revenue_influenced", True))
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


def weekly(weeks: int = 12, model: str | None = None, playbook: str | None = None, product: str | None = None,
           now: datetime | None = None) -> dict:
    """``{"weeks": [...], "rows": [{"week", figure: value...}], "attribution"}``."""
    now = now or utcnow()
    rows = []
    attribution = None
    for period in week_periods(weeks, now):
        data = kpis.compute("playbook", period, playbook, product, now=now, model=model, with_funnel=False)
        attribution = data["attribution"]
        rows.append({"week": period.start.date().isoformat(), **{k: data["totals"][k] for k, _ in FIGURES}})
    return {"rows": rows, "figures": [{"key": k, "money": m} for k, m in FIGURES], "attribution": attribution}
