"""Connectors over the API: the installed types, the configured connectors, a live test.

Admins do everything; managers list and read connectors as name, type and channels
only; AEs get 403. Secrets are write-only: every answer shows them masked.
"""

from __future__ import annotations

from flask import jsonify, request, url_for

from abm.api import bp
from abm.auth import api_user, require_role
from abm.errors import ValidationError
from abm.services import connectors as service

MAX_LIMIT = 500


def _body():
    data = request.get_json(silent=True)
    if data is None:
        raise ValidationError([{"path": "(body)", "message": "expected a JSON object "
                                                             "(Content-Type: application/json)"}])
    return data


def _limit() -> int:
    raw = request.args.get("limit", "50")
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationError([{"path": "limit", "message": f"{raw!r} is not a number"}]) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError([{"path": "limit", "message": f"must be 1 to {MAX_LIMIT}"}])
    return limit


@bp.get("/connector-types")
@require_role("admin")
def connector_types():
    return jsonify(items=service.describe_types(), next_cursor=None)


@bp.get("/connectors")
@require_role("admin", "manager")
def list_connectors():
    role = api_user().role
    limit = _limit()
    rows = service.list_configs(after=request.args.get("cursor") or None, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(items=[service.serialize(r, role) for r in rows],
                   next_cursor=rows[-1].name if more else None)


@bp.post("/connectors")
@require_role("admin")
def create_connector():
    config = service.create(_body(), actor_id=api_user().id)
    response = jsonify(service.serialize(config, "admin"))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_connector", name=config.name)
    return response


@bp.get("/connectors/<name>")
@require_role("admin", "manager")
def get_connector(name: str):
    return jsonify(service.serialize(service.get_config(name), api_user().role))


@bp.patch("/connectors/<name>")
@require_role("admin")
def patch_connector(name: str):
    config = service.update(name, _body(), actor_id=api_user().id)
    return jsonify(service.serialize(config, "admin"))


@bp.delete("/connectors/<name>")
@require_role("admin")
def delete_connector(name: str):
    service.delete(name, actor_id=api_user().id)
    return "", 204


@bp.post("/connectors/<name>/test")
@require_role("admin")
def test_connector(name: str):
    service.get_config(name)
    ok, message = service.test(name)
    return jsonify(ok=ok, message=message)
