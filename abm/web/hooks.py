"""Inbound provider webhooks: ``POST /hooks/{connector}``.

The connector named in the URL verifies the request by its provider's signature
scheme (:meth:`connectors.base.Connector.verify_webhook`): missing, forged or stale
signatures are a 401. A body the connector cannot take is a 400 whose ``details``
locate each fault (``{"path": "data[2].attributes.time", "message": ...}``, or
``(body)``). A verified body is parsed into events, which are queued for the
drain (:func:`abm.services.inbound.receive`, one Redis push): the answer comes before
any database write, so providers never time out on us.

The URL given to ``verify_webhook`` is the public one, ``ABM_BASE_URL`` + the path and
query, because that is the URL the provider signed (HubSpot's v3 scheme signs it),
not the address a proxy in front of us forwarded to.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from abm.auth import csrf
from abm.errors import ApiError
from abm.services import connectors as connector_service
from abm.services import inbound
from connectors.base import ConnectorError

log = logging.getLogger(__name__)

bp = Blueprint("hooks", __name__, url_prefix="/hooks")

#: Provider event batches are small; a larger body is refused before it is read.
MAX_BODY = 5 * 1024 * 1024


def public_url() -> str:
    base = current_app.config.get("BASE_URL", "").rstrip("/")
    query = request.query_string.decode("latin-1")
    return f"{base}{request.path}" + (f"?{query}" if query else "")


@bp.post("/<name>")
def receive(name: str):
    try:
        config = connector_service.get_config(name)
    except connector_service.UnknownConnector:
        raise ApiError(404, f"no connector named {name!r} takes webhooks here") from None
    cls = connector_service.type_of(config)
    if cls is None or not cls.accepts_webhooks or not config.enabled:
        why = "is disabled" if cls is not None and cls.accepts_webhooks else "does not accept webhooks"
        raise ApiError(404, f"connector {name!r} {why}")
    if (request.content_length or 0) > MAX_BODY:
        raise ApiError(413, f"a webhook body may have at most {MAX_BODY // (1024 * 1024)} MB")
    body = request.get_data(cache=False)
    connector = connector_service.instantiate(name)
    headers = dict(request.headers)
    try:
        connector.verify_webhook(request.method, public_url(), headers, body)
    except ConnectorError as exc:
        log.info("webhook for %r refused: %s", name, exc)
        raise ApiError(401, f"webhook refused: {exc}") from None
    try:
        events = connector.parse_webhook(headers, body)
    except ConnectorError as exc:
        raise ApiError(400, f"webhook body not understood: {exc}",
                       getattr(exc, "problems", None) or [{"path": "(body)", "message": str(exc)}]) from None
    received = inbound.receive(name, events)
    return jsonify(received=received), 200


def init_app(app) -> None:
    csrf.exempt(bp)
