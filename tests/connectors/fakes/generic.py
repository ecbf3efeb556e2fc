"""A provider that answers every request, on any path and method, as a test scripts it."""

from __future__ import annotations

import time

from flask import Flask, Response


def generic_app(status: int = 200, body: str = '{"ok": true}', headers: dict | None = None,
                delay: float = 0.0, content_type: str = "application/json") -> Flask:
    """Answers with ``status``/``body``/``headers`` after ``delay`` seconds.

    ``app.config["SCRIPT"]`` may hold a list of (status, body, headers) tuples,
    consumed one per request before falling back to the fixed answer.
    """
    app = Flask("fake-generic")
    app.config["SCRIPT"] = []

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def answer(path):
        if delay:
            time.sleep(delay)
        if app.config["SCRIPT"]:
            s, b, h = app.config["SCRIPT"].pop(0)
            return Response(b, status=s, headers=h or {}, content_type=content_type)
        return Response(body, status=status, headers=headers or {}, content_type=content_type)

    return app
