"""Segments over the API: saved, named account audiences, their live counts and members."""

from __future__ import annotations

from flask import Response, jsonify

from abm.api import bp
from abm.api._openapi import ANY, MANAGERS, PAGE_QUERY, operation, page_of, register_schema
from abm.auth import api_user
from abm.services import segments as service

SEGMENT = register_schema("Segment", {"type": "object", "properties": {
    "name": {"type": "string"}, "description": {"type": ["string", "null"]},
    "condition": {"type": "string", "description": "the condition as written (YAML)"},
    "summary": {"type": "string"}, "count": {"type": ["integer", "null"]},
    "updated_at": {"type": ["string", "null"]}}})
MEMBER = register_schema("SegmentMember", {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "domain": {"type": "string"},
    "tier": {"type": ["integer", "null"]}, "stage": {"type": ["string", "null"]},
    "reasons": {"type": "array", "items": {"type": "string"}}}})
SAVE_BODY = {"type": "object", "required": ["name", "condition"], "additionalProperties": False, "properties": {
    "name": {"type": "string", "maxLength": 100},
    "condition": {"type": "string", "maxLength": 65536,
                  "description": "the condition in the playbook condition language, as YAML"},
    "description": {"type": "string", "maxLength": 2000}}}


@bp.get("/segments")
@operation("Segments, each with its live count", roles=ANY,
           responses={200: ("Every segment", {"type": "object", "properties": {
               "items": {"type": "array", "items": SEGMENT}}})})
def list_segments():
    return jsonify(items=service.listing())


@bp.post("/segments")
@operation("Save a segment (create, or change its condition)", roles=MANAGERS, body=SAVE_BODY,
           responses={201: ("Created", SEGMENT), 200: ("Changed", SEGMENT)})
def save_segment(body):
    row, created = service.save(body["name"], body["condition"], body.get("description"), api_user().id)
    return jsonify(service.serialize(row, service.count(row))), 201 if created else 200


@bp.get("/segments/<name>")
@operation("A segment with its live count", roles=ANY, responses={200: ("The segment", SEGMENT)})
def get_segment(name):
    row = service.get(name)
    return jsonify(service.serialize(row, service.count(row)))


@bp.delete("/segments/<name>")
@operation("Delete a segment (playbooks that used it keep the condition they were applied with)",
           roles=MANAGERS, responses={204: "Deleted"})
def delete_segment(name):
    service.delete(name)
    return Response(status=204)


@bp.get("/segments/<name>/members")
@operation("The segment's accounts, each with the parts of the condition it meets", roles=ANY,
           query=PAGE_QUERY, responses={200: ("One page of members", page_of(MEMBER))})
def segment_members(name, query):
    items, cursor = service.members(name, query.get("cursor"), query.get("limit", 50))
    return jsonify(items=items, next_cursor=cursor)


@bp.get("/segments/<name>/members.csv")
@operation("The segment's accounts as CSV (id, name, domain, tier, stage, reason)", roles=ANY,
           responses={200: ("CSV", {"type": "string"})})
def segment_members_csv(name):
    return Response(service.export_csv(name), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="segment-{name}.csv"'})
