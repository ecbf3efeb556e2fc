"""Unsubscribe links: who a token names, and a person's unsubscribe recorded once.

The unsubscribe page and RFC 8058's one-click POST (``abm/web/tracking.py``) parse the
request and call these; the contact row is written here, and the ``unsubscribe`` event
pushed for the scores and the timeline.
"""

from __future__ import annotations

from abm import tracking
from abm.db import db, utcnow
from abm.models import Contact
from abm.services import events

#: What a token names when it was sent to an account's owner (an internal notification), not a contact.
OWNER = "owner"


def recipient(token: str) -> Contact | str | None:
    """The contact an unsubscribe token names; :data:`OWNER` for an internal notification; None when invalid."""
    contact_id = tracking.read_unsubscribe(token)
    if isinstance(contact_id, str):
        return OWNER
    return db.session.get(Contact, contact_id) if contact_id else None


def unsubscribe(contact: Contact, source: str) -> bool:
    """Record that ``contact`` asked to get no more email (``source``: page or one-click); False when it had
    already."""
    if contact.unsubscribed_at is not None:
        return False
    contact.unsubscribed_at = utcnow()
    db.session.commit()
    events.push([{"type": "unsubscribe", "occurred_at": utcnow().isoformat(), "contact_id": contact.id,
                  "source": source}])
    return True
