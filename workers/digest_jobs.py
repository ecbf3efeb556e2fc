"""The weekly digest of each seller, sent by the workers: by email through the workspace's
email connector, and as a Slack direct message where the default alert connector is a
Slack bot (``deliver_to: direct_message``)."""

from __future__ import annotations

from datetime import datetime

from abm.services import clock, digest
from abm.services import connectors as connector_service
from connectors.base import ConnectorError, Touch


def send_weekly_digests(now: datetime | None = None) -> int:
    """Send every digest that is due now (the hourly job; ``now`` is the engine's clock,
    which tests move); returns how many went out."""
    now = now or clock.now()
    due = digest.due(now)
    if not due:
        return 0
    email = connector_service.default_for("email")
    if not email:
        raise RuntimeError("weekly digests are due but no email connector is the default for email")
    mailer = connector_service.instantiate(email)
    slack = _slack()
    sent = 0
    for user, week in due:
        message = digest.render(digest.build(user, now))
        touch = Touch(id=user.id, kind="email", channel="email", account={}, key=f"digest:{user.id}:{week}",
                      contact={"email": user.email, "first_name": user.name},
                      payload={"subject": message["subject"], "text": message["text"], "html": message["html"],
                               "headers": {"List-Unsubscribe": f"<{digest.base_url()}/engagement/mine>"}})
        [result] = mailer.send([touch])
        channels = ["email"] if result.ok else []
        if slack is not None:
            alert = Touch(id=user.id, kind="alert", channel="alert", account={}, contact=None,
                          key=f"digest-slack:{user.id}:{week}", payload={"to": user.email, "message": message["slack"]})
            try:
                channels += ["slack"] if slack.send([alert])[0].ok else []
            except ConnectorError:
                pass  # the email is the digest; Slack is a courtesy
        if channels:
            digest.mark_sent(user, week, channels)
            sent += 1
    return sent


def _slack():
    name = connector_service.default_for("alert")
    if not name:
        return None
    connector = connector_service.instantiate(name)
    if connector.type != "slack" or connector.settings.get("deliver_to") != "direct_message":
        return None
    return connector
