"""The page a password-reset link opens: a new password, set once (abm.services.user_admin)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from abm.services import user_admin
from abm.services.users import UserError

bp = Blueprint("reset", __name__)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def form(token: str):
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # the token stays out of logs elsewhere
    try:
        user = user_admin.user_for_reset(token)
    except UserError as exc:
        return render_template("web/reset.html", error=str(exc), user=None), 400, headers
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        password = request.form.get("password") or ""
        if password != (request.form.get("confirm") or ""):
            errors["confirm"] = ["the two passwords differ"]
        else:
            try:
                user_admin.reset_password(token, password)
            except UserError as exc:
                errors["password"] = [str(exc)]
            else:
                flash("Your password is set. Log in with it.", "success")
                return redirect(url_for("web.login"))
    return render_template("web/reset.html", user=user, errors=errors, error=None), 422 if errors else 200, headers
