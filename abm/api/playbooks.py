"""Playbooks over the API: apply (YAML body), read, validate, plan, the life cycle,
enrollments and touches. AEs may read and plan; applying and the life cycle need a
manager or an admin."""

from __future__ import annotations

from flask import Response, current_app, jsonify, request

from abm.api import bp
from abm.api._openapi import ANY, MANAGERS, PAGE_QUERY, PUBLIC, operation, page_of, register_schema
from abm.auth import api_user
from abm.errors import ApiError
from abm.models import Playbook as PlaybookRow
from abm.services import change_control, playbook_reads, touch_search, variant_results
from abm.services import playbooks as service
from abm.services.validation import column_string
from playbooks import json_schema
from playbooks.loader import MAX_SOURCE_BYTES

#: YAML, or JSON (which YAML reads as it is); never text/plain, which another site's form can send.
YAML_BODY = {"required": True, "content": {
    "application/yaml": {"schema": {"type": "string"}}, "text/yaml": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object"}}}}

PLAYBOOK = register_schema("Playbook", {
    "type": "object", "required": ["key", "name", "status", "version"],
    "properties": {"key": {"type": "string"}, "name": {"type": "string"},
                   "status": {"enum": ["draft", "active", "paused", "archived"]},
                   "product": {"type": ["string", "null"]}, "priority": {"type": "integer"},
                   "version": {"type": "integer"}, "enrollments": {"type": "object"},
                   "versions": {"type": "array"}, "steps": {"type": "array"}},
})
APPLIED = register_schema("PlaybookApplied", {
    "type": "object", "required": ["key", "version", "status"],
    "properties": {"key": {"type": "string"}, "version": {"type": "integer"}, "status": {"type": "string"}}})
LIFE_CYCLE = register_schema("PlaybookLifeCycle", {
    "type": "object", "required": ["key", "status"],
    "properties": {"key": {"type": "string"}, "status": {"type": "string"}}, "additionalProperties": True})
PLAN = register_schema("PlaybookPlan", {"type": "object", "additionalProperties": True, "properties": {
    "entering": {"type": "integer"}, "held_out": {"type": "integer"}, "sample": {"type": "array"},
    "simulated": {"type": "integer", "description": "the entering accounts simulated: all of them, or an evenly "
                                                    "spread 2,000 of a larger audience"},
    "limit": {"type": ["object", "null"], "description": "the limit that cut the simulation short (time, "
              "instants) and where: the step it stopped on, its file and line; null when it finished",
              "properties": {"limit": {"type": "string"}, "value": {"type": "string"},
                             "stopped_at": {"type": "string"}, "file": {"type": "string"},
                             "step": {"type": ["string", "null"]}, "line": {"type": ["integer", "null"]}}},
    "funnel": {"type": "array", "items": {"type": "object", "properties": {
        "label": {"type": "string"}, "kept": {"type": "integer"}}}},
    "steps": {"type": "array"}, "channels": {"type": "object"}, "outcomes": {"type": "object"},
    "schedule": {"type": ["object", "null"]}, "rendered": {"type": "array"}, "warnings": {"type": "array"},
    "assumptions": {"type": "array", "items": {"type": "string"}}}})
MIGRATED = register_schema("PlaybookMigrated", {"type": "object", "properties": {
    "key": {"type": "string"}, "version": {"type": "integer"}, "moved": {"type": "integer"},
    "mapping": {"type": "array", "items": {"type": "object", "properties": {
        "version": {"type": "integer"}, "step": {"type": ["string", "null"]}, "state": {"type": "string"},
        "to": {"type": ["string", "null"]}, "enrollments": {"type": "integer"}}}}}, "additionalProperties": True})
DIFF = register_schema("PlaybookDiff", {"type": "object", "properties": {
    "from": {"type": "integer"}, "to": {"type": "integer"}, "yaml": {"type": "array", "items": {"type": "string"}},
    "settings": {"type": "array", "items": {"type": "string"}},
    "steps": {"type": "object", "properties": {
        "added": {"type": "array"}, "removed": {"type": "array"}, "moved": {"type": "array"},
        "changed": {"type": "array"}}}}})
RESULTS = register_schema("PlaybookResults", {"type": "object", "required": ["key", "steps"], "properties": {
    "key": {"type": "string"}, "version": {"type": "integer"},
    "steps": {"type": "array", "items": {"type": "object", "required": ["id", "statuses", "events"], "properties": {
        "id": {"type": "string"}, "kind": {"type": "string"}, "statuses": {"type": "object"},
        "reasons": {"type": "object"}, "events": {"type": "object"},
        "ab": {"type": ["object", "null"], "properties": {
            "baseline": {"type": "string"}, "method": {"type": "string"},
            "variants": {"type": "array"}, "comparisons": {"type": "array"}}}}}}}})
CLONE_BODY = {"type": "object", "required": ["key"], "additionalProperties": False, "properties": {
    "key": column_string(PlaybookRow.key, minLength=1), "name": column_string(PlaybookRow.name)}}
TEST_SEND_BODY = {"type": "object", "required": ["step", "account"], "additionalProperties": False, "properties": {
    "step": {"type": "string", "maxLength": 100}, "account": {"type": "string", "maxLength": 255},
    "contact": {"type": "string", "maxLength": 320}, "to": {"type": "string", "format": "email", "maxLength": 320},
    "version": {"type": "integer", "minimum": 1}, "variant": {"type": "string", "maxLength": 64}}}
ENROLLMENT = register_schema("Enrollment", {"type": "object", "properties": {
    "id": {"type": "integer"}, "account_id": {"type": "integer"}, "state": {"type": "string"},
    "step": {"type": ["string", "null"]}, "step_index": {"type": "integer"}, "version": {"type": "integer"},
    "next_run_at": {"type": ["string", "null"]}, "exit_reason": {"type": ["string", "null"]}}})
TOUCH = register_schema("Touch", {"type": "object", "properties": {
    "id": {"type": "integer"}, "status": {"type": "string"}, "channel": {"type": "string"},
    "error": {"type": ["string", "null"]}}, "additionalProperties": True})
STATES = ["active", "waiting", "held_out", "completed", "exited"]
STATUSES = ["scheduled", "queued", "sent", "failed", "suppressed", "skipped"]


def _source() -> tuple[str, str]:
    request.max_content_length = MAX_SOURCE_BYTES  # read no more than a playbook may be
    raw = request.get_data(cache=False)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "the body is not UTF-8 text", [{"path": "(body)", "message": "not UTF-8"}]) from None
    if not text.strip():
        raise ApiError(422, "send the playbook's YAML as the body (Content-Type: application/yaml)",
                       [{"path": "(body)", "message": "empty"}])
    return text, request.args.get("filename") or "playbook.yaml"


@bp.post("/playbooks")
@operation("Apply a playbook (YAML body): validates and stores a new version; migrate=true moves the running "
           "enrollments to it by step id (see the mapping first with plan?migrate=true)", roles=MANAGERS,
           request_body=YAML_BODY, query={"filename": {"type": "string", "maxLength": 200},
                                          "migrate": {"type": "boolean"}},
           responses={201: ("The stored version", APPLIED)})
def apply_playbook(query):
    source, filename = _source()
    row, version = service.apply(source, filename, actor_id=api_user().id)
    answer = {"key": row.key, "version": version, "status": row.status}
    if query.get("migrate"):
        moved = service.migrate(row.key)
        answer.update(moved=moved["moved"], mapping=moved["mapping"])
    return jsonify(answer), 201


@bp.post("/playbooks/<key>/migrate")
@operation("Move the running enrollments on older versions to the current one, by step id", roles=MANAGERS,
           responses={200: ("How many moved, and the mapping", MIGRATED)})
def migrate_playbook(key):
    return jsonify(service.migrate(key))


@bp.get("/playbooks/<key>/diff")
@operation("What changed between two versions: the YAML as a unified diff, and the settings and steps added, "
           "removed, changed or moved", roles=ANY,
           query={"from": {"type": "integer", "minimum": 1, "required": True},
                  "to": {"type": "integer", "minimum": 1, "description": "default: the current version"}},
           responses={200: ("The diff", DIFF)})
def diff_playbook(key, query):
    return jsonify(change_control.diff(key, query["from"], query.get("to")))


@bp.get("/playbooks/<key>/results")
@operation("What each step did: touches by status (with the reasons of suppressed, failed and postponed ones) "
           "and by engagement (delivered, opened, clicked, replied, bounced); for an email step with A/B variants, "
           "the same per variant and each variant compared with the first on click and reply rate (difference "
           "with its 95% Newcombe interval)", roles=ANY, responses={200: ("The results", RESULTS)})
def playbook_results(key):
    return jsonify(variant_results.results_of(key))


@bp.post("/playbooks/<key>/clone")
@operation("Store the current version as a new draft playbook under another key", roles=MANAGERS,
           body=CLONE_BODY, responses={201: ("The stored copy", APPLIED), 409: "the new key exists"})
def clone_playbook(key, body):
    row, version = change_control.clone(key, body["key"], body.get("name"), actor_id=api_user().id)
    return jsonify(key=row.key, version=version, status=row.status), 201


@bp.post("/playbooks/<key>/test-send")
@operation("Send a test of an email step to yourself (or to), rendered for a chosen account and contact, "
           "through the step's connector by a worker; it is no touch. A step with A/B variants sends the variant "
           "named, by default the one the contact is assigned", roles=MANAGERS, body=TEST_SEND_BODY,
           idempotent=False, responses={202: ("Queued", {"type": "object"})})
def test_send_playbook(key, body):
    result = change_control.test_send(key, body["step"], body.get("to") or api_user().email, body["account"],
                                      body.get("contact"), body.get("version"), body.get("variant"))
    return jsonify(result), 202


@bp.get("/playbooks")
@operation("List playbooks", roles=ANY, query={**PAGE_QUERY, "status": {"type": "string",
                                                                      "enum": ["draft", "active", "paused",
                                                                               "archived"]}},
           responses={200: ("One page of playbooks", page_of(PLAYBOOK))})
def list_playbooks(query):
    rows, cursor = playbook_reads.page(query.get("status"), query.get("cursor"), query.get("limit", 50))
    return jsonify(items=[service.serialize(r) for r in rows], next_cursor=cursor)


@bp.get("/playbooks/<key>")
@operation("A playbook with its versions and steps", roles=ANY, responses={200: ("The playbook", PLAYBOOK)})
def get_playbook(key):
    return jsonify(service.serialize(service.get(key), with_versions=True))


@bp.get("/playbooks/<key>/source")
@operation("The YAML source of a version (the newest by default)", roles=ANY,
           query={"version": {"type": "integer", "minimum": 1}},
           responses={200: ("The YAML source", {"type": "string"})})
def playbook_source(key, query):
    version = service.source_of(key, query.get("version"))
    return Response(version.source, mimetype="application/yaml",
                    headers={"X-Playbook-Version": str(version.version)})


@bp.get("/playbook-schema.json")
@operation("The JSON Schema of the playbook language (for editors: VS Code's YAML extension)", roles=PUBLIC,
           tags=["meta"], responses={200: ("The JSON Schema", {"type": "object"})})
def playbook_schema():
    return jsonify(json_schema.build(current_app.config["BASE_URL"]))


@bp.post("/playbooks/validate")
@operation("Validate a playbook (YAML body); stores nothing", roles=ANY, request_body=YAML_BODY,
           idempotent=False, query={"filename": {"type": "string", "maxLength": 200}},
           responses={200: ("The playbook is valid", {"type": "object"})})
def validate_playbook():
    source, filename = _source()
    result = service.validate(source, filename)
    if result.errors:
        raise service.PlaybookInvalid(result)
    pb = result.playbook
    return jsonify(valid=True, key=pb.key, steps=len(pb.steps))


@bp.post("/playbooks/plan")
@operation("The dry run of a playbook (YAML body): the engine simulated over the real audience, caps, send "
           "windows and branches; stores and sends nothing", roles=ANY, request_body=YAML_BODY,
           idempotent=False, query={"filename": {"type": "string", "maxLength": 200},
                                    "account": {"type": "string", "maxLength": 255,
                                                "description": "also this account's schedule (id or domain)"},
                                    "contact": {"type": "string", "maxLength": 320,
                                                "description": "also this contact's schedule (email)"},
                                    "migrate": {"type": "boolean", "description": "with the running enrollments "
                                                "moved to this version, and the mapping"}},
           responses={200: ("The plan", PLAN)})
def plan_playbook(query):
    source, filename = _source()
    return jsonify(service.plan(source, filename, account=query.get("account"), contact=query.get("contact"),
                                migrate=bool(query.get("migrate"))))


@bp.post("/playbooks/<key>/activate")
@operation("Activate: enrolls the audience now. A draft whose audience would enroll no account is a 409 "
           "with the audience funnel, unless allow_empty=true", roles=MANAGERS,
           query={"allow_empty": {"type": "boolean"}},
           responses={200: ("The new status", LIFE_CYCLE), 409: "not possible from the current status, or "
                                                               "no account would enter"})
def activate_playbook(key, query):
    return jsonify(service.activate(key, allow_empty=bool(query.get("allow_empty"))))


def _life_cycle(name: str, summary: str):
    def view(key):
        return jsonify(getattr(service, name)(key))

    view.__name__ = f"{name}_playbook"
    bp.post(f"/playbooks/<key>/{name}")(
        operation(summary, roles=MANAGERS, responses={200: ("The new status", LIFE_CYCLE),
                                                      409: "not possible from the current status"})(view))


_life_cycle("pause", "Pause: nothing queued for the playbook is sent")
_life_cycle("resume", "Resume where each enrollment was")
_life_cycle("archive", "Archive: running enrollments exit, unsent touches are skipped")


@bp.get("/playbooks/<key>/enrollments")
@operation("The playbook's enrollments (or those in a state, or those that reached a step: the playbook "
           "page's counts per step)", roles=ANY,
           query={**PAGE_QUERY, "state": {"type": "string", "enum": STATES},
                  "reached": {"type": "string", "maxLength": 100}},
           responses={200: ("One page of enrollments", page_of(ENROLLMENT))})
def playbook_enrollments(key, query):
    row = service.get(key)
    items, cursor = playbook_reads.enrollments_page(row, query.get("state"), query.get("cursor"),
                                                    query.get("limit", 50), reached=query.get("reached"))
    return jsonify(items=items, next_cursor=cursor)


@bp.get("/touches")
@operation("Touches, newest first, with the error where one failed: filtered by playbook, step, channel, status, "
           "account (id), reason (the error text), result (touches that got that engagement), and searched (q: "
           "the account's name or domain, the contact's email)", roles=ANY,
           query={**PAGE_QUERY, "playbook": {"type": "string", "maxLength": 64},
                  "step": {"type": "string", "maxLength": 100},
                  "account_id": {"type": "integer", "minimum": 1},
                  "status": {"type": "string", "enum": STATUSES},
                  "channel": {"type": "string", "enum": ["email", "ads", "alert", "task", "webhook"]},
                  "reason": {"type": "string", "maxLength": 2000},
                  "result": {"type": "string", "enum": list(touch_search.RESULT_EVENTS)},
                  "q": {"type": "string", "maxLength": 200},
                  "variant": {"type": "string", "maxLength": 64}},
           responses={200: ("One page of touches", page_of(TOUCH))})
def list_touches(query):
    filters = touch_search.Filters(
        playbook=query.get("playbook"), step=query.get("step"), channel=query.get("channel"),
        status=query.get("status"), account=str(query["account_id"]) if query.get("account_id") else None,
        event=query.get("result"), reason=query.get("reason"), q=query.get("q"), variant=query.get("variant"))
    items, cursor = touch_search.search(filters, query.get("cursor"), query.get("limit", 50))
    return jsonify(items=items, next_cursor=cursor)
