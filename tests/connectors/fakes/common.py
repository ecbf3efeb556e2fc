"""What the fake providers share: scripted failures and request checks.

A fake's view is wrapped by :meth:`Fake.route`, which first plays any scripted
answer queued for that request (a status and body, optionally after a delay, to
simulate a timeout), then checks the User-Agent and the bearer token, then runs the
view. The views themselves reject malformed requests the way the provider would.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, request

HEX64 = re.compile(r"^[0-9a-f]{64}$")
EMAILISH = re.compile(rb"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,}")


@dataclass
class Scripted:
    path_contains: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    method: str | None = None
    skip: int = 0


class Fake:
    """Base of the fake providers: a Flask app, a token, and a queue of scripted answers."""

    provider = "fake"

    def __init__(self, token: str = "good-token"):
        self.token = token
        self.app = Flask(f"fake_{self.provider}")
        self.script: list[Scripted] = []
        self.calls: dict[str, int] = {}
        self.app.register_error_handler(BadRequest, lambda exc: self.bad(str(exc)))

    def bad(self, message: str) -> Response:
        """The provider's answer to a malformed request (overridden per provider)."""
        return error(400, message)

    def fail(self, path_contains: str, status: int, body: Any = None, *, headers: dict | None = None,
             times: int = 1, delay: float = 0.0, method: str | None = None, skip: int = 0) -> None:
        """Answer ``times`` matching requests (after letting ``skip`` pass) with ``status`` and ``body``."""
        self.script.append(Scripted(path_contains, status, body, headers or {}, delay, times, method, skip))

    def slow(self, path_contains: str, seconds: float, times: int = 1) -> None:
        """Delay the next matching requests (then answer them normally)."""
        self.script.append(Scripted(path_contains, 0, delay=seconds, times=times))

    def _scripted(self) -> Response | None:
        for entry in self.script:
            if entry.path_contains in request.full_path and entry.method in (None, request.method):
                if entry.skip:
                    entry.skip -= 1
                    return None
                entry.times -= 1
                if entry.times <= 0:
                    self.script.remove(entry)
                if entry.delay:
                    time.sleep(entry.delay)
                if entry.status == 0:
                    return None
                body = entry.body if isinstance(entry.body, str) else json.dumps(entry.body)
                return Response(body, entry.status, headers=entry.headers, content_type="application/json")
        return None

    def authorized(self) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def unauthorized(self) -> Response:
        return error(401, "unauthorized")

    def require(self, condition: bool, message: str) -> None:
        if not condition:
            raise BadRequest(message)

    def route(self, rule: str, methods: list[str], *, auth: Callable[[], bool] | None = None):
        def decorate(view):
            @functools.wraps(view)
            def wrapped(**kwargs):
                name = view.__name__
                self.calls[name] = self.calls.get(name, 0) + 1
                scripted = self._scripted()
                if scripted is not None:
                    return scripted
                if not request.headers.get("User-Agent", "").startswith("abm-orchestrator/"):
                    return error(400, "missing product User-Agent")
                if not (auth or self.authorized)():
                    return self.unauthorized()
                return view(**kwargs)
            self.app.add_url_rule(rule, view.__name__, wrapped, methods=methods)
            return wrapped
        return decorate


def error(status: int, message: str, **extra: Any) -> Response:
    return Response(json.dumps({"message": message, **extra}), status, content_type="application/json")


def json_body() -> Any:
    if not (request.content_type or "").startswith("application/json"):
        raise BadRequest("Content-Type must be application/json")
    try:
        return json.loads(request.get_data() or b"null")
    except ValueError:
        raise BadRequest("body is not JSON") from None


class BadRequest(Exception):
    pass


def contains_plain_email(body: bytes) -> bool:
    """True when the raw or URL-decoded body holds something shaped like an email."""
    decoded = unquote_to_bytes(body.replace(b"+", b" "))
    return b"@" in decoded and EMAILISH.search(decoded) is not None
