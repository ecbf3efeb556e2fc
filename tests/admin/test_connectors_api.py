"""Connectors over the API: create, read, change, delete; secrets encrypted and masked; roles."""

from __future__ import annotations

import json

import pytest
from flask import current_app
from sqlalchemy import text

from abm.crypto import MASK
from abm.db import db
from abm.services import connectors as service
from connectors.base import ConnectorError

SECRET = "whsec-0123456789-abcdef-SECRET"


def webhook_body(**extra):
    body = {"type": "webhook", "name": "crm-hook",
            "settings": {"url": "https://hooks.example.com/abm", "secret": SECRET}}
    body.update(extra)
    return body


def raw_row(name):
    return db.session.execute(text("SELECT settings, secrets FROM connectors WHERE name = :n"),
                              {"n": name}).one()


def test_create_read_patch_delete(api):
    admin = api("admin")
    created = admin.post("/api/v1/connectors", json=webhook_body(unit_cost=0.25, rate_limit="600/60"))
    assert created.status_code == 201, created.get_json()
    assert created.headers["Location"].endswith("/api/v1/connectors/crm-hook")
    body = created.get_json()
    assert body["type"] == "webhook" and body["channels"] == ["webhook", "alert"]
    assert body["settings"]["url"] == "https://hooks.example.com/abm"
    assert body["settings"]["secret"] == MASK + SECRET[-4:]
    assert body["unit_cost"] == 0.25 and body["rate_limit"] == "600/60" and body["enabled"] is True

    patched = admin.patch("/api/v1/connectors/crm-hook",
                          json={"settings": {"url": "https://other.example.com/in", "secret": SECRET},
                                "enabled": False})  # a new host: the secret typed again
    assert patched.status_code == 200, patched.get_json()
    got = admin.get("/api/v1/connectors/crm-hook").get_json()
    assert got["settings"]["url"] == "https://other.example.com/in"
    assert got["enabled"] is False
    assert got["settings"]["secret"] == MASK + SECRET[-4:]

    listed = admin.get("/api/v1/connectors").get_json()
    assert [c["name"] for c in listed["items"]] == ["crm-hook"] and listed["next_cursor"] is None

    assert admin.delete("/api/v1/connectors/crm-hook").status_code == 204
    gone = admin.get("/api/v1/connectors/crm-hook")
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "not_found"


def test_secret_is_encrypted_at_rest_and_masked_in_every_answer(api):
    admin = api("admin")
    answers = [admin.post("/api/v1/connectors", json=webhook_body())]
    answers.append(admin.get("/api/v1/connectors/crm-hook"))
    answers.append(admin.get("/api/v1/connectors"))
    answers.append(admin.patch("/api/v1/connectors/crm-hook", json={"unit_cost": "1.5"}))
    answers.append(admin.patch("/api/v1/connectors/crm-hook", json={"settings": {"secret": "short"}}))
    for answer in answers:
        assert SECRET not in answer.get_data(as_text=True)
    settings, secrets = raw_row("crm-hook")
    assert SECRET not in json.dumps(settings) and SECRET not in (secrets or "")
    assert "secret" not in (settings if isinstance(settings, dict) else json.loads(settings))
    # ... and the connector itself gets the real secret back
    assert service.instantiate("crm-hook").settings["secret"] == SECRET


def test_masked_value_posted_back_keeps_the_stored_secret(api):
    admin = api("admin")
    shown = admin.post("/api/v1/connectors", json=webhook_body()).get_json()["settings"]
    again = admin.patch("/api/v1/connectors/crm-hook", json={"settings": shown})
    assert again.status_code == 200, again.get_json()
    assert service.instantiate("crm-hook").settings["secret"] == SECRET
    new_secret = "a-brand-new-secret-value-42"
    admin.patch("/api/v1/connectors/crm-hook", json={"settings": {"secret": new_secret}})
    assert service.instantiate("crm-hook").settings["secret"] == new_secret


def test_a_mask_is_no_secret_for_a_new_connector(api):
    admin = api("admin")
    answer = admin.post("/api/v1/connectors", json=webhook_body(settings={
        "url": "https://hooks.example.com/abm", "secret": MASK + "cdef"}))
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"] == [
        {"path": "settings.secret", "message": "is a mask, and no secret is stored yet; enter the real value"}]


def test_schema_errors_come_back_per_field(api):
    admin = api("admin")
    answer = admin.post("/api/v1/connectors", json={
        "type": "webhook", "name": "Bad Name!",
        "settings": {"url": "ftp://nope", "secret": "tooshort-SECRET", "colour": "blue", "timeout": -1},
        "rate_limit": "fast", "unit_cost": -2, "default": "email"})
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    by_path = {d["path"]: d["message"] for d in error["details"]}
    # every error at once: the fields around the settings and the settings themselves
    assert set(by_path) == {"name", "rate_limit", "unit_cost", "default", "settings.url", "settings.secret",
                            "settings.colour", "settings.timeout"}, by_path
    answer = admin.post("/api/v1/connectors", json={
        "type": "webhook", "name": "hook",
        "settings": {"url": "ftp://nope", "secret": "tooshort-SECRET", "colour": "blue", "timeout": -1}})
    error = answer.get_json()["error"]
    by_path = {d["path"]: d["message"] for d in error["details"]}
    assert set(by_path) == {"settings.url", "settings.secret", "settings.colour", "settings.timeout"}, by_path
    assert by_path["settings.colour"].startswith("unknown field; known fields: ")
    assert by_path["settings.secret"] == "must have at least 16 characters"
    assert "tooshort-SECRET" not in answer.get_data(as_text=True)
    assert error["message"] == "4 fields are invalid"
    missing = admin.post("/api/v1/connectors", json={"type": "webhook", "name": "hook", "settings": {}})
    assert {d["path"] for d in missing.get_json()["error"]["details"]} == {"settings.url", "settings.secret"}


def test_whole_object_errors_never_quote_a_secret(api):
    answer = api("admin").post("/api/v1/connectors", json={
        "type": "salesforce", "name": "sf", "settings": {"access_token": SECRET}})
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"] == [{"path": "settings", "message": "needs domain or base_url"}]
    assert SECRET not in answer.get_data(as_text=True)


def test_unknown_type_unknown_fields_duplicate_and_immutable(api):
    admin = api("admin")
    answer = admin.post("/api/v1/connectors", json={"type": "fax", "name": "f", "settings": {}})
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"][0]["path"] == "type"
    answer = admin.post("/api/v1/connectors", json={**webhook_body(), "colour": "red"})
    assert answer.status_code == 422
    assert [d["path"] for d in answer.get_json()["error"]["details"]] == ["colour"]
    assert admin.post("/api/v1/connectors", json=webhook_body()).status_code == 201
    dup = admin.post("/api/v1/connectors", json=webhook_body())
    assert dup.status_code == 409 and dup.get_json()["error"]["code"] == "conflict"
    renamed = admin.patch("/api/v1/connectors/crm-hook", json={"type": "slack"})
    assert renamed.status_code == 422 and renamed.get_json()["error"]["details"][0]["path"] == "type"
    not_json = admin.post("/api/v1/connectors", data="type=webhook")
    assert not_json.status_code == 415


def test_one_default_per_channel_and_rate_limit_default(api):
    admin = api("admin")
    assert service.ensure_demo_connectors() == ["outbox", "log"]
    assert service.ensure_demo_connectors() == []
    assert service.defaults() == {"email": "outbox", "ads": "log", "alert": "log", "task": "log",
                                  "webhook": "log"}
    admin.post("/api/v1/connectors", json=webhook_body(default=["alert"]))
    assert service.default_for("alert") == "crm-hook"
    assert admin.get("/api/v1/connectors/log").get_json()["default"] == ["ads", "task", "webhook"]
    service.set_default("alert", "log")
    assert service.default_for("alert") == "log"
    assert admin.get("/api/v1/connectors/crm-hook").get_json()["default"] == []
    log_row = admin.get("/api/v1/connectors/log").get_json()
    assert log_row["rate_limit"] == "10000/1" and log_row["rate_limit_is_default"] is True
    admin.patch("/api/v1/connectors/log", json={"enabled": False})
    assert service.default_for("alert") is None
    assert service.channels_by_name()["outbox"] == ["email", "alert"]


def test_roles(api):
    admin, manager, ae = api("admin"), api("manager"), api("ae")
    admin.post("/api/v1/connectors", json=webhook_body(default="webhook"))
    seen = manager.get("/api/v1/connectors").get_json()["items"]
    assert seen == [{"name": "crm-hook", "type": "webhook", "channels": ["webhook", "alert"]}]
    assert manager.get("/api/v1/connectors/crm-hook").get_json() == seen[0]
    assert manager.post("/api/v1/connectors", json=webhook_body(name="x")).status_code == 403
    assert manager.patch("/api/v1/connectors/crm-hook", json={"enabled": False}).status_code == 403
    assert manager.delete("/api/v1/connectors/crm-hook").status_code == 403
    assert manager.post("/api/v1/connectors/crm-hook/test").status_code == 403
    assert manager.get("/api/v1/connector-types").status_code == 403
    for method, path in (("get", "/api/v1/connectors"), ("get", "/api/v1/connectors/crm-hook"),
                         ("get", "/api/v1/connector-types"), ("delete", "/api/v1/connectors/crm-hook")):
        answer = getattr(ae, method)(path)
        assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "forbidden"

    anonymous = current_app.test_client().get("/api/v1/connectors")
    assert anonymous.status_code == 401


def test_connector_types_mark_secrets_write_only(api):
    types = {t["type"]: t for t in api("admin").get("/api/v1/connector-types").get_json()["items"]}
    assert {"outbox", "log", "webhook"} <= set(types)
    hook = types["webhook"]
    assert hook["schema"]["properties"]["secret"]["writeOnly"] is True
    assert hook["secret_fields"] == ["secret"] and hook["channels"] == ["webhook", "alert"]


def test_pagination(api):
    admin = api("admin")
    for i in range(3):
        admin.post("/api/v1/connectors", json={"type": "log", "name": f"log-{i}", "settings": {}})
    first = admin.get("/api/v1/connectors?limit=2").get_json()
    assert [c["name"] for c in first["items"]] == ["log-0", "log-1"] and first["next_cursor"]
    rest = admin.get(f"/api/v1/connectors?limit=2&cursor={first['next_cursor']}").get_json()
    assert [c["name"] for c in rest["items"]] == ["log-2"] and rest["next_cursor"] is None
    assert admin.get("/api/v1/connectors?limit=0").status_code == 422


def test_operations_are_in_the_openapi_document(api):
    document = api("admin").get("/api/v1/openapi.json").get_json()
    paths = document["paths"]
    assert set(paths["/connectors"]) == {"get", "post"}
    assert set(paths["/connectors/{name}"]) == {"get", "patch", "delete"}
    assert set(paths["/connectors/{name}/test"]) == {"post"} and set(paths["/connector-types"]) == {"get"}
    assert "Connector" in document["components"]["schemas"]


def test_instantiate_builds_the_connector_with_the_product_context_and_its_state(app):
    service.ensure_demo_connectors()
    service.save_state("log", {"cursor": "abc", "lists": {"tier-1": "42"}})
    connector = service.instantiate("log")
    assert connector.name == "log" and connector.context.base_url == app.config["BASE_URL"]
    assert connector.context.outbox_dir == app.config["OUTBOX_DIR"]
    assert connector.context.state == {"cursor": "abc", "lists": {"tier-1": "42"}}
    assert service.rate_limit("log") == (10000, 1)
    service.set_rate_limit("log", "600/60")
    assert service.rate_limit("log") == (600, 60)
    service.set_enabled("log", False)
    with pytest.raises(ConnectorError, match="connector 'log' is disabled"):
        service.instantiate("log")
    with pytest.raises(ConnectorError, match="connector 'nope' not found"):
        service.instantiate("nope")
