"""Each API operation declares its OpenAPI next to its route; ``GET /api/v1/openapi.json``
assembles them into one OpenAPI 3.1 document.

How to use it (every module of ``abm/api``)::

    from abm.api import bp
    from abm.api._openapi import MANAGERS, operation, ref, register_schema

    THING = register_schema("Thing", {"type": "object", "properties": {...}})

    @bp.post("/things")
    @operation("Create a thing", roles=MANAGERS, body=THING_CREATE_SCHEMA,
               responses={201: ("The thing", THING), 409: "the name is taken"})
    def create_thing(body):            # body: the JSON, already checked against the schema
        ...
        return jsonify(...), 201

``@operation`` goes *under* ``@bp.<method>(...)`` and does, for that view:

- auth: ``roles=ANY`` (default) needs a token of any role, ``roles=("admin",)`` those
  roles (else 403), ``roles=PUBLIC`` none. A view already wrapped in
  ``require_role(...)`` keeps its check and its roles are documented.
- ``body=<JSON Schema>``: the body must be JSON matching it (unknown fields are a 422
  naming the field: give ``"additionalProperties": False``); the view gets it as
  ``body``. For other media types (YAML, CSV), give ``request_body=<OpenAPI
  requestBody object>`` instead: documented, not parsed. (``body`` and ``query`` are
  passed only to views whose signature names them.)
- ``Content-Type``: a write's body is read only as what the operation declares
  (``body``: ``application/json``; ``request_body``: its ``content`` types); any other
  type is a 415, and so is a non-JSON body sent to a write that takes none. A form on
  another site can send only ``text/plain``, ``application/x-www-form-urlencoded`` or
  ``multipart/form-data``; none of them is read as JSON, YAML or CSV.
- ``query={"name": {JSON Schema, "description"?, "required"?}}``: query parameters;
  unknown ones are a 422, integers and booleans are converted, and the view gets the
  parsed ones as ``query``.
- Writes (POST, PUT, PATCH, DELETE) honour ``Idempotency-Key`` (see
  :mod:`abm.services.idempotency`); ``idempotent=False`` turns that off, and
  ``secret_fields=("token",)`` keeps those answer fields out of the stored replay.
- ``responses={status: "description" | ("description", schema)}``; the common errors
  (401, 403, 404 when the path, query or body names something, 413/422 with a body
  or query, 409/422 on Idempotency-Key misuse)
  are added with the shared ``Error`` schema.

Path, method and path parameters come from the URL rule itself, so the document
cannot disagree with the server there. Routes that cannot carry the decorator may be
described with ``register_operation(endpoint, method, ...)`` (same arguments,
documentation only). ``undocumented(app)`` lists ``/api/v1`` rules with no operation:
tests/api/test_openapi.py fails on any.
"""

from __future__ import annotations

import inspect
import json
import re
from functools import wraps
from typing import Any

from flask import current_app, jsonify, make_response, request

from abm.api import bp
from abm.auth import api_user
from abm.errors import CODES, ApiError, NotFound, ValidationError
from abm.services import idempotency
from abm.services.validation import problems, refuse_nul

ANY: tuple = ()
PUBLIC = None
MANAGERS = ("admin", "manager")
ADMIN = ("admin",)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREFIX = "/api/v1"
#: Integer path parameters above this name nothing (ids are 32-bit) and are a 404
#: before any query (a bigger number would overflow the database's integer).
MAX_PATH_INT = 2**31 - 1

ERROR_SCHEMA: dict = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "enum": sorted(set(CODES.values()))},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {
                "type": "object", "required": ["path", "message"],
                "properties": {"path": {"type": "string"}, "message": {"type": "string"},
                               "line": {"type": "integer"}, "column": {"type": "integer"}}}},
        },
        "additionalProperties": True,
    }},
}
_schemas: dict[str, dict] = {"Error": ERROR_SCHEMA}
#: (endpoint, METHOD) -> operation spec, for routes described without the decorator.
_registered: dict[tuple[str, str], dict] = {}

_DEFAULT_ERRORS = {
    401: "no or bad token", 403: "the role may not do this", 404: "not found",
    409: "the Idempotency-Key is in use by a request still running", 413: "the body is too large",
    415: "the body's Content-Type is not one this operation reads",
    422: "invalid input: details name each field",
}


def register_schema(name: str, schema: dict) -> dict:
    """Add a named schema to ``components.schemas``; returns a ``$ref`` to it."""
    _schemas[name] = schema
    return ref(name)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(item_schema: dict) -> dict:
    """The list reply: ``{"items": [...], "next_cursor": str | null}``."""
    return {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": item_schema},
                           "next_cursor": {"type": ["string", "null"]}}}


#: Query parameters of every cursor-paginated list.
PAGE_QUERY: dict = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50, "description": "page size"},
    "cursor": {"type": "string", "maxLength": 2000, "description": "next_cursor of the previous page"},
}


def _spec(summary, roles, body, request_body, query, responses, tags, description, idempotent) -> dict:
    return {"summary": summary, "roles": roles, "body": body, "request_body": request_body,
            "query": query or {}, "responses": responses or {}, "tags": tags, "description": description,
            "idempotent": idempotent}


def operation(summary: str, *, roles: tuple | None = ANY, body: dict | None = None,
              request_body: dict | None = None, query: dict | None = None, responses: dict | None = None,
              tags: list[str] | None = None, description: str | None = None, idempotent: bool = True,
              secret_fields: tuple[str, ...] = ()):
    """Decorate a view of ``bp``: documents it and enforces auth, body, query and idempotency.

    ``secret_fields``: top-level fields of the answer that are never stored for an
    idempotent replay (a replay shows them as null), e.g. a token shown only once.
    """
    spec = _spec(summary, roles, body, request_body, query, responses, tags, description, idempotent)

    def decorator(view):
        inner_roles = getattr(view, "required_roles", None)
        media_types = declared_media_types(spec)
        accepts = set(inspect.signature(view).parameters)

        @wraps(view)
        def wrapped(*args, **kwargs):
            user = None
            if roles is not None or inner_roles is not None:
                user = api_user()
                if roles and user.role not in roles:
                    raise ApiError(403, f"your role ({user.role}) may not do this; it needs: {', '.join(roles)}")
            check_media_type(media_types)
            if any(isinstance(v, int) and v > MAX_PATH_INT for v in kwargs.values()):
                raise NotFound("no such object (the id is out of range)")
            parsed = parse_query(query or {})  # undeclared query parameters are a 422
            if "query" in accepts:
                kwargs["query"] = parsed
            raw = b""
            if body is not None:
                data, raw = parse_json(body)
                if "body" in accepts:
                    kwargs["body"] = data
            key = request.headers.get("Idempotency-Key")
            if idempotent and user is not None and key is not None and request.method in WRITES:
                if body is None:
                    raw = request.get_data(cache=True)
                return _idempotent(user.id, key, raw, lambda: view(*args, **kwargs), secret_fields)
            return view(*args, **kwargs)

        wrapped.openapi = spec
        if roles:
            wrapped.required_roles = roles
        return wrapped

    return decorator


def register_operation(endpoint: str, method: str, summary: str, **kwargs) -> None:
    """Describe a route that does not carry ``@operation`` (documentation only)."""
    _registered[(endpoint, method.upper())] = _spec(summary, kwargs.pop("roles", ANY), kwargs.pop("body", None),
                                                    kwargs.pop("request_body", None), kwargs.pop("query", None),
                                                    kwargs.pop("responses", None), kwargs.pop("tags", None),
                                                    kwargs.pop("description", None), kwargs.pop("idempotent", True))
    if kwargs:
        raise TypeError(f"register_operation: unknown arguments {sorted(kwargs)}")


def declared_media_types(spec: dict) -> frozenset[str]:
    """The Content-Types an operation reads its body as (empty: it takes no body)."""
    if spec["body"] is not None:
        return frozenset({"application/json"})
    if spec["request_body"] is not None:
        return frozenset(spec["request_body"]["content"])
    return frozenset()


def check_media_type(media_types: frozenset[str]) -> None:
    """415 unless a write's body is of a declared type; a write that takes no body
    ignores an empty or JSON one (clients often send ``{}``) and refuses anything else."""
    if request.method not in WRITES:
        return
    sent = request.mimetype or ""
    if media_types:
        has_body = bool(request.content_length or request.headers.get("Transfer-Encoding"))
        if sent not in media_types and (sent or has_body):  # no body at all: the view's 422 says so
            raise ApiError(415, f"send the body as {' or '.join(sorted(media_types))}, not {sent or 'no Content-Type'}",
                           [{"path": "Content-Type", "message": f"must be one of {', '.join(sorted(media_types))}"}])
    elif sent not in ("", "application/json") and (request.content_length or 0) > 0:
        raise ApiError(415, f"this operation takes no body (or a JSON one), not {sent}",
                       [{"path": "Content-Type", "message": "send no body"}])


#: The largest JSON body an operation reads (bytes): a batch of 1,000 events with room
#: to spare. Files (imports) have the app's MAX_CONTENT_LENGTH.
MAX_JSON_BYTES = 4 * 1024 * 1024


def parse_json(schema: dict) -> tuple[Any, bytes]:
    """The request's JSON body checked against ``schema``; (data, raw bytes). A body
    over :data:`MAX_JSON_BYTES` is a 413 before it is read."""
    request.max_content_length = min(MAX_JSON_BYTES, request.max_content_length or MAX_JSON_BYTES)
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ValidationError([{"path": "(body)", "message": "a JSON body is required"}])
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError([{"path": "(body)", "message": f"not valid JSON: {exc}"}]) from None
    refuse_nul(data)
    found = problems(schema, data)
    if found:
        raise ValidationError(found)
    return data, raw


def _convert(name: str, schema: dict, value: str):
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "integer" in types:
        try:
            return int(value)
        except ValueError:
            raise ValidationError([{"path": name, "message": f"must be a whole number, not {value!r}"}]) from None
    if "boolean" in types:
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ValidationError([{"path": name, "message": "must be true or false"}])
    return value


def parse_query(params: dict) -> dict:
    """The query string checked against ``params`` (name -> schema); unknown names are a 422."""
    unknown = [k for k in request.args if k not in params]
    if unknown:
        raise ValidationError([{"path": k, "message": "unknown query parameter"
                                + (f"; this one takes {', '.join(params)}" if params else "")} for k in unknown])
    out, found = {}, []
    for name, schema in params.items():
        values = request.args.getlist(name)
        if not values:
            if schema.get("required"):
                found.append({"path": name, "message": "is required"})
            continue
        if len(values) > 1:
            found.append({"path": name, "message": "given more than once"})
            continue
        value = _convert(name, schema, values[0])
        plain = {k: v for k, v in schema.items() if k not in ("description", "required", "default")}
        found += [{"path": name, "message": p["message"]} for p in problems(plain, value)]
        out[name] = value
    if found:
        raise ValidationError(found)
    return out


def _error_body(exc: ApiError) -> dict:
    return {"error": {"code": exc.code, "message": exc.message, "details": exc.details, **exc.extra}}


def _idempotent(user_id: int, key: str, raw: bytes, call, secret_fields: tuple[str, ...] = ()):
    path = request.full_path.rstrip("?")
    outcome = idempotency.begin(user_id, key, request.method, path, idempotency.fingerprint(request.method, path, raw))
    if isinstance(outcome, idempotency.Replay):
        resp = jsonify(outcome.body) if outcome.body is not None else make_response("", outcome.status)
        resp.status_code = outcome.status
        resp.headers["Idempotent-Replayed"] = "true"
        return resp
    try:
        resp = make_response(call())
    except ApiError as exc:
        if exc.status >= 500:
            idempotency.abandon(outcome)
        else:
            idempotency.finish(outcome, exc.status, _error_body(exc))
        raise
    except Exception:
        idempotency.abandon(outcome)
        raise
    if resp.status_code >= 500:
        idempotency.abandon(outcome)
    else:
        stored = resp.get_json(silent=True)
        if isinstance(stored, dict) and secret_fields:
            stored = {k: (None if k in secret_fields else v) for k, v in stored.items()}
        idempotency.finish(outcome, resp.status_code, stored)
    return resp


# -- the document ------------------------------------------------------------------

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def _path_of(rule) -> tuple[str, list[dict]]:
    params = []

    def repl(m):
        kind = m.group("conv") or "default"
        schema = {"type": "integer", "minimum": 0, "maximum": MAX_PATH_INT} if kind == "int" else {"type": "string"}
        params.append({"name": m.group("name"), "in": "path", "required": True, "schema": schema})
        return "{" + m.group("name") + "}"

    return _CONVERTER.sub(repl, rule.rule[len(PREFIX):]), params


def _spec_for(app, rule, method: str) -> dict | None:
    if (rule.endpoint, method) in _registered:
        return _registered[(rule.endpoint, method)]
    return getattr(app.view_functions.get(rule.endpoint), "openapi", None)


def _roles_of(app, rule, spec) -> tuple | None:
    view_roles = getattr(app.view_functions.get(rule.endpoint), "required_roles", None)
    if spec["roles"] is PUBLIC and view_roles is None:
        return None
    return tuple(spec["roles"] or view_roles or ())


def _response(description: str, schema: dict | None = None) -> dict:
    out = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


def _operation_object(app, rule, method: str, spec: dict) -> dict:
    path, path_params = _path_of(rule)
    roles = _roles_of(app, rule, spec)
    op: dict = {"operationId": f"{rule.endpoint.split('.', 1)[-1]}_{method.lower()}", "summary": spec["summary"]}
    if spec["tags"]:
        op["tags"] = spec["tags"]
    else:
        op["tags"] = [path.strip("/").split("/")[0] or "api"]
    description = spec["description"] or ""
    if roles is not None:
        description += f"\n\nRoles: {', '.join(roles) if roles else 'any'}."
    if method in WRITES and spec["idempotent"] and roles is not None:
        description += " Accepts `Idempotency-Key`."
    op["description"] = description.strip()
    op["security"] = [{"bearerAuth": []}] if roles is not None else []
    params = list(path_params)
    for name, schema in spec["query"].items():
        plain = {k: v for k, v in schema.items() if k not in ("description", "required")}
        p = {"name": name, "in": "query", "required": bool(schema.get("required")), "schema": plain}
        if schema.get("description"):
            p["description"] = schema["description"]
        params.append(p)
    if method in WRITES and spec["idempotent"] and roles is not None:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH,
                                  "pattern": "^[\\x20-\\x7e]+$"},
                       "description": "the same key and body replay the first answer"})
    if params:
        op["parameters"] = params
    if spec["body"] is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": spec["body"]}}}
    elif spec["request_body"] is not None:
        op["requestBody"] = spec["request_body"]
    responses: dict[str, dict] = {}
    for status, value in spec["responses"].items():
        desc, schema = (value, None) if isinstance(value, str) else value
        if int(status) >= 400 and schema is None:
            schema = ref("Error")
        responses[str(status)] = _response(desc, schema)
    if method == "GET" and not any(code.startswith("2") for code in responses):
        responses["200"] = _response("OK")
    errors = []
    if roles is not None:
        errors += [401, 403]
    if path_params or spec["query"] or spec["body"] is not None or spec["request_body"] is not None:
        errors.append(404)  # the object named in the path, the query or the body
    if spec["body"] is not None or spec["request_body"] is not None:
        errors += [413, 422]
    if method in WRITES:
        errors.append(415)
    if spec["query"] or (method in WRITES and roles is not None):
        errors.append(422)
    if method in WRITES and spec["idempotent"] and roles is not None:
        errors += [409, 422]
    for status in errors:
        responses.setdefault(str(status), _response(_DEFAULT_ERRORS[status], ref("Error")))
    # The web server's own answer (plain text, before the app) to a request line over its limit.
    responses.setdefault("414", _response("the URL is longer than the server reads (8,190 bytes)"))
    op["responses"] = dict(sorted(responses.items()))
    return op


def api_rules(app):
    """The ``/api/v1`` rules and their methods (HEAD and OPTIONS aside)."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.rule.startswith(PREFIX + "/") or rule.rule == PREFIX:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield rule, method


def undocumented(app) -> list[str]:
    return [f"{method} {rule.rule}" for rule, method in api_rules(app) if _spec_for(app, rule, method) is None]


def build_document(app) -> dict:
    paths: dict[str, dict] = {}
    for rule, method in api_rules(app):
        spec = _spec_for(app, rule, method)
        if spec is not None:
            path, _ = _path_of(rule)
            paths.setdefault(path, {})[method.lower()] = _operation_object(app, rule, method, spec)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ABM orchestration API", "version": "1",
                 "description": "Bearer tokens (`Authorization: Bearer TOKEN`); errors are "
                                "`{\"error\": {code, message, details}}`; lists are "
                                "`{items, next_cursor}`. See docs/api.md."},
        "servers": [{"url": PREFIX}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(_schemas.items())),
        },
    }


@bp.get("/openapi.json")
@operation("This document: the API in OpenAPI 3.1", roles=PUBLIC, tags=["meta"],
           responses={200: ("The OpenAPI document", {"type": "object"})})
def openapi_document():
    return jsonify(build_document(current_app))
