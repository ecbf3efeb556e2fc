"""Logging in and out of the pages.

The login never says which of email or password was wrong, spends the same password
hashing time on an unknown email as on a known one, slows down guessing with a light
Redis counter of failures (per client address and per email), and follows ``next``
only to a path on this site.
"""

from __future__ import annotations

import hashlib
import logging

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from abm.auth import hash_password, verify_password
from abm.db import db
from abm.models import User
from abm.services.users import end_sessions
from abm.web._access import init_layout, safe_next

bp = Blueprint("web", __name__)
log = logging.getLogger(__name__)

#: Failures allowed per window for one email, and from one client address (which may be
#: a whole office behind one NAT, hence more); config LOGIN_MAX_FAILURES,
#: LOGIN_MAX_FAILURES_PER_IP and LOGIN_FAILURE_WINDOW (seconds) override them.
MAX_FAILURES = 10
MAX_FAILURES_PER_IP = 50
WINDOW_SECONDS = 15 * 60
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


def _limits(email: str) -> list[tuple[str, int]]:
    """(Redis key, allowed failures) for the client address and for the email."""
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    cfg = current_app.config
    return [(f"abm:web:login-fail:ip:{request.remote_addr or '-'}",
             cfg.get("LOGIN_MAX_FAILURES_PER_IP", MAX_FAILURES_PER_IP)),
            (f"abm:web:login-fail:email:{digest}", cfg.get("LOGIN_MAX_FAILURES", MAX_FAILURES))]


def _redis():
    from abm.redis_conn import get_redis

    return get_redis()


def _blocked_for(email: str) -> int:
    """Seconds until this client or email may try again; 0 when it may now."""
    try:
        r = _redis()
        for key, limit in _limits(email):
            count = int(r.get(key) or 0)
            if count >= limit:
                return max(int(r.ttl(key)), 1)
    except Exception:  # noqa: BLE001 - a Redis outage must not lock everyone out
        log.warning("login rate limit unavailable (Redis); allowing the attempt")
    return 0


def _record_failure(email: str) -> None:
    window = current_app.config.get("LOGIN_FAILURE_WINDOW", WINDOW_SECONDS)
    try:
        pipe = _redis().pipeline()
        for key, _limit in _limits(email):
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        pipe.execute()
    except Exception:  # noqa: BLE001
        log.warning("could not record a failed login (Redis)")


def _clear_failures(email: str) -> None:
    try:
        _redis().delete(_limits(email)[1][0])
    except Exception:  # noqa: BLE001
        pass


def _check(email: str, password: str) -> User | None:
    global _dummy_hash
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if user is None or not user.password_hash:
        # Same hashing work as a real check, so timing does not tell which emails exist.
        if _dummy_hash is None:
            _dummy_hash = hash_password("not-a-real-password")
        verify_password(User(password_hash=_dummy_hash), password)
        return None
    if not verify_password(user, password) or not user.active:
        return None
    return user


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
        wait = _blocked_for(email)
        if wait:
            minutes = max(1, round(wait / 60))
            error = f"Too many failed attempts. Wait about {minutes} minute{'s' if minutes > 1 else ''} and try again."
            status, headers = 429, {"Retry-After": str(wait)}
        elif not email or not password:
            error = "Enter your email and your password."
            status = 400
        else:
            user = _check(email, password)
            if user is None:
                _record_failure(email)
                error, status = BAD_LOGIN, 401
            else:
                _clear_failures(email)
                login_user(user, remember=bool(request.form.get("remember")))
                return redirect(next_url or _landing())
    return render_template("web/login.html", email=email, error=error, next_url=next_url), status, headers


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        end_sessions(current_user._get_current_object(), "logout", actor_id=current_user.id)
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("web.login"))
