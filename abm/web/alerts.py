"""The alerts inbox: a seller's alerts (a manager's or admin's team's), and the seller's
acknowledge, snooze and not-relevant.

The numbers and words come from :mod:`abm.services.alert_inbox`; a view reads the
request, calls it, and renders or redirects back to where the form was.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from abm.errors import ApiError
from abm.models import User
from abm.services import alert_inbox
from abm.services import users as users_service
from abm.services.clock import utcnow
from abm.web._access import MANAGERS, role_required, safe_next

bp = Blueprint("alerts", __name__)

DONE = {"acknowledge": "acknowledged", "snooze": "snoozed", "not_relevant": "marked not relevant",
        "reopen": "back in New"}


def _scope() -> tuple[str, list[int] | None, User | None]:
    """(scope, owner ids or None for the team, the owner picked) from ``?owner=``:
    ``mine``, ``team`` (managers and admins, the default for them) or a user id."""
    manager = current_user.role in MANAGERS
    wanted = (request.args.get("owner") or ("team" if manager else "mine")).strip()
    if wanted == "mine" or wanted == str(current_user.id):
        return "mine", [current_user.id], current_user
    if not manager:
        abort(403, description="an account executive sees their own alerts; managers and admins see the team's")
    if wanted == "team":
        return "team", None, None
    user = users_service.find(wanted) if wanted.isdigit() and int(wanted) < 2**31 else None
    if user is None:
        raise ApiError(404, f"no user {wanted!r}: pick a seller from the list on the alerts page")
    return str(user.id), [user.id], user


@bp.get("/alerts")
@role_required()
def index():
    scope, owner_ids, owner = _scope()
    state = request.args.get("state", "new")
    page = request.args.get("page", "1")
    now = utcnow()
    box = alert_inbox.inbox(owner_ids, state if state in alert_inbox.STATES else "new",
                            int(page) if page.isdigit() and len(page) < 7 else 1, now)
    sellers = users_service.active() if current_user.role in MANAGERS else []
    owner_arg = None if (scope == "team" and current_user.role in MANAGERS) or \
        (scope == "mine" and current_user.role not in MANAGERS) else scope
    return render_template(
        "web/alerts/index.html", box=box, states=alert_inbox.STATES, scope=scope, owner=owner, sellers=sellers,
        url=lambda **kw: url_for("alerts.index", owner=owner_arg, **kw),
        tomorrow=(now + timedelta(days=1)).date().isoformat(),
        default_snooze=(now + timedelta(days=3)).date().isoformat())


@bp.post("/alerts/<int:alert_id>/<action>")
@role_required()
def act(alert_id: int, action: str):
    back = safe_next(request.form.get("next")) or url_for("alerts.index")
    try:
        alert_inbox.act(alert_id, current_user, action, until=request.form.get("until"),
                        feedback=request.form.get("feedback"))
    except ApiError as exc:
        if exc.status in (403, 404):
            raise
        flash(f"Alert {alert_id} not changed: {exc.message}", "error")
        return redirect(back)
    what = DONE.get(action, action)
    if action == "snooze":
        what += f" until {request.form.get('until', '').strip()}"
    flash(f"Alert {alert_id} {what}.", "success")
    return redirect(back)
