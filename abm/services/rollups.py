"""KPI answers kept for a minute: the default views fresh, and fast when many look.

The dashboard and ``GET /api/v1/kpis`` ask for the last 30, 90 or 365 days (whole
days, today included) far more often than for anything else. An answer for one of
those periods is computed live (:func:`abm.services.kpis.compute`, in SQL) when none
younger than :data:`MAX_AGE` is stored, and stored with the moment it was computed,
which the page and the API show. The periodic job (:func:`refresh`, looking every
:data:`REFRESH_TICK` seconds whether one is due, see :func:`next_refresh`) recomputes
the default view's answers (the last 90 days by playbook and by channel, and the
dashboard's other figures) before they turn a minute old, so that no reader waits, at
most a tenth of a worker's time; the lift of each playbook does not depend on the
period and is computed once per refresh. A stored answer is exactly what a live computation gave at
``computed_at`` (a test holds them to it). Other periods are always computed live.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import select

from abm.db import db, utcnow
from abm.models import KpiRollup
from abm.services import kpi_sql
from abm.services import kpis as kpi_service

STANDARD_DAYS = (30, 90, 365)
DEFAULT_DAYS = 90
#: The groupings the dashboard's default view shows.
DEFAULT_GROUPS = ("playbook", "channel")
MAX_AGE = timedelta(minutes=1)
#: The refresh takes at most this share of a worker's time: after a refresh of s seconds
#: the next one waits s / SHARE (readers never wait for it: an answer over a minute old
#: is computed when asked for).
SHARE = 0.1
#: How often the scheduler asks whether a refresh is due (seconds; a look at one row).
REFRESH_TICK = 10
#: A refresh marked running that never finished (its worker killed) is taken over after
#: this long, the refresh job's timeout.
STALE_REFRESH = timedelta(minutes=30)


def key(group_by: str, period: kpi_service.Period, playbook: str | None, product: str | None,
        model: str | None = None) -> str:
    return (f"{group_by}|{period.start.isoformat()}|{period.end.isoformat()}|{playbook or ''}|{product or ''}"
            + (f"|{model}" if model else ""))


def standard_periods(now: datetime | None = None) -> list[kpi_service.Period]:
    now = now or utcnow()
    end = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo) + timedelta(days=1)
    return [kpi_service.Period(end - timedelta(days=d), end) for d in STANDARD_DAYS]


def is_standard(period: kpi_service.Period, now: datetime | None = None) -> bool:
    return period in standard_periods(now)


def extras_of(period: kpi_service.Period, funnel: list[dict] | None = None) -> dict:
    """The dashboard's other figures: stage velocity, coverage, pipeline over time (not
    lifts); ``funnel``, the unfiltered funnel of the period when at hand, gives coverage
    its first three counts."""
    return {"velocity": kpi_service.stage_velocity(period), "coverage": kpi_service.coverage(period, funnel),
            "pipeline": kpi_service.pipeline_series(period)}


def _stored(k: str, now: datetime) -> KpiRollup | None:
    row = db.session.execute(select(KpiRollup).where(KpiRollup.key == k)).scalar_one_or_none()
    return row if row is not None and now - row.computed_at <= MAX_AGE else None


def _store(k: str, data: dict, now: datetime) -> None:
    row = db.session.execute(select(KpiRollup).where(KpiRollup.key == k)).scalar_one_or_none()
    if row is None:
        db.session.add(KpiRollup(key=k, data=data, computed_at=now))
    else:
        row.data, row.computed_at = data, now


def next_refresh(last_start: datetime, seconds: float) -> datetime:
    """When the refresh after one that started at ``last_start`` and took ``seconds`` is
    due: a tick before that one's answers turn :data:`MAX_AGE` old, so that the next are
    stored in time and no reader waits for a live answer, but never sooner than
    :data:`SHARE` allows (a refresh of s seconds waits s / SHARE; past 4.5 s or so,
    readers of answers over a minute old compute theirs)."""
    in_time = MAX_AGE - timedelta(seconds=seconds + REFRESH_TICK)
    return last_start + max(in_time, timedelta(seconds=seconds / SHARE))


def refresh(now: datetime | None = None, days: tuple[int, ...] = (DEFAULT_DAYS,),
            groups: tuple[str, ...] = DEFAULT_GROUPS) -> int:
    """Recompute and store the default view's answers; returns how many were stored (0
    when none is due yet, see :func:`next_refresh`, or another refresh is running)."""
    now = now or utcnow()
    if not _claim(now):
        return 0
    started = time.perf_counter()
    try:
        stored = _recompute(now, days, groups)
        db.session.query(KpiRollup).filter(KpiRollup.computed_at < now - timedelta(days=2)).delete(
            synchronize_session=False)
    except Exception:
        db.session.rollback()  # nothing of a failed refresh is kept, but it is marked done
        raise
    finally:
        _store("refresh", {"seconds": time.perf_counter() - started, "running": False}, now)
        db.session.commit()
    return stored


def _claim(now: datetime) -> bool:
    """Mark a refresh as running from ``now`` when one is due and none runs; committed at
    once, so that the scheduler's next ticks see it (the row is locked while deciding)."""
    row = db.session.execute(select(KpiRollup).where(KpiRollup.key == "refresh").with_for_update()
                             ).scalar_one_or_none()
    if row is not None:
        running = row.data.get("running") and now - row.computed_at < STALE_REFRESH
        if running or now < next_refresh(row.computed_at, row.data["seconds"]):
            db.session.rollback()
            return False
        row.data, row.computed_at = {**row.data, "running": True}, now
    else:
        db.session.add(KpiRollup(key="refresh", data={"seconds": 0.0, "running": True}, computed_at=now))
    db.session.commit()
    return True


def _recompute(now: datetime, days: tuple[int, ...], groups: tuple[str, ...]) -> int:
    kpi_sql.tune()
    stored = 0
    for period in standard_periods(now):
        if round(period.days) not in days:
            continue
        answers = kpi_service.compute_many(groups, period, now=now)  # read once for all the groupings
        for group_by, data in answers.items():
            _store(key(group_by, period, None, None), data, now)
            stored += 1
        _store(key("extras", period, None, None), extras_of(period, answers[groups[0]]["funnel"]), now)
    _store("lifts", {"lifts": kpi_service.lifts()}, now)
    return stored


def _cached(k: str, compute, period: kpi_service.Period, now: datetime) -> dict:
    """A stored answer under a minute old, else ``compute()`` (stored when the period is standard)."""
    row = _stored(k, now)
    if row is not None:
        return {**row.data, "computed_at": row.computed_at.isoformat()}
    data = compute()
    if is_standard(period, now):
        _store(k, data, now)
        db.session.commit()
    return {**data, "computed_at": now.isoformat()}


def extras(period: kpi_service.Period, now: datetime | None = None) -> dict:
    """Velocity, coverage, pipeline over time and lifts: stored when under a minute old, else computed."""
    now = now or utcnow()
    data = _cached(key("extras", period, None, None), lambda: extras_of(period), period, now)
    lifts = _stored("lifts", now)
    return {**data, "lifts": lifts.data["lifts"] if lifts is not None else kpi_service.lifts()}


def kpis(group_by: str, period: kpi_service.Period, playbook: str | None = None, product: str | None = None,
         now: datetime | None = None, model: str | None = None) -> dict:
    """The KPIs, with ``computed_at``: an answer under a minute old when stored, else computed now."""
    now = now or utcnow()
    kpi_service.check_group(group_by)
    model = kpi_service.Attribution.current(model).model
    default = model == kpi_service.Attribution.current().model
    k = key(group_by, period, playbook, product, None if default else model)
    return _cached(k, lambda: kpi_service.compute(group_by, period, playbook, product, now=now, model=model),
                   period, now)
