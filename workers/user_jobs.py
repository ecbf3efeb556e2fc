"""Emails to the product's own users, sent through the workspace's email connector."""

from __future__ import annotations

from flask import current_app, render_template

from abm.db import db
from abm.models import User
from abm.services import connectors as connector_service
from abm.services import user_admin
from connectors.base import Touch


def send_password_reset(user_id: int) -> dict:
    """Email ``user_id`` a password-reset link, made now (it never waits in the queue).

    Raises when there is no email connector or the provider refuses it, so the job is
    recorded as failed with the reason."""
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return {"sent": False, "reason": "the user is gone or deactivated"}
    name = connector_service.default_for("email")
    if not name:
        raise RuntimeError("no default email connector: a password-reset link cannot be emailed")
    context = {"user": user, "link": user_admin.reset_link(user), "hours": user_admin.PASSWORD_RESET_HOURS}
    base = current_app.config.get("BASE_URL", "").rstrip("/")
    payload = {"headers": {"List-Unsubscribe": f"<{base}/login>"},  # the product sends no email without one
               "subject": "Reset your ABM password",
               "text": render_template("email/internal/password_reset.txt", **context),
               "html": render_template("email/internal/password_reset.html", **context)}
    touch = Touch(id=user.id, kind="email", channel="email", account={}, key=f"password-reset:{user.id}",
                  contact={"email": user.email, "first_name": user.name}, payload=payload)
    [result] = connector_service.instantiate(name).send([touch])
    if not result.ok:
        raise RuntimeError(f"the password-reset email to {user.email} failed: {result.error}")
    return {"sent": True, "connector": name}
