"""Engagement over the API: the events batch, an account's score breakdown and timeline."""

from __future__ import annotations

from flask import jsonify, request
from sqlalchemy import select

from abm.api import bp
from abm.auth import require_role
from abm.db import db
from abm.errors import ApiError, NotFound
from abm.models import Account, Event, StageChange, Touch
from abm.services import events as events_service
from abm.services import scores
from abm.services import settings as settings_service

MAX_EVENTS = 1000


@bp.post("/events")
@require_role("admin", "manager")
def post_events():
    body = request.get_json(silent=True)
    items = body.get("events") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ApiError(422, "the body must be a JSON array of events (or {\"events\": [...]})",
                       [{"path": "(body)", "message": "expected an array"}])
    if len(items) > MAX_EVENTS:
        raise ApiError(422, f"at most {MAX_EVENTS} events per request; this one has {len(items)}",
                       [{"path": "(body)", "message": f"{len(items)} events"}])
    allowed = set(settings_service.current()["weights"]) | {"email_delivered", "email_bounce", "unsubscribe"}
    accepted, rejected = [], []
    for index, raw in enumerate(items):
        try:
            event = events_service.validate(raw, allowed)
        except events_service.EventError as exc:
            rejected.append({"index": index, "message": str(exc)})
            continue
        event.setdefault("source", "api")
        accepted.append(event)
    events_service.push(accepted)
    return jsonify(accepted=len(accepted), rejected=rejected), 202


def _account(account_id: int) -> Account:
    account = db.session.get(Account, account_id)
    if account is None:
        raise NotFound("account")
    return account


@bp.get("/accounts/<int:account_id>/engagement")
@require_role()
def account_engagement(account_id: int):
    _account(account_id)
    return jsonify(scores.breakdown(account_id))


@bp.get("/accounts/<int:account_id>/timeline")
@require_role()
def account_timeline(account_id: int):
    _account(account_id)
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 500)
    except ValueError:
        raise ApiError(422, "limit must be a number", [{"path": "limit", "message": "not a number"}]) from None
    return jsonify(items=timeline(account_id, limit))


def timeline(account_id: int, limit: int = 100) -> list[dict]:
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
