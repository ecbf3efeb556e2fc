"""Jobs that send sales alerts."""

from __future__ import annotations


def send_alerts(alert_ids: list[int]) -> dict[str, int]:
    from abm.services import alerts

    counts: dict[str, int] = {}
    for alert_id in alert_ids:
        alert = alerts.send(alert_id)
        status = alert.status if alert else "gone"
        counts[status] = counts.get(status, 0) + 1
    return counts
