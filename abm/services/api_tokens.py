"""API tokens: issued to a user by an admin (the admin page or ``POST /users/{id}/tokens``)
and revoked. Only a token's hash is stored; the plain token is in the answer that issues it."""

from __future__ import annotations

from sqlalchemy import select

from abm.auth import hash_token, issue_token
from abm.db import db, utcnow
from abm.models import ApiToken, AuditLog, User


def get(token_id: int) -> ApiToken | None:
    return db.session.get(ApiToken, token_id) if 0 < token_id < 2**31 else None


def issue(user: User, name: str, actor_id: int, action: str = "token.issue") -> tuple[ApiToken, str]:
    """A new token for ``user``, audited as ``action`` by ``actor_id``, committed: (row, plain token)."""
    token = issue_token(user, name)
    db.session.flush()
    row = db.session.execute(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).scalar_one()
    db.session.add(AuditLog(actor_id=actor_id, action=action, target_type="user", target_id=str(user.id),
                            details={"name": name, "token_id": row.id, "prefix": row.prefix}))
    db.session.commit()
    return row, token


def revoke(token: ApiToken, actor_id: int) -> bool:
    """Revoke ``token`` (audited, committed); False when it was revoked already."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    db.session.add(AuditLog(actor_id=actor_id, action="token.revoke", target_type="user",
                            target_id=str(token.user_id), details={"token": token.prefix}))
    db.session.commit()
    return True
