"""The REST API, /api/v1: every module of this package adds its routes to ``bp``."""

from __future__ import annotations

import importlib
import pkgutil

from flask import Blueprint

from abm.auth import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
_loaded = False


def _load_modules() -> None:
    global _loaded
    if not _loaded:
        importlib.import_module(f"{__name__}._openapi")  # serves /openapi.json
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


def init_app(app) -> None:
    _load_modules()
    csrf.exempt(bp)
    app.register_blueprint(bp)
