"""The REST API, /api/v1."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def init_app(app) -> None:
    from abm.auth import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
