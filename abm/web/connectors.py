"""The Connectors admin page: list, create and edit from the type's JSON Schema, test.

Admins do everything here. Managers may open the list, which shows them each
connector's name, type and channels only (as the API does); every other page and
action answers them, and AEs, with the 403 page.

The form is rendered from the type's ``settings_schema``: one input per property,
secrets (``writeOnly``) as password inputs that show the mask of the stored value.
Posting a form back is a merge patch of the settings: a secret left as its mask (or
empty) keeps the stored secret, an emptied ordinary field is removed.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from abm import crypto
from abm.errors import ApiError, ValidationError
from abm.labels import field_label, rate_label, type_label
from abm.services import connectors as service
from abm.web._access import role_required, safe_next
from connectors import registry
from connectors.base import CHANNELS, Connector

bp = Blueprint("connectors", __name__, url_prefix="/connectors")

PREFIX = "s."


# -- the form, from the JSON Schema ----------------------------------------------------

def _label(key: str, prop: dict) -> str:
    return prop.get("title") or field_label(key)


def _rate(text: str | None) -> str:
    """"10 calls per second" for the stored "10/1"."""
    calls, _, seconds = (text or "").partition("/")
    return rate_label(int(calls), int(seconds)) if calls.isdigit() and seconds.isdigit() else (text or "")


def _labelled(item: dict) -> dict:
    return {**item, "type_label": type_label(item["type"], registry_title(item["type"])),
            "rate_label": _rate(item.get("rate_limit"))}


def registry_title(type_name: str) -> str | None:
    try:
        return service.type_schema(registry.get(type_name)).get("title")
    except registry.UnknownConnectorType:
        return None


def _kind(prop: dict) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if prop.get("writeOnly"):
        return "password"
    if "enum" in prop:
        return "select"
    if kind == "boolean":
        return "checkbox"
    if kind in ("integer", "number"):
        return kind
    if kind == "array" and (prop.get("items") or {}).get("type") == "string":
        return "lines"
    if kind in ("array", "object"):
        return "json"
    if prop.get("x-multiline") or "PEM" in prop.get("description", ""):
        return "multiline"
    if prop.get("format") == "email":
        return "email"
    if prop.get("format") in ("uri", "url"):
        return "url"
    return "text"


def _shown(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "lines":
        return "\n".join(map(str, value)) if isinstance(value, list) else str(value)
    if kind == "json":
        return json.dumps(value, indent=2, sort_keys=True)
    return str(value)


def form_fields(cls: type[Connector], values: dict[str, Any], masked: dict[str, str]) -> list[dict[str, Any]]:
    """The inputs of the settings form: one per schema property, in the schema's order."""
    schema = service.type_schema(cls)
    required = set(schema.get("required", []))
    fields = []
    for key, prop in schema.get("properties", {}).items():
        kind = _kind(prop)
        default = prop.get("default")
        value = masked.get(key, "") if kind == "password" else values.get(key)
        fields.append({
            "key": key, "input": PREFIX + key, "label": _label(key, prop), "kind": kind,
            "required": key in required, "description": prop.get("description", ""),
            "options": [str(o) for o in prop.get("enum", [])],
            "checked": bool(value if value is not None else default) if kind == "checkbox" else False,
            "value": value if kind == "password" else _shown(kind, value),
            "placeholder": "" if default is None or kind == "checkbox" else _shown(kind, default),
            "stored": kind == "password" and key in masked,
        })
    return fields


def _number(raw: str, kind: str) -> Any:
    try:
        return int(raw) if kind == "integer" else float(raw)
    except ValueError:
        return raw  # the schema check says what is wrong with it


def settings_from_form(cls: type[Connector], form) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A merge patch of the settings from a posted form, and the errors found reading it."""
    patch: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for key, prop in service.type_schema(cls).get("properties", {}).items():
        kind, raw = _kind(prop), form.get(PREFIX + key, "")
        if kind == "checkbox":
            patch[key] = PREFIX + key in form
        elif kind == "password":
            if raw and not crypto.is_masked(raw):
                patch[key] = raw
        elif not raw.strip():
            patch[key] = None
        elif kind in ("integer", "number"):
            patch[key] = _number(raw.strip(), kind)
        elif kind == "multiline":
            patch[key] = raw.replace("\r\n", "\n").strip()
        elif kind == "lines":
            patch[key] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif kind == "json":
            try:
                patch[key] = json.loads(raw)
            except ValueError as exc:
                errors.append({"path": f"settings.{key}", "message": f"is not valid JSON ({exc.msg}, line {exc.lineno})"})
        else:
            patch[key] = raw.strip()
    return patch, errors


def _errors_by_field(details: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for d in details:
        path = d.get("path", "")
        if path.startswith("settings."):
            field = PREFIX + path[len("settings."):].split(".")[0]
            message = d["message"] if path.count(".") == 1 else f"{path[len('settings.'):]}: {d['message']}"
        else:
            field, message = path or "(form)", d["message"]
        found.setdefault(field, []).append(message)
    return found


def _data_from_form(cls: type[Connector]) -> tuple[dict[str, Any], list[dict]]:
    settings, errors = settings_from_form(cls, request.form)
    data = {
        "settings": settings,
        "default": request.form.getlist("default"),
        "unit_cost": request.form.get("unit_cost", "").strip() or 0,
        "rate_limit": request.form.get("rate_limit", "").strip() or None,
    }
    return data, errors


def _render_form(cls: type[Connector], type_name: str, config=None, values=None, errors=None,
                 name: str = "", status: int = 200, form_extra: dict | None = None):
    masked, _readable = service.masked_settings(config) if config is not None else ({}, True)
    stored = dict(config.settings or {}) if config is not None else {}
    secret_masks = {k: v for k, v in masked.items() if k in cls.secret_fields()}
    extra = form_extra or {}
    return render_template(
        "web/connectors/form.html",
        cls=cls, type_name=type_name, config=config, name=name,
        fields=form_fields(cls, values if values is not None else stored, secret_masks),
        errors=errors or {}, channels=list(cls.channels),
        defaults=extra.get("default", list(config.default_for or []) if config is not None else []),
        unit_cost=extra.get("unit_cost", f"{float(config.unit_cost or 0):g}" if config is not None else ""),
        rate_limit=extra.get("rate_limit", (config.rate_limit or "") if config is not None else ""),
        type_rate="{}/{}".format(*cls.rate_limit), type_rate_label=rate_label(*cls.rate_limit),
        type_label=type_label(type_name, service.type_schema(cls).get("title")),
        info=service.serialize(config, "admin") if config is not None else None,
    ), status


def _type_or_404(type_name: str | None) -> type[Connector]:
    try:
        return registry.get(type_name or "")
    except registry.UnknownConnectorType:
        abort(404, description=f"no connector type {type_name!r} is installed")


def _config_or_404(name: str):
    try:
        return service.get_config(name)
    except service.UnknownConnector:
        abort(404, description=f"no connector named {name!r}")


def _types() -> list[dict]:
    return [{**t, "title": type_label(t["type"], t["schema"].get("title")), "rate_label": _rate(t["rate_limit"])}
            for t in service.describe_types()]


# -- pages -----------------------------------------------------------------------------

@bp.get("/")
@role_required("admin", "manager")
def index():
    rows = service.list_configs()
    if current_user.role != "admin":
        return render_template("web/connectors/index.html",
                               rows=[_labelled(service.serialize(r, "manager")) for r in rows], admin=False)
    items = [_labelled(service.serialize(r, "admin")) for r in rows]
    serving = {c: [i["name"] for i in items if c in i["channels"]] for c in CHANNELS}
    return render_template("web/connectors/index.html", rows=items, admin=True, channels=CHANNELS,
                           serving=serving, defaults=service.defaults(), types=_types())


@bp.route("/new", methods=["GET", "POST"])
@role_required("admin")
def new():
    type_name = request.values.get("type")
    if not type_name:
        return render_template("web/connectors/types.html", types=_types())
    cls = _type_or_404(type_name)
    if request.method == "GET":
        return _render_form(cls, type_name)
    name = request.form.get("name", "").strip()
    data, errors = _data_from_form(cls)
    try:  # the service checks the rest even when the form had unreadable fields: every error at once
        config = service.create({"type": type_name, "name": name, **data}, actor_id=current_user.id,
                                commit=not errors)
    except ValidationError as exc:
        errors = _together(errors, exc.details)
    except ApiError as exc:
        errors = [*errors, {"path": "name", "message": exc.message}]
    else:
        if not errors:
            flash(f"Connector {config.name} created. Test it to see that it can reach its provider.", "success")
            return redirect(url_for("connectors.edit", name=config.name))
    return _render_form(cls, type_name, values=_values(data["settings"]), errors=_errors_by_field(errors),
                        name=name, status=422, form_extra=_extra(data))


def _together(form_errors: list[dict], service_errors: list[dict]) -> list[dict]:
    """The form's own errors (unreadable JSON) and the service's, one message a field at most
    from the service where the form already said what is wrong."""
    said = {e["path"] for e in form_errors}
    return [*form_errors, *(e for e in service_errors if e.get("path") not in said)]


def _values(settings_patch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings_patch.items() if v is not None}


def _extra(data: dict[str, Any]) -> dict[str, Any]:
    return {"default": data["default"], "unit_cost": str(data["unit_cost"] or ""),
            "rate_limit": data["rate_limit"] or ""}


@bp.route("/<name>/edit", methods=["GET", "POST"])
@role_required("admin")
def edit(name: str):
    config = _config_or_404(name)
    cls = service.type_of(config)
    if cls is None:
        abort(404, description=f"connector {name!r} has the type {config.type!r}, which is not installed")
    if request.method == "GET":
        return _render_form(cls, config.type, config=config, name=name)
    data, errors = _data_from_form(cls)
    try:
        service.update(name, data, actor_id=current_user.id, commit=not errors)
    except ValidationError as exc:
        errors = _together(errors, exc.details)
    else:
        if not errors:
            flash(f"Connector {name} saved.", "success")
            return redirect(url_for("connectors.edit", name=name))
    config = _config_or_404(name)
    values = {**(config.settings or {}), **_values(data["settings"])}
    return _render_form(cls, config.type, config=config, values=values, errors=_errors_by_field(errors),
                        name=name, status=422, form_extra=_extra(data))


@bp.post("/<name>/test")
@role_required("admin")
def test(name: str):
    _config_or_404(name)
    ok, message = service.test(name)
    flash(f"Test of {name}: {'OK' if ok else 'failed'}: {message}", "success" if ok else "error")
    return redirect(safe_next(request.form.get("next")) or url_for("connectors.index"))


@bp.post("/<name>/enabled")
@role_required("admin")
def set_enabled(name: str):
    _config_or_404(name)
    enabled = request.form.get("enabled") == "1"
    service.set_enabled(name, enabled, actor_id=current_user.id)
    flash(f"Connector {name} {'enabled' if enabled else 'disabled'}.", "success")
    return redirect(url_for("connectors.index"))


@bp.post("/<name>/delete")
@role_required("admin")
def delete(name: str):
    _config_or_404(name)
    service.delete(name, actor_id=current_user.id)
    flash(f"Connector {name} deleted.", "success")
    return redirect(url_for("connectors.index"))


@bp.post("/defaults")
@role_required("admin")
def defaults():
    problems = []
    for channel in CHANNELS:
        field = f"default.{channel}"
        if field not in request.form:
            continue
        chosen = request.form.get(field) or None
        try:
            service.set_default(channel, chosen, actor_id=current_user.id)
        except ApiError as exc:
            problems.append(f"{channel}: {exc.details[0]['message'] if exc.details else exc.message}")
    if problems:
        flash("Some defaults were not changed: " + "; ".join(problems), "error")
    else:
        flash("Default connectors saved.", "success")
    return redirect(url_for("connectors.index"))
