"""The Connectors admin page: create and edit from the schema, masks, defaults, roles, CSRF."""

from __future__ import annotations

import re

import pytest
from flask import g

from abm.crypto import MASK
from abm.services import connectors as service
from tests.admin.helpers import forms_of, login, settings_form

SECRET = "page-secret-0123456789-XYZW"


@pytest.fixture
def admin_client(app, make_user):
    client = app.test_client()
    login(client, make_user("admin"))
    return client


def create_webhook(client, **overrides):
    form = {"name": "hook", "s.url": "https://hooks.example.com/in", "s.secret": SECRET, "s.timeout": "",
            "unit_cost": "0.5", "rate_limit": "", **overrides}
    return client.post("/connectors/new?type=webhook", data=form)


def test_create_and_edit_through_the_form(admin_client):
    page = admin_client.get("/connectors/new?type=webhook")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert re.search(r'<input type="password" name="s.secret"', html)
    assert 'name="s.url"' in html and 'name="s.timeout"' in html

    created = create_webhook(admin_client, default="webhook")
    assert created.status_code == 302 and created.headers["Location"].endswith("/connectors/hook/edit")
    config = service.get_config("hook")
    assert config.default_for == ["webhook"] and float(config.unit_cost) == 0.5

    edit = admin_client.get("/connectors/hook/edit").get_data(as_text=True)
    assert SECRET not in edit
    form = settings_form(edit)
    fields = dict(form["fields"])
    assert fields["s.secret"] == MASK + SECRET[-4:]
    assert fields["s.url"] == "https://hooks.example.com/in"

    moved = admin_client.post("/connectors/hook/edit", data={**fields, "s.url": "https://elsewhere.example.com/in"})
    assert moved.status_code == 422 and "a stored secret is never sent to a new host" in moved.get_data(as_text=True)
    fields["s.url"] = "https://hooks.example.com/v2/in"
    saved = admin_client.post("/connectors/hook/edit", data=fields)
    assert saved.status_code == 302
    connector = service.instantiate("hook")
    assert connector.settings["secret"] == SECRET  # the mask posted back kept it (same host)
    assert connector.settings["url"] == "https://hooks.example.com/v2/in"
    assert "Connector hook saved." in admin_client.get("/connectors/hook/edit").get_data(as_text=True)


def test_form_errors_are_shown_by_their_field(admin_client):
    answer = create_webhook(admin_client, **{"s.url": "not a url", "s.secret": "short", "rate_limit": "often"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "short" not in re.findall(r'name="s.secret" value="([^"]*)"', html)[0]
    for field, message in (("s-secret", "must have at least 16 characters"),
                           ("rate_limit", "must be CALLS/SECONDS")):
        block = re.search(rf'<ul class="field-errors" id="err-{field}">(.*?)</ul>', html, re.S)
        assert block and message in block.group(1), field
    assert 'value="not a url"' in html  # what was typed stays, except secrets


def test_list_toggle_defaults_delete_and_test(admin_client):
    service.ensure_demo_connectors()
    create_webhook(admin_client)
    html = admin_client.get("/connectors/").get_data(as_text=True)
    assert "Test connection" in html and 'id="connector-hook"' in html

    assert admin_client.post("/connectors/log/enabled", data={"enabled": "0"}).status_code == 302
    assert service.get_config("log").enabled is False
    assert "Connector log disabled." in admin_client.get("/connectors/").get_data(as_text=True)

    admin_client.post("/connectors/defaults", data={"default.alert": "hook", "default.email": ""})
    assert service.get_config("hook").default_for == ["alert"]
    assert service.default_for("email") is None

    tested = admin_client.post("/connectors/outbox/test", data={}, follow_redirects=True)
    assert "Test of outbox: OK: emails will be written to" in tested.get_data(as_text=True)

    assert admin_client.post("/connectors/hook/delete").status_code == 302
    assert "hook" not in service.channels_by_name()


def test_manager_sees_names_and_channels_only_and_ae_is_refused(app, make_user):
    service.create({"type": "webhook", "name": "hook",
                    "settings": {"url": "https://hooks.example.com/in", "secret": SECRET}, "unit_cost": 3})
    manager = app.test_client()
    login(manager, make_user("manager"))
    html = manager.get("/connectors/").get_data(as_text=True)
    assert "hook" in html and "webhook, alert" in html
    assert "Test connection" not in html and "hooks.example.com" not in html and MASK not in html
    for path in ("/connectors/new", "/connectors/new?type=webhook", "/connectors/hook/edit"):
        assert manager.get(path).status_code == 403
    assert manager.post("/connectors/hook/delete").status_code == 403
    assert service.get_config("hook")
    ae = app.test_client()
    login(ae, make_user("ae"))
    assert ae.get("/connectors/").status_code == 403

    g.pop("_login_user", None)
    assert app.test_client().get("/connectors/").status_code == 302  # to the login page


def test_every_form_carries_a_csrf_token_and_a_post_without_one_is_refused(app, admin_client):
    app.config["WTF_CSRF_ENABLED"] = True
    service.ensure_demo_connectors()
    for path in ("/connectors/", "/connectors/outbox/edit", "/connectors/new?type=webhook"):
        for form in forms_of(admin_client.get(path).get_data(as_text=True)):
            if form["method"].lower() == "post":
                assert "csrf_token" in dict(form["fields"]), (path, form["action"])
    refused = admin_client.post("/connectors/log/enabled", data={"enabled": "0"})
    assert refused.status_code == 400
    assert service.get_config("log").enabled is True
    page = admin_client.get("/connectors/").get_data(as_text=True)
    toggle = next(f for f in forms_of(page) if f["action"] == "/connectors/log/enabled")
    assert admin_client.post(toggle["action"], data=dict(toggle["fields"])).status_code == 302
    assert service.get_config("log").enabled is False


def test_an_empty_form_shows_every_error_at_once_with_human_labels(admin_client):
    types = admin_client.get("/connectors/new").get_data(as_text=True)
    assert ">Google Ads</a>" in types and "10 calls per second" in types and "300 calls per minute" in types
    page = admin_client.get("/connectors/new?type=smtp").get_data(as_text=True)
    assert "CA certificate" in page and "Ca certificate" not in page
    assert "1000/1 is 1,000 calls per second" in page

    answer = admin_client.post("/connectors/new?type=smtp", data={"name": "", "s.port": "", "rate_limit": "often"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    flagged = set(re.findall(r'<ul class="field-errors" id="err-([\w.-]+)">', html))
    assert {"name", "s-host", "s-from_email", "rate_limit"} <= flagged, flagged  # not only the name
    # a field the form cannot read (bad JSON) is reported with the others, not instead of them
    answer = admin_client.post("/connectors/new?type=hubspot", data={"name": "Bad Name", "s.stage_map": "{not json"})
    html = answer.get_data(as_text=True)
    flagged = set(re.findall(r'<ul class="field-errors" id="err-([\w.-]+)">', html))
    assert {"name", "s-stage_map", "s-access_token"} <= flagged, flagged
    assert "is not valid JSON" in html
