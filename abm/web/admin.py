"""Admin pages: users and their API tokens, and the workspace settings."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from abm.errors import ValidationError
from abm.models import ROLES
from abm.services import alert_inbox, api_tokens, scores, user_admin
from abm.services import settings as settings_service
from abm.services import users as users_service
from abm.services.users import UserError, create_user
from abm.web import _settings_form as settings_form
from abm.web._access import role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _users_page(status: int = 200, **context):
    context.setdefault("form", {"role": "ae"})
    return render_template("web/admin/users.html", users=users_service.with_tokens(), roles=ROLES,
                           owned=users_service.accounts_owned(), **context), status, {
        "Cache-Control": "no-store"}


@bp.get("/users")
@role_required("admin")
def users():
    return _users_page()


@bp.post("/users")
@role_required("admin")
def create():
    form = {k: (request.form.get(k) or "").strip() for k in ("email", "name", "role")}
    password = request.form.get("password") or None
    try:
        user = create_user(form["email"], form["role"], password, name=form["name"], actor_id=current_user.id)
    except UserError as exc:
        message = str(exc)
        field = "role" if message.startswith("role") else "password" if "password" in message else "email"
        return _users_page(422, form=form, errors={field: [message]})
    flash(f"User {user.email} created ({user.role}).", "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/tokens")
@role_required("admin")
def create_token(user_id: int):
    user = users_service.get(user_id) or abort(404, description=f"user {user_id} not found")
    name = (request.form.get("name") or "").strip()[:200]
    _row, token = api_tokens.issue(user, name, current_user.id, action="token.create")
    # Shown in this answer only (no redirect, nothing kept in the session, not cached).
    return _users_page(201, new_token={"user": user, "name": name, "token": token})


@bp.post("/tokens/<int:token_id>/revoke")
@role_required("admin")
def revoke_token(token_id: int):
    token = api_tokens.get(token_id) or abort(404, description=f"token {token_id} not found")
    if api_tokens.revoke(token, current_user.id):
        flash(f"Token {token.prefix}… of {token.user.email} revoked; it no longer works.", "success")
    return redirect(url_for("admin.users"))


DONE = {"role": "now has the role {role}", "deactivate": "is deactivated: their sessions and API tokens have ended",
        "reactivate": "is active again", "reset": "will get a password-reset link by email",
        "delete": "is deleted", "timezone": "now has the time zone {timezone}"}


@bp.post("/users/<int:user_id>/<action>")
@role_required("admin")
def manage(user_id: int, action: str):
    """Change a role, deactivate, reactivate, email a reset link, delete (accounts reassigned)."""
    if action not in DONE:
        abort(404, description=f"no action {action!r}: use one of {', '.join(DONE)}")
    user = users_service.get(user_id) or abort(404, description=f"user {user_id} not found")
    email = user.email
    try:
        if action == "timezone":
            user_admin.set_timezone(user, request.form.get("timezone"), actor_id=current_user.id)
        elif action == "role":
            user_admin.change_role(user, request.form.get("role", ""), actor_id=current_user.id)
        elif action == "deactivate":
            user_admin.deactivate(user, actor_id=current_user.id)
        elif action == "reactivate":
            user_admin.reactivate(user, actor_id=current_user.id)
        elif action == "reset":
            user_admin.send_reset_link(user, actor_id=current_user.id)
        else:
            target = user_admin.find(request.form["reassign_to"]) if request.form.get("reassign_to") else None
            moved = user_admin.delete(user, target, actor_id=current_user.id)
            if moved:
                flash(f"{moved} account(s) of {email} moved to {target.email}.", "info")
    except UserError as exc:
        if action == "timezone":  # the page again, the field marked and what was typed kept
            return _users_page(422, zone_form={"user_id": user.id, "timezone": request.form.get("timezone", "")},
                               errors={f"timezone-{user.id}": [str(exc)]})
        flash(f"{email}: {exc}", "error")
        return redirect(url_for("admin.users"))
    done = DONE[action].format(role=request.form.get("role"),
                                timezone=(user.timezone or "of the workspace") if action == "timezone" else "")
    flash(f"{email} {done}.", "success")
    return redirect(url_for("admin.users"))


@bp.route("/settings", methods=["GET", "POST"])
@role_required("admin")
def settings():
    """Edit the settings (a new version on each save); ``action=preview`` shows how many
    accounts would change level without saving; ``?test_url=`` tries the URL rules."""
    current = settings_service.current()
    errors: dict[str, list[str]] = {}
    values = settings_form.to_form(current)
    status, preview = 200, None
    if request.method == "POST":
        values = settings_form.submitted(request.form)
        changes, errors = settings_form.parse(request.form, current)
        if not errors:
            try:
                if request.form.get("action") == "preview":
                    preview = scores.level_changes(settings_service.candidate(changes))
                else:
                    settings_service.update(changes, actor_id=current_user.id)
            except ValidationError as exc:
                errors = settings_form.field_errors(exc.details)
            else:
                if preview is None:
                    flash(f"Settings saved as version {settings_service.current_version()}.", "success")
                    return redirect(url_for("admin.settings"))
        status = 422 if errors else 200
    tested = settings_form.test_url(request.args.get("test_url"), current)
    return render_template("web/admin/settings.html", values=values, errors=errors,
                           days=settings_service.DAYS, history=settings_form.history(), preview=preview,
                           tested=tested, weight_keys=settings_form.weight_keys(current),
                           feedback=alert_inbox.feedback(10)), status
