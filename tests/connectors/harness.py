"""Real local HTTP servers for connector tests.

Each fake provider is a small Flask app that speaks the provider's protocol as
docs/provider-protocols.md describes and rejects malformed requests. ``serve`` runs
it on a free loopback port in a thread, for the duration of a ``with`` block, and
records every request it received so tests can count what arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import Flask, request
from werkzeug.serving import make_server


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes


@dataclass
class RunningServer:
    base_url: str
    app: Flask
    requests: list[Recorded] = field(default_factory=list)


@contextmanager
def serve(app: Flask) -> Iterator[RunningServer]:
    """Run ``app`` on 127.0.0.1 at a free port; yield its base URL and request log."""
    running = RunningServer(base_url="", app=app)

    @app.before_request
    def _record():
        running.requests.append(
            Recorded(request.method, request.path, request.args.to_dict(flat=False),
                     dict(request.headers), request.get_data(cache=True))
        )

    server = make_server("127.0.0.1", 0, app, threaded=True)
    running.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        server.shutdown()
        thread.join(timeout=5)
