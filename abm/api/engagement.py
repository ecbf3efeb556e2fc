"""Engagement over the API: the events batch, an account's score breakdown and timeline."""

from __future__ import annotations

import io

from flask import jsonify, request

from abm.api import bp
from abm.api._openapi import MANAGERS, operation, register_schema
from abm.errors import ApiError
from abm.services import accounts, ad_reports, scores
from abm.services import events as events_service
from abm.services import settings as settings_service
from abm.services import timeline as timeline_service

MAX_EVENTS = 1000

EVENT = register_schema("Event", {
    "type": "object",
    "description": "One engagement event; each is checked on its own and rejected by index.",
    "properties": {
        "type": {"type": "string", "examples": ["form_fill"]},
        "occurred_at": {"type": "string", "format": "date-time"},
        "email": {"type": "string"}, "account_domain": {"type": "string"}, "account_id": {"type": "integer"},
        "contact_id": {"type": "integer"}, "touch_id": {"type": "integer"}, "url": {"type": "string"},
        "source": {"type": "string"}, "dedup_key": {"type": "string"}, "visitor_id": {"type": "string"},
        "quantity": {"type": "integer", "minimum": 1}, "properties": {"type": "object"},
    },
})
EVENTS_BODY = {"oneOf": [
    {"type": "array", "maxItems": MAX_EVENTS, "items": {}},
    {"type": "object", "required": ["events"], "additionalProperties": False,
     "properties": {"events": {"type": "array", "maxItems": MAX_EVENTS, "items": {}}}},
]}
ACCEPTED = register_schema("EventsAccepted", {
    "type": "object", "required": ["accepted", "rejected"],
    "properties": {"accepted": {"type": "integer"},
                   "rejected": {"type": "array", "items": {"type": "object", "properties": {
                       "index": {"type": "integer"}, "message": {"type": "string"}}}}}})
BREAKDOWN = register_schema("EngagementBreakdown", {"type": "object", "properties": {
    "score": {"type": "number"}, "engagement": {"enum": ["cold", "warm", "hot"]},
    "active": {"type": "number", "description": "points from active engagement (clicks, visits, forms, replies, meetings)"},
    "passive": {"type": "number", "description": "points from passive exposure (heat.passive_types)"},
    "driven_by": {"enum": ["active", "passive", None], "description": "what made the score: passive when half or more"},
    "by_type": {"type": "array"}, "by_contact": {"type": "array"}, "by_playbook": {"type": "array"},
    "by_topic": {"type": "array", "description": "intent by topic: events, points, strongest strength (0 to 100), "
                                                 "latest signal", "items": {"type": "object", "properties": {
                     "topic": {"type": "string"}, "events": {"type": "integer"}, "points": {"type": "number"},
                     "strength": {"type": ["number", "null"]}, "last": {"type": "string"}}}},
    "events": {"type": "array", "description": "the latest events; an intent event's `intent` has its topic, "
                                               "strength and provider"}}})
TIMELINE = register_schema("Timeline", {"type": "object", "properties": {"items": {"type": "array", "items": {
    "type": "object", "properties": {"kind": {"enum": ["touch", "event", "stage"]},
                                     "at": {"type": "string", "format": "date-time"}}}}}})


@bp.post("/events")
@operation("Send a batch of up to 1,000 engagement events", roles=MANAGERS, tags=["engagement"],
           body=EVENTS_BODY, responses={202: ("Accepted and rejected events, by index", ACCEPTED)})
def post_events(body):
    items = body.get("events") if isinstance(body, dict) else body
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


@bp.get("/accounts/<int:account_id>/engagement")
@operation("An account's score broken down by event type, by contact, by playbook and by intent topic "
           "(its strength), with its events",
           tags=["engagement"], responses={200: ("The breakdown", BREAKDOWN)})
def account_engagement(account_id: int):
    accounts.get(account_id)
    return jsonify(scores.breakdown(account_id))


@bp.get("/accounts/<int:account_id>/timeline")
@operation("Touches, events and stage changes of an account, newest first", tags=["engagement"],
           query={"limit": {"type": "integer", "minimum": 1, "maximum": 500}},
           responses={200: ("The timeline", TIMELINE)})
def account_timeline(account_id: int, query):
    accounts.get(account_id)
    return jsonify(items=timeline_service.account_timeline(account_id, query.get("limit", 100)))


@bp.post("/imports/ad-engagement")
@operation("Import an ad platform's company engagement report (CSV) as account events", roles=MANAGERS,
           tags=["engagement"], query={"source": {"type": "string", "description": "default: linkedin"}},
           request_body={"required": True, "content": {"text/csv": {"schema": {"type": "string"}},
                                                       "multipart/form-data": {"schema": {"type": "object",
                                                           "properties": {"file": {"type": "string",
                                                                                   "format": "binary"}}}}}},
           responses={200: ("Rows read, events stored, errors by row and column", {"type": "object"})})
def import_ad_engagement(query):


    upload = request.files.get("file")
    stream = upload.stream if upload else io.BytesIO(request.get_data())
    result = ad_reports.import_report(stream, source=query.get("source") or "linkedin")
    if result.rows == 0 and result.errors:
        raise ApiError(422, result.errors[0]["message"], [{"path": "(body)", "message": result.errors[0]["message"]}])
    return jsonify(result.as_dict())
