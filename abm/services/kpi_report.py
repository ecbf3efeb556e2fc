"""The weekly KPI report: last week against the four before, by playbook and channel,
and the lift of each playbook with a holdout, for the people an admin lists.

The workers send it (``workers/report_jobs.py``); this module builds and renders it.
Settings: ``kpi_report.recipients`` (emails), ``kpi_report.weekday`` (the day it goes
out, ``mon`` by default), ``kpi_report.connector`` (the email connector; default: the
one that is the default for email).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

from flask import current_app, render_template
from sqlalchemy import select

from abm.db import db, utcnow
from abm.models import KpiRollup
from abm.services import kpi_charts, kpi_glossary, kpis
from abm.services import settings as settings_service

WEEKS = 5  # the week reported and the four before it
#: The figures of the week-by-week table: (key of the totals, is money).
TREND = (("touches", False), ("accounts_reached", False), ("engaged_accounts", False), ("leads", False),
         ("opportunities", False), ("won", False), ("cost", True), ("pipeline_influenced", True),
         ("revenue_influenced", True))


def weeks(now: datetime) -> list[kpis.Period]:
    """The last ``WEEKS`` whole weeks (Monday to Sunday) before ``now``, oldest first."""
    today = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo)
    monday = today - timedelta(days=today.weekday())
    return [kpis.Period(monday - timedelta(weeks=n), monday - timedelta(weeks=n - 1)) for n in range(WEEKS, 0, -1)]


def config() -> dict:
    return {"recipients": [], "weekday": "mon", "connector": None,
            **(settings_service.current().get("kpi_report") or {})}


def _change(now_value: float, before: list[float]) -> float | None:
    average = sum(before) / len(before) if before else 0
    return None if not average else (now_value - average) / average


def build(now: datetime | None = None) -> dict:
    """The report's figures (also what the test reads)."""
    now = now or utcnow()
    periods = weeks(now)
    totals = [kpis.compute("playbook", p, now=now)["totals"] for p in periods]
    rows = []
    for key, is_money in TREND:
        values = [float(t[key] or 0) for t in totals]
        rows.append({"key": key, "label": kpi_glossary.label(key), "money": is_money, "values": values,
                     "change": _change(values[-1], values[:-1])})
    week = periods[-1]
    return {"week_start": week.start.date().isoformat(), "week_end": (week.end - timedelta(days=1)).date().isoformat(),
            "weeks": [p.start.date().isoformat() for p in periods], "trend": rows,
            "by_playbook": kpis.compute("playbook", week, now=now)["groups"],
            "by_channel": kpis.compute("channel", week, now=now)["groups"],
            "lifts": [lift for lift in kpis.lifts() if lift["held_out"] > 0]}


def charts(report: dict, currency: str) -> dict[str, dict]:
    """The report's pictures, by name: one per figure week by week, and the week's leads
    by playbook and by channel. Each ``{"cid", "alt", "png"}``."""
    def fmt(is_money: bool):
        return (lambda v: kpi_glossary.money(v, currency)) if is_money else kpi_glossary.count

    drawn = {row["key"]: kpi_charts.weekly(row["label"], report["weeks"], row["values"], fmt(row["money"]))
             for row in report["trend"]}
    for name, groups in (("playbook", report["by_playbook"]), ("channel", report["by_channel"])):
        top = sorted(groups, key=lambda g: (-g["leads"], g["group"]))[:12]
        drawn[f"leads_by_{name}"] = kpi_charts.ranking(
            f"{kpi_glossary.label('leads')} by {name}", [g["group"] for g in top], [g["leads"] for g in top],
            fmt(False))
    return {name: {"cid": f"{name}.{report['week_start']}@kpi-report.abm", "alt": chart.alt, "png": chart.png}
            for name, chart in drawn.items()}


def render(report: dict) -> dict:
    """Subject, HTML with its charts as inline PNG parts (``inline_images``: the email
    builder attaches them, ``multipart/related``, each by its Content-ID) and text."""
    currency = settings_service.current().get("currency", "USD")
    images = charts(report, currency)
    context = {"r": report, "money": lambda v: kpi_glossary.money(v, currency), "label": kpi_glossary.label,
               "images": images, "base_url": current_app.config.get("BASE_URL", "")}
    return {"subject": f"KPIs, week of {report['week_start']}",
            "html": render_template("email/internal/kpi_report.html", **context),
            "text": render_template("email/internal/kpi_report.txt", **context),
            "inline_images": [{"cid": i["cid"], "content_type": "image/png", "filename": f"{name}.png",
                               "data_base64": base64.b64encode(i["png"]).decode("ascii")}
                              for name, i in images.items()]}


def _marker(week_start: str) -> str:
    return f"kpi-report|{week_start}"


def due(now: datetime | None = None) -> str | None:
    """The week to report on when the report should go out now (the configured weekday,
    not sent yet for that week), else None."""
    now = now or utcnow()
    cfg = config()
    if not cfg["recipients"] or now.strftime("%a").lower() != cfg["weekday"]:
        return None
    week_start = weeks(now)[-1].start.date().isoformat()
    sent = db.session.execute(select(KpiRollup.id).where(KpiRollup.key == _marker(week_start))).first()
    return None if sent else week_start


def mark_sent(week_start: str, recipients: list[str], now: datetime | None = None) -> None:
    db.session.add(KpiRollup(key=_marker(week_start), data={"recipients": recipients}, computed_at=now or utcnow()))
    db.session.commit()
