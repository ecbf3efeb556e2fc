"""The weekly KPI report, sent by the workers through the workspace's email connector.

The scheduler runs :func:`send_weekly_kpi_report` every hour; it sends only on the
configured weekday, once per week (a marker row records the week sent).
"""

from __future__ import annotations

from abm.services import connectors as connector_service
from abm.services import kpi_report
from connectors.base import Touch


def send_weekly_kpi_report(now=None) -> int:
    """Send last week's report to ``kpi_report.recipients`` when due; returns how many got it."""
    week = kpi_report.due(now)
    if week is None:
        return 0
    cfg = kpi_report.config()
    name = cfg["connector"] or connector_service.default_for("email")
    if not name:
        raise RuntimeError("the weekly KPI report has recipients but no email connector: set kpi_report.connector")
    message = kpi_report.render(kpi_report.build(now))
    connector = connector_service.instantiate(name)
    settings_url = connector.context.base_url.rstrip("/") + "/admin/settings" if connector.context else ""
    touches = [Touch(id=i, kind="email", channel="email", account={}, contact={"email": to},
                     payload={**message, "headers": {"List-Unsubscribe": f"<{settings_url}>"}},
                     key=f"kpi-report:{week}:{to}")
               for i, to in enumerate(cfg["recipients"], start=1)]
    results = connector.send(touches)
    sent = [t.contact["email"] for t, r in zip(touches, results, strict=True) if r.ok]
    if sent:
        kpi_report.mark_sent(week, sent, now)
    return len(sent)
