"""Errors as people see them: the API's JSON error form, or a plain page; never a trace.

Every API error has the form ``{"error": {"code", "message", "details"}}`` with the
codes listed in docs/api.md. Domain code raises :class:`ApiError` (or one of the
domain errors below) and the handlers here turn it into an answer.
"""

from __future__ import annotations

import logging

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: list[dict] | None = None,
                 code: str | None = None, headers: dict | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.details = details or []
        self.headers = headers or {}
        self.extra = extra or {}


class ValidationError(ApiError):
    def __init__(self, details: list[dict], message: str | None = None):
        n = len(details)
        super().__init__(422, message or (f"{n} field is invalid" if n == 1 else f"{n} fields are invalid"),
                         details)


class NotFound(ApiError):
    def __init__(self, what: str):
        super().__init__(404, f"{what} not found")


class Conflict(ApiError):
    def __init__(self, message: str, extra: dict | None = None):
        super().__init__(409, message, extra=extra)


def error_response(status: int, message: str, details=None, code=None, headers=None, extra=None):
    body = {"error": {"code": code or CODES.get(status, "error"), "message": message,
                      "details": details or []}}
    body["error"].update(extra or {})
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def wants_json() -> bool:
    p = request.path
    return (p.startswith("/api/") or p.startswith("/hooks/") or p.startswith("/t/")
            or request.accept_mimetypes.best == "application/json")


#: Paths whose bodies are read raw (signatures over the exact bytes, beacons): their
#: forms are not parsed before the view.
_RAW_BODIES = ("/hooks/", "/t/", "/api/")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _nul_field() -> str | None:
    """The first query parameter, path segment or (pages') form field holding a NUL
    character, which no text column can store (PostgreSQL refuses it)."""
    sources = [request.args.lists(), ((k, [v]) for k, v in (request.view_args or {}).items())]
    if request.mimetype in _FORMS and not request.path.startswith(_RAW_BODIES):
        sources.append(request.form.lists())
    for pairs in sources:
        for name, values in pairs:
            if "\x00" in name or any(isinstance(v, str) and "\x00" in v for v in values):
                return name
    return None


def register_error_handlers(app) -> None:
    @app.before_request
    def _refuse_nul_characters():
        field = _nul_field()
        if field is not None:
            raise ValidationError([{"path": field, "message": "contains a NUL character (%00), which is not text"}],
                                  f"{field} contains a NUL character (%00), which is not text")

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        if wants_json():
            return error_response(exc.status, exc.message, exc.details, exc.code, exc.headers, exc.extra)
        return _page(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = {413: "the request body is too large",
                   404: "not found",
                   405: "method not allowed"}.get(status, exc.description or exc.name)
        details = None
        if status == 413:
            limit = request.max_content_length
            details = [{"path": "(body)", "message": f"the body may be at most {limit:,} bytes" if limit
                        else "the body is too large"}]
        if wants_json():
            resp = error_response(status, message, details)
            allowed = getattr(exc, "valid_methods", None)
            if status == 405 and allowed:
                resp.headers["Allow"] = ", ".join(allowed)
            return resp
        return _page(status, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "something went wrong on our side; it has been logged"
        if wants_json():
            return error_response(500, message)
        return _page(500, message)


def _page(status: int, message: str):
    try:
        return render_template("web/error.html", status=status, message=message), status
    except Exception:  # noqa: BLE001 - the error page itself must never fail
        return f"<h1>{status}</h1><p>{message}</p>", status
