"""Users and their tokens."""

from __future__ import annotations

from sqlalchemy import select

from abm.auth import hash_password
from abm.db import db
from abm.models import ROLES, AuditLog, User


class UserError(ValueError):
    pass


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def create_user(email: str, role: str, password: str | None, name: str = "", actor_id: int | None = None) -> User:
    email = normalise_email(email)
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise UserError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if password is not None and len(password) < 8:
        raise UserError("the password must have at least 8 characters")
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


def save_preference(user: User, key: str, value) -> None:
    """Keep one of the user's own choices (``preferences[key]``)."""
    user.preferences = {**(user.preferences or {}), key: value}
    db.session.commit()
