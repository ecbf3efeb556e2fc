"""KPI rollups: the answers for the usual periods, kept current by a periodic job.

The dashboard and ``GET /api/v1/kpis`` ask for the last 30, 90 or 365 days (whole
days, today included) far more often than for anything else. ``refresh`` computes those
answers with :func:`abm.services.kpis.compute` for every grouping and stores them in
``kpi_rollups``; ``kpis`` serves a stored answer when one matches the request and is
fresher than ``MAX_AGE``, and computes the others live. A stored answer is exactly
what a live computation gave at ``computed_at`` (a test holds them to it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from abm.db import db, utcnow
from abm.models import KpiRollup
from abm.services import kpis as kpi_service

STANDARD_DAYS = (30, 90, 365)
MAX_AGE = timedelta(minutes=15)


def key(group_by: str, period: kpi_service.Period, playbook: str | None, product: str | None) -> str:
    return f"{group_by}|{period.start.isoformat()}|{period.end.isoformat()}|{playbook or ''}|{product or ''}"


def standard_periods(now: datetime | None = None) -> list[kpi_service.Period]:
    now = now or utcnow()
    end = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo) + timedelta(days=1)
    return [kpi_service.Period(end - timedelta(days=d), end) for d in STANDARD_DAYS]


def extras_of(period: kpi_service.Period) -> dict:
    """The dashboard's other figures: stage velocity, coverage, pipeline over time, lifts."""
    return {"velocity": kpi_service.stage_velocity(period), "coverage": kpi_service.coverage(period),
            "pipeline": kpi_service.pipeline_series(period), "lifts": kpi_service.lifts()}


def _store(k: str, data: dict, now: datetime) -> None:
    row = db.session.execute(select(KpiRollup).where(KpiRollup.key == k)).scalar_one_or_none()
    if row is None:
        db.session.add(KpiRollup(key=k, data=data, computed_at=now))
    else:
        row.data, row.computed_at = data, now


def refresh(now: datetime | None = None) -> int:
    """Recompute and store the standard answers; returns how many were stored."""
    now = now or utcnow()
    stored = 0
    for period in standard_periods(now):
        for group_by in kpi_service.GROUPS:
            _store(key(group_by, period, None, None), kpi_service.compute(group_by, period, now=now), now)
            stored += 1
        _store(key("extras", period, None, None), extras_of(period), now)
    cutoff = now - timedelta(days=2)
    db.session.query(KpiRollup).filter(KpiRollup.computed_at < cutoff).delete(synchronize_session=False)
    db.session.commit()
    return stored


def extras(period: kpi_service.Period, now: datetime | None = None) -> dict:
    """Velocity, coverage, pipeline over time and lifts: stored when fresh, else computed."""
    now = now or utcnow()
    row = db.session.execute(select(KpiRollup).where(
        KpiRollup.key == key("extras", period, None, None))).scalar_one_or_none()
    if row is not None and now - row.computed_at <= MAX_AGE:
        return row.data
    return extras_of(period)


def kpis(group_by: str, period: kpi_service.Period, playbook: str | None = None, product: str | None = None,
         now: datetime | None = None) -> dict:
    """The KPIs: a fresh stored answer when there is one, else computed now."""
    now = now or utcnow()
    if group_by not in kpi_service.GROUPS:
        raise kpi_service.KpiError(f"group_by must be one of {', '.join(kpi_service.GROUPS)}")
    row = db.session.execute(select(KpiRollup).where(
        KpiRollup.key == key(group_by, period, playbook, product))).scalar_one_or_none()
    if row is not None and now - row.computed_at <= MAX_AGE:
        return {**row.data, "computed_at": row.computed_at.isoformat()}
    return {**kpi_service.compute(group_by, period, playbook, product, now=now), "computed_at": now.isoformat()}
