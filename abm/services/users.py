"""Users and their tokens."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from abm.auth import hash_password
from abm.db import db, utcnow
from abm.models import ROLES, Account, ApiToken, AuditLog, User
from abm.services import paging
from abm.services.paging import SortKey
from abm.services.transactions import rolls_back_on_error

MIN_PASSWORD = 8


class UserError(ValueError):
    pass


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


@rolls_back_on_error
def create_user(email: str, role: str, password: str | None, name: str = "", actor_id: int | None = None) -> User:
    email = normalise_email(email)
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise UserError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    if db.session.execute(select(User.id).where(User.email == email)).first():
        raise UserError(f"a user with email {email} exists already")
    user = User(email=email, role=role, name=name or email.split("@")[0],
                password_hash=hash_password(password) if password else None)
    db.session.add(user)
    db.session.flush()
    db.session.add(AuditLog(actor_id=actor_id, action="user.create", target_type="user",
                            target_id=str(user.id), details={"email": email, "role": role}))
    db.session.commit()
    return user


def end_sessions(user: User, reason: str, actor_id: int | None = None, revoke_tokens: bool = False) -> None:
    """End every session of ``user``: each session and remember-me cookie issued before
    stops working at its next request (they carry ``session_version``; see abm.auth).

    Called on logout, on a password change and on deactivation. API tokens are separate
    credentials an admin issued to programs, so a logout or a new password leaves them
    working; ``revoke_tokens=True`` (deactivation, a suspected compromise) revokes them
    too, for good, so that a reactivated user does not bring old tokens back. Commits.
    """
    db.session.execute(update(User).where(User.id == user.id)
                       .values(session_version=User.session_version + 1))  # atomic: no lost bump
    revoked = 0
    if revoke_tokens:
        revoked = db.session.execute(update(ApiToken).where(ApiToken.user_id == user.id,
                                                            ApiToken.revoked_at.is_(None))
                                     .values(revoked_at=utcnow())).rowcount
    db.session.add(AuditLog(actor_id=actor_id, action="user.sessions_ended", target_type="user",
                            target_id=str(user.id), details={"reason": reason, "tokens_revoked": revoked}))
    db.session.commit()
    db.session.refresh(user)


def change_password(user: User, password: str, actor_id: int | None = None) -> None:
    """Set a new password and end every session of the user (commits)."""
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    user.password_hash = hash_password(password)
    db.session.add(AuditLog(actor_id=actor_id, action="user.password", target_type="user", target_id=str(user.id),
                            details={}))
    end_sessions(user, "password changed", actor_id=actor_id)


def save_preference(user: User, key: str, value) -> None:
    """Keep one of the user's own choices (``preferences[key]``)."""
    user.preferences = {**(user.preferences or {}), key: value}
    db.session.commit()


# -- reading --------------------------------------------------------------------------


def find(ref: str) -> User | None:
    """The user a page names by id or by email."""
    ref = (ref or "").strip()
    if ref.isdigit():
        return db.session.get(User, int(ref))
    return by_email(ref)


def get(user_id: int) -> User | None:
    """The user with this id; None when there is none (or the number cannot be an id)."""
    return db.session.get(User, user_id) if 0 < user_id < 2**31 else None


def by_email(email: str) -> User | None:
    return db.session.execute(select(User).where(User.email == normalise_email(email))).scalar_one_or_none()


def active() -> list[User]:
    """Users who may log in, by email (the owners a manager picks from)."""
    return list(db.session.execute(select(User).where(User.active.is_(True)).order_by(User.email)).scalars())


def emails_by_id(ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())


def with_tokens() -> list[User]:
    """Every user with their API tokens loaded, by email (the admin's users page)."""
    return list(db.session.execute(select(User).options(selectinload(User.tokens)).order_by(User.email)).scalars())


def accounts_owned() -> dict[int, int]:
    """How many accounts each user owns, by user id (owners of none are left out)."""
    return dict(db.session.execute(select(Account.owner_id, func.count()).where(Account.owner_id.is_not(None))
                                   .group_by(Account.owner_id)).all())


def page(cursor: str | None, limit: int) -> tuple[list[User], str | None]:
    """One page of users by id (the API's list)."""
    return paging.page(select(User), [SortKey(User.id)], "users", cursor, limit)
