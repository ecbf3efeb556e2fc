"""Running the workspace's users: change a role, deactivate and reactivate, send a
password-reset link, delete with the owned accounts handed to someone else.

Every change is written to the audit log with who made it. The workspace always keeps
one active admin: the last one cannot be demoted, deactivated or deleted (nor can an
admin do any of that to themselves, so nobody locks themselves out by a slip).

A password-reset link carries a token signed with the app's secret (itsdangerous),
which names the user and a fingerprint of their password hash and session version: it
expires after ``PASSWORD_RESET_HOURS`` and works once (setting the password changes the
fingerprint; so does a deactivation, which also ends the sessions). The link is made by
the worker that emails it, through the workspace's email connector, so it never waits
in Redis.
"""

from __future__ import annotations

import hashlib
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update

from abm.db import db
from abm.models import ROLES, Account, Alert, AuditLog, User
from abm.services.transactions import rolls_back_on_error
from abm.services.users import UserError, change_password, end_sessions, normalise_email
from workers import enqueue

PASSWORD_RESET_HOURS = 24
_SALT = "abm-password-reset"


def find(email_or_id: str) -> User:
    """A user by id or email; UserError when there is none."""
    key = (email_or_id or "").strip()
    user = db.session.get(User, int(key)) if key.isdigit() and int(key) < 2**31 else db.session.scalar(
        select(User).where(User.email == normalise_email(key)))
    if user is None:
        raise UserError(f"no user {email_or_id!r}")
    return user


def _audit(action: str, user: User, actor_id: int | None, **details) -> None:
    db.session.add(AuditLog(actor_id=actor_id, action=action, target_type="user", target_id=str(user.id),
                            details={"email": user.email, **details}))


def _keep_an_admin(user: User, actor_id: int | None, what: str) -> None:
    if actor_id is not None and user.id == actor_id:
        raise UserError(f"you cannot {what} yourself; ask another admin")
    if user.role == "admin" and user.active:
        admins = db.session.scalar(select(func.count()).where(User.role == "admin", User.active.is_(True)))
        if admins <= 1:
            raise UserError(f"{user.email} is the last active admin; make someone else admin first")


@rolls_back_on_error
def change_role(user: User, role: str, actor_id: int | None = None) -> User:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == user.role:
        return user
    if user.role == "admin":
        _keep_an_admin(user, actor_id, "demote")
    _audit("user.role", user, actor_id, before=user.role, after=role)
    user.role = role
    db.session.commit()
    return user


def valid_timezone(name: str | None) -> str | None:
    """An IANA zone name as given (None when empty: the workspace's send-window zone); UserError otherwise."""
    name = (name or "").strip()
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris, "
                        "or leave it empty for the workspace's zone") from None
    if name not in available_timezones() and name != "UTC":
        raise UserError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris, "
                        "or leave it empty for the workspace's zone")
    return name


@rolls_back_on_error
def set_timezone(user: User, name: str | None, actor_id: int | None = None) -> User:
    """The user's time zone (their weekly digest goes on their Monday morning there);
    empty means the workspace's send-window zone."""
    zone = valid_timezone(name)
    if zone == user.timezone:
        return user
    _audit("user.timezone", user, actor_id, before=user.timezone, after=zone)
    user.timezone = zone
    db.session.commit()
    return user


@rolls_back_on_error
def deactivate(user: User, actor_id: int | None = None) -> User:
    """The user can no longer log in; their sessions end and their API tokens are revoked."""
    if not user.active:
        return user
    _keep_an_admin(user, actor_id, "deactivate")
    user.active = False
    _audit("user.deactivate", user, actor_id)
    end_sessions(user, "deactivated", actor_id=actor_id, revoke_tokens=True)  # commits
    return user


@rolls_back_on_error
def reactivate(user: User, actor_id: int | None = None) -> User:
    """The user may log in again (with a new login; old sessions and tokens stay ended)."""
    if user.active:
        return user
    user.active = True
    _audit("user.reactivate", user, actor_id)
    db.session.commit()
    return user


@rolls_back_on_error
def delete(user: User, reassign_to: User | None, actor_id: int | None = None) -> int:
    """Delete ``user``; their accounts (and their alerts still to act on) go to
    ``reassign_to``, required when they own any. Returns the accounts moved."""
    _keep_an_admin(user, actor_id, "delete")
    owned = db.session.scalar(select(func.count()).where(Account.owner_id == user.id))
    if owned and reassign_to is None:
        raise UserError(f"{user.email} owns {owned} account(s): pick who takes them over")
    if reassign_to is not None and (reassign_to.id == user.id or not reassign_to.active):
        raise UserError("the accounts must go to another, active user")
    if reassign_to is not None:
        db.session.execute(update(Account).where(Account.owner_id == user.id)
                           .values(owner_id=reassign_to.id).execution_options(synchronize_session=False))
        db.session.execute(update(Alert).where(Alert.user_id == user.id, Alert.dismissed_at.is_(None),
                                               Alert.acknowledged_at.is_(None))
                           .values(user_id=reassign_to.id).execution_options(synchronize_session=False))
    _audit("user.delete", user, actor_id, accounts=owned, to=reassign_to.email if reassign_to else None)
    db.session.delete(user)
    db.session.commit()
    return owned


# -- password reset -------------------------------------------------------------------

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _fingerprint(user: User) -> str:
    seed = f"{user.password_hash or '-'}|{user.session_version}|{user.active}"
    return hashlib.sha256(seed.encode()).hexdigest()[:24]


def reset_token(user: User) -> str:
    return _serializer().dumps([user.id, _fingerprint(user)])


def reset_link(user: User) -> str:
    """The absolute link to the reset page (made by the worker that sends it)."""
    path = current_app.url_map.bind("localhost").build("reset.form", {"token": reset_token(user)})  # no request here
    return current_app.config.get("BASE_URL", "").rstrip("/") + path


def user_for_reset(token: str) -> User:
    """The user a reset token is for, if it is genuine, unexpired and unused; UserError otherwise."""
    try:
        user_id, fingerprint = _serializer().loads(token, max_age=PASSWORD_RESET_HOURS * 3600)
    except SignatureExpired:
        raise UserError(f"this link has expired (links work for {PASSWORD_RESET_HOURS} hours); "
                        "ask an admin for a new one") from None
    except (BadSignature, ValueError, TypeError):
        raise UserError("this link is not a valid password-reset link") from None
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.active or fingerprint != _fingerprint(user):
        raise UserError("this link has been used already or is no longer valid; ask an admin for a new one")
    return user


@rolls_back_on_error
def reset_password(token: str, password: str) -> User:
    """Set the password a reset link is for (once); ends every session of the user."""
    user = user_for_reset(token)
    change_password(user, password)
    _audit("user.password_reset", user, None)
    db.session.commit()
    return user


@rolls_back_on_error
def send_reset_link(user: User, actor_id: int | None = None) -> str:
    """Queue the email with a reset link to ``user`` (the worker makes the link); the job id."""
    if not user.active:
        raise UserError(f"{user.email} is deactivated: reactivate them first")
    _audit("user.reset_link", user, actor_id)
    db.session.commit()
    return enqueue.password_reset(user.id)
