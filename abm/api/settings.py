"""Workspace settings (admins only): stages, roles, weights, half-life, thresholds, caps, send window."""

from __future__ import annotations

from flask import jsonify

from abm.api import bp
from abm.api._openapi import ADMIN, operation, register_schema
from abm.auth import api_user
from abm.services import settings as service

SETTINGS = register_schema("Settings", service.SCHEMA)


def _answer(data: dict):
    resp = jsonify(data)
    resp.headers["X-Settings-Version"] = str(service.current_version())
    return resp


@bp.get("/settings")
@operation("The settings in force (their version in X-Settings-Version)", roles=ADMIN,
           responses={200: ("The settings", SETTINGS)})
def get_settings():
    return _answer(service.current())


@bp.put("/settings")
@operation("Change settings: each top-level key sent replaces the current one; stored as a new version",
           roles=ADMIN, body=service.SCHEMA, responses={200: ("The settings now in force", SETTINGS)})
def put_settings(body):
    return _answer(service.update(body, actor_id=api_user().id))
