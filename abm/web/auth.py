"""Logging in and out of the pages.

The login never says which of email or password was wrong, spends the same password
hashing time on an unknown email as on a known one, slows down guessing with growing
delays per account and per client address (:mod:`abm.web.login_throttle`), and follows
``next`` only to a path on this site.
"""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from abm.auth import hash_password, verify_password
from abm.models import User
from abm.services import users as users_service
from abm.services.users import end_sessions
from abm.web import login_throttle
from abm.web._access import init_layout, safe_next

bp = Blueprint("web", __name__)
log = logging.getLogger(__name__)

BAD_LOGIN = "That email and password do not match an active account. Check both and try again."

_dummy_hash: str | None = None


def init_app(app) -> None:
    init_layout(app)

    @app.after_request
    def _page_headers(response):
        """Headers every HTML page gets (a view may set its own, stricter ones)."""
        if response.mimetype == "text/html":
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def _check(email: str, password: str) -> User | None:
    global _dummy_hash
    user = users_service.by_email(email)
    if user is None or not user.password_hash:
        # Same hashing work as a real check, so timing does not tell which emails exist.
        if _dummy_hash is None:
            _dummy_hash = hash_password("not-a-real-password")
        verify_password(User(password_hash=_dummy_hash), password)
        return None
    if not verify_password(user, password) or not user.active:
        return None
    return user


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    return f"about {minutes} minute{'s' if minutes != 1 else ''}"


def _landing() -> str:
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_url or _landing())
    email = ""
    error = None
    status = 200
    headers = {}
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        wait = login_throttle.attempt(email) if email and password else 0
        if wait:
            error = f"Too many failed attempts. Wait {_duration(wait)} and try again."
            status, headers = 429, {"Retry-After": str(wait)}
        elif not email or not password:
            error = "Enter your email and your password."
            status = 400
        else:
            user = _check(email, password)
            if user is None:
                error, status = BAD_LOGIN, 401
            else:
                login_throttle.succeeded(email)
                login_user(user, remember=bool(request.form.get("remember")))
                response = redirect(next_url or _landing())
                login_throttle.remember_device(response, email)
                return response
    return render_template("web/login.html", email=email, error=error, next_url=next_url), status, headers


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        end_sessions(current_user._get_current_object(), "logout", actor_id=current_user.id)
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("web.login"))
