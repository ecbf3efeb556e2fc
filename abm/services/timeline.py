"""An account's timeline: its touches, engagement events and stage changes in one list, newest first.

Read by the account page (``abm/web/engagement.py``) and the API (``GET /accounts/{id}/timeline``).
"""

from __future__ import annotations

from sqlalchemy import select

from abm.db import db
from abm.models import Contact, Event, Playbook, StageChange, Touch


def account_timeline(account_id: int, limit: int = 100) -> list[dict]:
    """Touches, events and stage changes of one account, newest first."""
    items = []
    for t in db.session.execute(select(Touch).where(Touch.account_id == account_id)
                                .order_by(Touch.created_at.desc()).limit(limit)).scalars():
        items.append({"kind": "touch", "at": (t.sent_at or t.due_at or t.created_at).isoformat(),
                      "id": t.id, "channel": t.channel, "step": t.step_id, "status": t.status,
                      "playbook_id": t.playbook_id, "contact_id": t.contact_id, "error": t.error,
                      "subject": (t.payload or {}).get("subject")})
    for e in db.session.execute(select(Event).where(Event.account_id == account_id)
                                .order_by(Event.occurred_at.desc()).limit(limit)).scalars():
        items.append({"kind": "event", "at": e.occurred_at.isoformat(), "id": e.id, "type": e.type,
                      "contact_id": e.contact_id, "url": e.url, "source": e.source})
    for s in db.session.execute(select(StageChange).where(StageChange.account_id == account_id)
                                .order_by(StageChange.changed_at.desc()).limit(limit)).scalars():
        items.append({"kind": "stage", "at": s.changed_at.isoformat(), "id": s.id, "from": s.from_stage,
                      "to": s.to_stage, "source": s.source})
    items.sort(key=lambda x: x["at"], reverse=True)
    return items[:limit]


def contacts_and_playbooks(ids_of_contacts, ids_of_playbooks) -> tuple[dict, dict]:
    """The contacts and playbooks a timeline names, by id, for their names on the page."""
    def by_id(model, ids) -> dict:
        ids = {i for i in ids if i}
        if not ids:
            return {}
        return {row.id: row for row in db.session.execute(select(model).where(model.id.in_(ids))).scalars()}

    return by_id(Contact, ids_of_contacts), by_id(Playbook, ids_of_playbooks)
