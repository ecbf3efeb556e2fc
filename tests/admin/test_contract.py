"""Every registered connector type: its admin form renders, the API takes its example
settings, and the form posted back as a browser would keeps settings and secrets."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from abm.crypto import MASK
from abm.services import connectors as service
from connectors import registry
from tests.admin.helpers import login, settings_form

BASE_URL = "http://127.0.0.1:9"


CANDIDATES = ("ops@vendor.example", BASE_URL + "/x", "1234567890", "acme", "x" * 32)


def _string_for(prop: dict) -> str | None:
    check = Draft202012Validator(prop, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return next((c for c in CANDIDATES if check.is_valid(c)), None)


def minimal_settings(cls) -> dict | None:
    """Valid settings for types without ``example_settings``: the required fields, filled plainly."""
    schema = cls.settings_schema
    required = list(schema.get("required", []))
    for branch in schema.get("anyOf", [])[:1]:
        required += branch.get("required", [])
    out = {}
    for key in required:
        prop = schema["properties"][key]
        if "default" in prop:
            out[key] = prop["default"]
        elif "enum" in prop:
            out[key] = prop["enum"][0]
        elif prop.get("type") == "string":
            out[key] = _string_for(prop)
        elif prop.get("type") in ("integer", "number"):
            out[key] = prop.get("minimum", 1)
        elif prop.get("type") == "boolean":
            out[key] = False
        elif prop.get("type") == "array":
            out[key] = []
        else:
            out[key] = {}
    return out if Draft202012Validator(schema).is_valid(out) else None


def test_every_type_renders_its_form_and_round_trips_its_settings(app, api, make_user):
    admin_api = api("admin")
    page = app.test_client()
    login(page, make_user("admin"))
    types = registry.all_types()
    assert {"outbox", "log", "webhook"} <= set(types)
    without_settings = []
    for type_name, cls in sorted(types.items()):
        form = page.get(f"/connectors/new?type={type_name}")
        assert form.status_code == 200, type_name
        html = form.get_data(as_text=True)
        for key, prop in cls.settings_schema.get("properties", {}).items():
            assert f'name="s.{key}"' in html, (type_name, key)
            if prop.get("writeOnly"):
                assert f'<input type="password" name="s.{key}"' in html, (type_name, key)

        settings = cls.example_settings(BASE_URL) or minimal_settings(cls)
        if settings is None:
            without_settings.append(type_name)
            continue
        name = f"c-{type_name.replace('_', '-')}"
        created = admin_api.post("/api/v1/connectors", json={"type": type_name, "name": name, "settings": settings})
        assert created.status_code == 201, (type_name, created.get_json())
        shown = created.get_json()["settings"]
        for key in cls.secret_fields():
            if key in settings:
                assert shown[key].startswith(MASK) and settings[key] not in created.get_data(as_text=True)
        before = service.instantiate(name).settings

        edit = page.get(f"/connectors/{name}/edit")
        assert edit.status_code == 200, type_name
        posted = page.post(f"/connectors/{name}/edit", data=dict(settings_form(edit.get_data(as_text=True))["fields"]))
        assert posted.status_code == 302, (type_name, posted.get_data(as_text=True)[-2000:])
        after = service.instantiate(name).settings
        for key, value in before.items():
            assert after.get(key) == value, (type_name, key)
    assert without_settings == [], f"types whose settings the contract could not make: {without_settings}"
