"""Bad input is a 4xx that names the field, on PostgreSQL as on SQLite: NUL characters,
files that are not text, values longer than their column, edited cursors."""

from __future__ import annotations

import base64
import json

import pytest

import abm.models as models
from abm import server
from abm.db import db
from abm.errors import ValidationError
from abm.services import events, spend
from tests.engagement.conftest import add_site


def _field(answer, status: int = 422) -> str:
    assert answer.status_code == status, answer.get_data(as_text=True)
    return answer.get_json()["error"]["details"][0]["path"]


def test_a_nul_in_a_json_string_names_the_field(api):
    admin = api("admin")
    assert _field(admin.post("/api/v1/accounts", json={"domain": "acme.com", "name": "Ac\u0000me"})) == "name"
    nested = admin.post("/api/v1/events", json={"events": [{"type": "web_visit", "email": "a@acme.com",
                                                            "properties": {"k": "v\u0000"}}]})
    assert _field(nested) == "events[0].properties.k"
    assert admin.post("/api/v1/accounts", json={"domain": "acme.com", "name": "Acme"}).status_code == 201


@pytest.mark.parametrize("url, field", [
    ("/api/v1/accounts?q=ac%00me", "q"),
    ("/api/v1/playbooks/ab%00c", "key"),
    ("/api/v1/touches?playbook=x%00", "playbook"),
])
def test_a_nul_in_a_query_parameter_or_path_names_it(api, url, field):
    assert _field(api("admin").get(url)) == field


def test_a_nul_in_a_page_form_or_query_is_a_4xx(app, client, make_user):
    answer = client.get("/login?next=%00")
    assert answer.status_code == 422 and b"NUL" in answer.data


def test_a_file_that_is_not_text_is_a_located_422(api):
    latin1 = "Company Name,Company Website,Date,Impressions,Clicks\nSoci\u00e9t\u00e9,acme.com,2026-06-01,10,1\n"
    answer = api("manager").post("/api/v1/imports/ad-engagement", data=latin1.encode("latin-1"),
                                 content_type="text/csv")
    assert _field(answer) == "(body)"
    assert "not UTF-8 text (byte 0xe9 at row 2)" in answer.get_json()["error"]["message"]
    binary = api("manager").post("/api/v1/imports/ad-engagement", data=b"Company,Date\n\x00\x01\x02",
                                 content_type="text/csv")
    assert "NUL character at row 2" in binary.get_json()["error"]["message"]


def test_a_value_longer_than_its_column_is_refused_by_the_schema_and_the_service(api, app):
    manager = api("manager")
    long = manager.post("/api/v1/costs", json={"product": "p" * 101, "amount": 5, "date": "2026-06-02"})
    assert _field(long) == "product"
    schema = manager.get("/api/v1/openapi.json").get_json()
    body = schema["paths"]["/costs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["product"]["maxLength"] == 100 and body["properties"]["channel"]["maxLength"] == 20
    for row, field in (({"product": "p" * 101}, "product"), ({"playbook": "pb\x00"}, "playbook")):
        with pytest.raises(ValidationError) as caught:  # the spend CSV import goes through the same service
            spend.record_cost({**row, "amount": "5", "date": "2026-06-02"}, source="csv")
        assert caught.value.details[0]["path"] == field
        db.session.rollback()


def test_an_edited_cursor_is_a_422_on_cursor(api, seed_accounts):
    seed_accounts([{"name": f"A{i}", "domain": f"a{i}.example", "score": float(i)} for i in range(3)])
    admin = api("admin")
    cursor = admin.get("/api/v1/accounts?limit=1").get_json()["next_cursor"]
    assert admin.get(f"/api/v1/accounts?limit=1&cursor={cursor}").status_code == 200
    forged = base64.urlsafe_b64encode(json.dumps({"s": "-score", "v": ["x" * 50, "not-an-id"]}).encode())
    for bad in (cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"), forged.decode().rstrip("="), "%00"):
        assert _field(admin.get(f"/api/v1/accounts?limit=1&cursor={bad}")) == "cursor"


def test_a_beacon_or_a_queued_event_with_a_nul_stores_nothing_and_breaks_nothing(app, client):
    key = add_site(["https://www.ourco.example"])
    beacon = client.post("/t/v", data=json.dumps({"type": "web_visit", "url": "https://www.ourco.example/a",
                                                  "site": key, "title": "x\u0000"}),
                         content_type="text/plain", headers={"Origin": "https://www.ourco.example"})
    assert beacon.status_code == 400 and b"title" in beacon.data
    events.push([{"type": "web_visit", "occurred_at": "2026-06-01T10:00:00+00:00", "email": "a@acme.com",
                  "url": "https://x.example/\u0000"}])
    result = events.drain()
    assert (result.invalid, result.stored) == (1, 0)


def test_the_web_server_reads_the_longest_url_the_document_allows(monkeypatch):
    seen = {}
    monkeypatch.setattr(server._Gunicorn, "run", lambda self: seen.update(self.options))
    server.run_gunicorn("127.0.0.1", 0, workers=1)
    assert seen["limit_request_line"] == 8190  # gunicorn's maximum; 414 beyond, as documented


#: Where each API path writes its JSON body's fields: the model, and any field stored
#: under another column name.
WRITES = {"/accounts": ("Account", {}), "/contacts": ("Contact", {}), "/opportunities": ("Opportunity", {}),
          "/costs": ("Cost", {"playbook": "playbook_key"}), "/users": ("User", {}), "/segments": ("Segment", {}),
          "/connectors": ("ConnectorConfig", {}), "/playbooks/{key}/clone": ("Playbook", {})}


def _written_strings(schema: dict):
    """(path, method, field, its schema) of every JSON body field of the paths in WRITES."""
    refs = schema.get("components", {}).get("schemas", {})
    for path, methods in schema["paths"].items():
        base = next((w for w in WRITES if path == w or path.startswith(w + "/{") and w != "/playbooks"), None)
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema") \
                if isinstance(op, dict) else None
            if base is None or body is None:
                continue
            if "$ref" in body:
                body = refs[body["$ref"].rsplit("/", 1)[1]]
            for field, spec in body.get("properties", {}).items():
                yield base, path, method, field, spec


def test_no_documented_string_is_longer_than_its_column(api):
    """The document's maxLength of every body field stored in a String(n) column is at
    most n (equal, unless a pattern or the format says less): what the document accepts
    fits the table, so an over-long value is a 422 naming it, never a 500."""
    schema = api("admin").get("/api/v1/openapi.json").get_json()
    checked = []
    for base, path, method, field, spec in _written_strings(schema):
        model_name, renamed = WRITES[base]
        column = getattr(models, model_name).__table__.columns.get(renamed.get(field, field))
        length = getattr(column.type, "length", None) if column is not None else None
        if not length or "string" not in str(spec.get("type")):
            continue
        bounded = spec.get("maxLength") or (length if spec.get("pattern", "").endswith(f"{{{length}}}$") else None)
        assert bounded is not None and bounded <= length, (method, path, field, spec, length)
        checked.append((path, field))
    assert ("/playbooks/{key}/clone", "key") in checked and ("/accounts", "domain") in checked
    assert len(checked) > 30
