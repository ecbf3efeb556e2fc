"""Who is asking: sessions for pages (Flask-Login), bearer tokens for the API, roles.

Passwords are hashed with werkzeug's scrypt; API tokens are random, shown once, and
stored as SHA-256 hashes. CSRF protects every form (Flask-WTF); the tracking endpoints
and the provider webhooks are exempt. The API takes bearer tokens; it also takes the
pages' session, for the pages' own scripts, but then a write (POST, PUT, PATCH, DELETE)
must carry the session's CSRF token in an ``X-CSRFToken`` header (``api_user``), so a
form on another site cannot use an admin's cookie (see docs/security.md).
"""

from __future__ import annotations

import hashlib
import secrets
from functools import wraps

from flask import current_app, request
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect, validate_csrf
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms.validators import ValidationError as CsrfInvalid

from abm.db import db, utcnow
from abm.errors import ApiError
from abm.models import ApiToken, User

login_manager = LoginManager()
csrf = CSRFProtect()

TOKEN_PREFIX = "abm_"


def init_app(app) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "web.login"
    login_manager.login_message = "Please log in to see that page."
    csrf.init_app(app)

    @login_manager.user_loader
    def _load(session_id: str):
        return user_for_session(session_id)


def user_for_session(session_id: str) -> User | None:
    """The active user a session or remember-me cookie names (``"<id>:<version>"``, see
    ``User.get_id``); None when the version is not the user's current one, i.e. the
    user logged out, changed their password or was deactivated since."""
    user_id, _, version = str(session_id).partition(":")
    if not (user_id.isdigit() and version.isdigit()):
        return None  # a cookie from before session versions, or a forged one
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def verify_password(user: User, password: str) -> bool:
    return bool(user.password_hash) and check_password_hash(user.password_hash, password)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(user: User, name: str = "") -> str:
    """Create an API token for ``user``; returns the plain token, which is never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, name=name, token_hash=hash_token(token), prefix=token[:12]))
    return token


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header; None without one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def user_from_bearer() -> User | None:
    token = bearer_token()
    if token is None:
        return None
    row = db.session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None or not row.user.active:
        return None
    row.last_used_at = utcnow()
    db.session.commit()
    return row.user


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="abm"'})


def check_csrf_header() -> None:
    """A write that rides on the pages' session must carry the session's CSRF token in a
    header (Flask-WTF's ``WTF_CSRF_HEADERS``: ``X-CSRFToken``). Another site's form can
    send the cookie but cannot read the token, nor set a header without a CORS preflight.
    Checked whatever ``WTF_CSRF_ENABLED`` says: that switch is for the pages' forms."""
    if request.method not in current_app.config["WTF_CSRF_METHODS"]:
        return
    token = next((request.headers[h] for h in current_app.config["WTF_CSRF_HEADERS"] if request.headers.get(h)),
                 None)
    try:
        validate_csrf(token)
    except CsrfInvalid as exc:
        raise ApiError(403, f"a write with the pages' session needs the page's CSRF token in an X-CSRFToken "
                            f"header ({exc.args[0]}); programs send 'Authorization: Bearer <token>'") from None


def api_user() -> User:
    """The user behind an API request: a bearer token, or a logged-in page session whose
    writes carry the CSRF header. A bad token is a 401 even with a session beside it."""
    cache = request.environ  # per request (an app context may outlive one in tests)
    if "abm.api_user" not in cache:
        user = user_from_bearer()
        if user is None and bearer_token() is not None:
            raise _unauthorized("the bearer token is unknown, revoked, or its user is deactivated")
        if user is None and current_user.is_authenticated:
            check_csrf_header()
            user = current_user._get_current_object()
        cache["abm.api_user"] = user
    if cache["abm.api_user"] is None:
        raise _unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    return cache["abm.api_user"]


def require_role(*roles: str):
    """API decorator: 401 without a user, 403 when the user's role is not in ``roles``."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            user = api_user()
            if roles and user.role not in roles:
                raise ApiError(403, f"your role ({user.role}) may not do this; it needs: {', '.join(roles)}")
            return view(*args, **kwargs)

        wrapped.required_roles = roles
        return wrapped

    return decorator
