"""Jobs that send sales alerts."""

from __future__ import annotations


def send_alert(alert_id: int) -> str:
    from abm.services import alerts

    alert = alerts.send(alert_id)
    return alert.status if alert else "gone"
