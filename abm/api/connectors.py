"""Connectors over the API: the installed types, the configured connectors, a live test.

Admins do everything; managers list and read connectors as name, type and channels
only; AEs get 403. Secrets are write-only: every answer shows them masked. The body
schemas here check the envelope; ``settings`` is checked by the service against the
type's own schema (``GET /connector-types``), field by field.
"""

from __future__ import annotations

from flask import jsonify, url_for

from abm.api import bp
from abm.api._openapi import ADMIN, MANAGERS, PAGE_QUERY, operation, page_of, register_schema
from abm.auth import api_user
from abm.services import connectors as service
from abm.services import paging
from connectors.base import CHANNELS

_CHANNELS = {"type": "array", "items": {"enum": list(CHANNELS)}}
_TIME = {"type": ["string", "null"], "format": "date-time"}

CONNECTOR_TYPE = register_schema("ConnectorType", {
    "type": "object", "required": ["type", "channels", "schema", "secret_fields"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "channels": _CHANNELS,
        "schema": {"type": "object", "description": "JSON Schema (2020-12) of the settings; secret fields "
                                                    "carry \"writeOnly\": true"},
        "secret_fields": {"type": "array", "items": {"type": "string"}},
        "max_batch": {"type": "integer"}, "rate_limit": {"type": "string", "description": "calls/seconds"},
        "accepts_webhooks": {"type": "boolean"},
    },
})
CONNECTOR = register_schema("Connector", {
    "type": "object", "required": ["name", "type", "channels", "enabled", "default", "settings"],
    "properties": {
        "name": {"type": "string"}, "type": {"type": "string"}, "channels": _CHANNELS,
        "enabled": {"type": "boolean"},
        "default": {**_CHANNELS, "description": "the channels this connector is the default of"},
        "settings": {"type": "object", "description": "secret fields come back masked (\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022)"},
        "secret_fields": {"type": "array", "items": {"type": "string"}},
        "secrets_readable": {"type": "boolean",
                             "description": "false when no key of ABM_ENCRYPTION_KEYS decrypts the secrets"},
        "unit_cost": {"type": "number"},
        "rate_limit": {"type": "string", "description": "calls/seconds"},
        "rate_limit_is_default": {"type": "boolean"},
        "webhook_url": {"type": ["string", "null"]},
        "installed": {"type": "boolean"},
        "created_at": _TIME, "updated_at": _TIME,
    },
})
CONNECTOR_SUMMARY = register_schema("ConnectorSummary", {
    "type": "object", "required": ["name", "type", "channels"],
    "description": "what a manager sees of a connector",
    "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "channels": _CHANNELS},
})
CONNECTOR_FOR_ROLE = {"anyOf": [CONNECTOR, CONNECTOR_SUMMARY]}

_FIELDS = {
    "type": {"type": "string", "minLength": 1, "maxLength": 50, "description": "a type of GET /connector-types"},
    "name": {"type": "string", "minLength": 1, "maxLength": 63,
             "description": "lowercase letters, digits, - and _; playbooks name it"},
    "settings": {"type": "object", "description": "checked against the type's schema; in a PATCH a merge "
                                                  "patch: null removes a key, a masked secret keeps it"},
    "default": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "description": "the channel(s) this connector becomes the default of"},
    "unit_cost": {"type": ["number", "string", "null"], "description": "cost of one touch, 0 or more"},
    "rate_limit": {"type": ["string", "null"], "maxLength": 50, "description": "CALLS/SECONDS, e.g. 600/60; null: the type's"},
    "enabled": {"type": "boolean"},
}
CREATE_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["type", "name"],
                 "properties": _FIELDS}
PATCH_SCHEMA = {"type": "object", "additionalProperties": False, "properties": _FIELDS}
TEST_RESULT = {"type": "object", "required": ["ok", "message"],
               "properties": {"ok": {"type": "boolean"}, "message": {"type": "string"}}}


@bp.get("/connector-types")
@operation("Every installed connector type with its channels and settings schema", roles=ADMIN,
           tags=["connectors"], responses={200: ("The types", page_of(CONNECTOR_TYPE))})
def connector_types():
    return jsonify(items=service.describe_types(), next_cursor=None)


@bp.get("/connectors")
@operation("List the configured connectors (managers: name, type and channels only)", roles=MANAGERS,
           tags=["connectors"], query=PAGE_QUERY,
           responses={200: ("One page of connectors", page_of(CONNECTOR_FOR_ROLE))})
def list_connectors(query):
    role = api_user().role
    rows, next_cursor = service.page_configs(query.get("cursor"), query.get("limit", paging.DEFAULT_LIMIT))
    return jsonify(items=[service.serialize(r, role) for r in rows], next_cursor=next_cursor)


@bp.post("/connectors")
@operation("Configure a connector; secrets are stored encrypted", roles=ADMIN, tags=["connectors"],
           body=CREATE_SCHEMA, responses={201: ("The connector, secrets masked", CONNECTOR),
                                          409: "a connector has this name"})
def create_connector(body):
    config = service.create(body, actor_id=api_user().id)
    response = jsonify(service.serialize(config, "admin"))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_connector", name=config.name)
    return response


@bp.get("/connectors/<name>")
@operation("One connector (managers: name, type and channels only)", roles=MANAGERS, tags=["connectors"],
           responses={200: ("The connector", CONNECTOR_FOR_ROLE)})
def get_connector(name: str):
    return jsonify(service.serialize(service.get_config(name), api_user().role))


@bp.patch("/connectors/<name>")
@operation("Change a connector (merge patch; a masked secret keeps the stored one)", roles=ADMIN,
           tags=["connectors"], body=PATCH_SCHEMA, responses={200: ("The connector, secrets masked", CONNECTOR)})
def patch_connector(name: str, body):
    config = service.update(name, body, actor_id=api_user().id)
    return jsonify(service.serialize(config, "admin"))


@bp.delete("/connectors/<name>")
@operation("Remove a connector", roles=ADMIN, tags=["connectors"], responses={204: "removed"})
def delete_connector(name: str):
    service.delete(name, actor_id=api_user().id)
    return "", 204


@bp.post("/connectors/<name>/test")
@operation("Make a harmless live call through the connector", roles=ADMIN, tags=["connectors"],
           responses={200: ("Whether it worked, and a plain sentence", TEST_RESULT)})
def test_connector(name: str):
    service.get_config(name)
    ok, message = service.test(name)
    return jsonify(ok=ok, message=message)
