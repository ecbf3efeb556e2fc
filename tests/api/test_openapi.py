"""The OpenAPI document at /api/v1/openapi.json matches the server, and every documented
operation answers bad input with the JSON error form, never a 500."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator

from abm.api._openapi import PREFIX, api_rules, undocumented

METHODS = {"get", "post", "put", "patch", "delete"}


def _doc(client) -> dict:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.json


def _operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def _url(path: str) -> str:
    return PREFIX + re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0) != "{domain}" else "example.com", path)


def test_every_route_is_documented_and_every_operation_exists(app, client):
    assert undocumented(app) == [], "document these routes with @operation (see abm/api/_openapi.py)"
    doc = _doc(client)
    served = set()
    for rule, method in api_rules(app):
        path = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule[len(PREFIX):])
        served.add((path, method.lower()))
    documented = {(path, method) for path, method, _ in _operations(doc)}
    assert documented == served
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": PREFIX}]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert "Error" in doc["components"]["schemas"]


def test_document_is_valid_openapi_31(client):
    definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
    errors = sorted(Draft202012Validator(definitions.OPENAPI_31).iter_errors(_doc(client)), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def test_document_is_consistent(client):
    doc = _doc(client)
    schemas = doc["components"]["schemas"]
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    for path, method, op in _operations(doc):
        names = re.findall(r"\{(\w+)\}", path)
        assert [p["name"] for p in op.get("parameters", []) if p["in"] == "path"] == names, (path, method)
        assert op["summary"] and op["responses"], (path, method)
        assert any(code.startswith("2") for code in op["responses"]), (path, method)
        for code, resp in op["responses"].items():
            if code == "414":  # the web server's own plain answer to a URL over its limit: no JSON
                assert "content" not in resp and "8,190 bytes" in resp["description"]
            elif int(code) >= 400:
                assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        for ref in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', str(op).replace("'", '"')):
            assert ref in schemas, ref
        if op["security"]:
            assert "401" in op["responses"] and "403" in op["responses"]


def test_every_operation_needs_its_token(client):
    doc = _doc(client)
    for path, method, op in _operations(doc):
        r = client.open(_url(path), method=method.upper(), json={})
        if op["security"]:
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json["error"]["code"] == "unauthorized"
        else:
            assert r.status_code < 400, (method, path)


def _valid(doc: dict, schema: dict, raw: bytes) -> bool:
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return Draft202012Validator({**schema, "components": doc["components"]}).is_valid(data)


def test_bad_bodies_and_queries_get_the_error_form(api, client):
    """Bodies the document calls invalid get a 4xx in the error form; nothing gets a 500."""
    doc = _doc(client)
    c = api("admin")
    bodies = [b"{not json", b"[]", b'"text"', b"null", b'{"surely_not_a_field": 1}', b"\xff\xfe", b"",
              b'{"name": 12, "email": [], "domain": {}}']
    for path, method, op in _operations(doc):
        url = _url(path)
        for ctype, media in op.get("requestBody", {}).get("content", {}).items():
            for raw in bodies:
                r = c.open(url, method=method.upper(), data=raw, content_type=ctype)
                what = (method, path, ctype, raw, r.status_code, r.get_data(as_text=True)[:300])
                assert r.status_code < 500, what
                if r.status_code >= 400:
                    assert r.json["error"]["code"] and isinstance(r.json["error"]["details"], list), what
                if ctype == "application/json" and not _valid(doc, media.get("schema", {}), raw):
                    assert 400 <= r.status_code < 500, what
        if method == "get":
            r = c.get(url + "?limit=-1&cursor=%25%25&surely_not_a_param=1")
            assert 400 <= r.status_code < 500, (path, r.status_code)
            assert r.json["error"]["code"] in ("validation_error", "not_found")


def test_writes_read_only_the_declared_content_types(api, client):
    """A write's body is read only as a type its requestBody declares; any other type is
    the documented 415 (a cross-site form can send text/plain, never application/json)."""
    doc = _doc(client)
    c = api("admin")
    for path, method, op in _operations(doc):
        if method == "get":
            continue
        assert "415" in op["responses"], (method, path)
        declared = set(op.get("requestBody", {}).get("content", {}))
        assert "text/plain" not in declared and "application/x-www-form-urlencoded" not in declared, (method, path)
        r = c.open(_url(path), method=method.upper(), data=b'{"a": 1}', content_type="text/plain")
        assert r.status_code == 415 and r.json["error"]["code"] == "unsupported_media_type", (method, path)
        for ctype in declared:
            r = c.open(_url(path), method=method.upper(), data=b"", content_type=ctype)
            assert r.status_code != 415, (method, path, ctype)
