"""The pages: one blueprint per area. Every module of this package that defines ``bp``
(a Blueprint) is registered; a module may also define ``init_app(app)`` for extras."""

from __future__ import annotations

import importlib
import pkgutil


def init_app(app) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "bp"):
            app.register_blueprint(module.bp)
        if hasattr(module, "init_app"):
            module.init_app(app)
