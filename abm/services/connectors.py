"""Configured connectors: create, change, remove, test and build them.

A configured connector is a row of ``connectors``: a type from
:mod:`connectors.registry`, a unique name, its settings and its secrets. The type's
``settings_schema`` (JSON Schema) decides both what is valid and what is secret: the
properties marked ``"writeOnly": true`` are stored as one Fernet token
(:mod:`abm.crypto`), never in ``settings``, and come back masked everywhere.

Changes follow JSON merge patch (RFC 7396) on ``settings``: keys left out stay, ``null``
removes a key, and a secret posted back in its masked form keeps the stored secret.
Every change is validated against the schema as a whole; errors come back per field
as ``{"path": "settings.url", "message": "..."}``.

The services raise :class:`abm.errors.ApiError` subclasses; the two a worker may meet
(:class:`UnknownConnector`, :class:`DisabledConnector`) are also
:class:`connectors.base.PermanentError`, so ``except ConnectorError`` catches them.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import current_app
from jsonschema import Draft202012Validator
from sqlalchemy import select

from abm import crypto
from abm.db import db
from abm.errors import ApiError, Conflict, NotFound, ValidationError
from abm.models import AuditLog, ConnectorConfig
from abm.services import clock, paging
from abm.services.paging import SortKey
from connectors import http, registry, versions
from connectors.base import CHANNELS, Connector, ConnectorContext, ConnectorError, PermanentError

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MAX_UNIT_COST = Decimal("99999999")
FIELDS = ("type", "name", "settings", "default", "unit_cost", "rate_limit", "enabled")
MUTABLE = ("settings", "default", "unit_cost", "rate_limit", "enabled")

#: The demo's connectors: outbox serves email, log serves the other outbound channels.
DEMO_CONNECTORS = (
    ("outbox", "outbox", ("email",)),
    ("log", "log", ("ads", "alert", "task", "webhook")),
)


class UnknownConnector(NotFound, PermanentError):
    def __init__(self, name: str):
        NotFound.__init__(self, f"connector {name!r}")


class DisabledConnector(Conflict, PermanentError):
    def __init__(self, name: str):
        Conflict.__init__(self, f"connector {name!r} is disabled; enable it on the Connectors page "
                                "or with PATCH {\"enabled\": true}")


class UnreadableSecrets(ApiError, PermanentError):
    def __init__(self, name: str, reason: str):
        ApiError.__init__(self, 409, f"connector {name!r}: {reason}", code="conflict")


# -- reading ---------------------------------------------------------------------------

def get_config(name: str) -> ConnectorConfig:
    row = db.session.execute(select(ConnectorConfig).where(ConnectorConfig.name == name)).scalar_one_or_none()
    if row is None:
        raise UnknownConnector(name)
    return row


def list_configs(after: str | None = None, limit: int | None = None) -> list[ConnectorConfig]:
    query = select(ConnectorConfig).order_by(ConnectorConfig.name)
    if after:
        query = query.where(ConnectorConfig.name > after)
    if limit:
        query = query.limit(limit)
    return list(db.session.execute(query).scalars())


def page_configs(cursor: str | None, limit: int) -> tuple[list[ConnectorConfig], str | None]:
    """One page of the configured connectors by name (the API's list)."""
    return paging.page(select(ConnectorConfig), [SortKey(ConnectorConfig.name)], "connectors", cursor, limit)


def type_of(config: ConnectorConfig) -> type[Connector] | None:
    """The connector class of a row, or None when its type is no longer installed."""
    try:
        return registry.get(config.type)
    except registry.UnknownConnectorType:
        return None


def channels_of(config: ConnectorConfig) -> list[str]:
    cls = type_of(config)
    return list(cls.channels) if cls else []


def channels_by_name() -> dict[str, list[str]]:
    """Every configured connector (enabled or not) -> the channels it serves."""
    return {row.name: channels_of(row) for row in list_configs()}


def defaults() -> dict[str, str]:
    """channel -> the name of its enabled default connector."""
    found: dict[str, str] = {}
    for row in list_configs():
        if row.enabled:
            for channel in row.default_for or []:
                found.setdefault(channel, row.name)
    return found


def default_for(channel: str) -> str | None:
    return defaults().get(channel)


def secrets_of(config: ConnectorConfig) -> dict[str, Any]:
    try:
        return crypto.decrypt_json(config.secrets)
    except crypto.SecretsError as exc:
        raise UnreadableSecrets(config.name, str(exc)) from None


def rate_limit_of(config: ConnectorConfig) -> tuple[int, int]:
    """(calls, seconds): the configured limit, else the type's documented one."""
    if config.rate_limit:
        match = RATE_RE.match(config.rate_limit)
        if match:
            return int(match.group(1)), int(match.group(2))
    cls = type_of(config)
    return tuple(cls.rate_limit) if cls else (10, 1)


def rate_limit(name: str) -> tuple[int, int]:
    """(calls, seconds) of the connector called ``name``: what the workers pace it at."""
    return rate_limit_of(get_config(name))


# -- serializing -----------------------------------------------------------------------

def masked_settings(config: ConnectorConfig) -> tuple[dict[str, Any], bool]:
    """The settings with every stored secret masked; and whether the secrets were readable."""
    shown = dict(config.settings or {})
    try:
        stored = crypto.decrypt_json(config.secrets)
        readable = True
    except crypto.SecretsError:
        stored, readable = {}, False
    cls = type_of(config)
    for key in (cls.secret_fields() if cls else []):
        if key in stored:
            shown[key] = crypto.mask(stored[key])
        elif not readable and config.secrets:
            shown[key] = crypto.MASK
    for key, value in stored.items():
        shown.setdefault(key, crypto.mask(value))
    return shown, readable


def serialize(config: ConnectorConfig, for_role: str = "admin") -> dict[str, Any]:
    """The connector as an answer: secrets masked; managers see name, type and channels only."""
    channels = channels_of(config)
    if for_role != "admin":
        return {"name": config.name, "type": config.type, "channels": channels}
    cls = type_of(config)
    settings, readable = masked_settings(config)
    calls, seconds = rate_limit_of(config)
    base = current_app.config.get("BASE_URL", "").rstrip("/")
    return {
        "name": config.name,
        "type": config.type,
        "channels": channels,
        "enabled": config.enabled,
        "default": list(config.default_for or []),
        "settings": settings,
        "secret_fields": cls.secret_fields() if cls else [],
        "secrets_readable": readable,
        "unit_cost": float(config.unit_cost or 0),
        "rate_limit": f"{calls}/{seconds}",
        "rate_limit_is_default": not config.rate_limit,
        "webhook_url": f"{base}/hooks/{config.name}" if cls and cls.accepts_webhooks else None,
        "installed": cls is not None,
        "version": version_status(config),
        "created_at": config.created_at.isoformat() if config.created_at else None,
        "updated_at": config.updated_at.isoformat() if config.updated_at else None,
    }


def type_schema(cls: type[Connector]) -> dict[str, Any]:
    return cls.settings_schema or {"type": "object", "properties": {}, "additionalProperties": False}


def describe_type(type_name: str, cls: type[Connector]) -> dict[str, Any]:
    schema = type_schema(cls)
    calls, seconds = cls.rate_limit
    return {
        "type": type_name,
        "title": schema.get("title") or type_name,
        "channels": list(cls.channels),
        "schema": schema,
        "secret_fields": cls.secret_fields(),
        "max_batch": cls.max_batch,
        "rate_limit": f"{calls}/{seconds}",
        "accepts_webhooks": bool(cls.accepts_webhooks),
    }


def describe_types() -> list[dict[str, Any]]:
    return [describe_type(name, cls) for name, cls in sorted(registry.all_types().items())]


# -- validating ------------------------------------------------------------------------

def _field_path(error) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(["settings", *parts])


def _plain(error, secret_fields: set[str]) -> str:
    """A message for one schema error; never the value of a secret field."""
    top = str(error.absolute_path[0]) if error.absolute_path else None
    v, expected = error.validator, error.validator_value
    if v in ("anyOf", "oneOf") and all(isinstance(b, dict) and b.get("required") for b in expected):
        return "needs " + " or ".join(", ".join(b["required"]) for b in expected)
    if isinstance(error.instance, dict | list):  # its message would quote every value, secrets too
        return f"is not valid ({v})"
    if top in secret_fields or v in ("pattern", "format", "enum", "const"):
        if v == "type":
            return f"must be of type {expected}"
        if v == "minLength":
            return f"must have at least {expected} characters"
        if v == "maxLength":
            return f"must have at most {expected} characters"
        if v == "pattern":
            return f"does not have the expected form (pattern {expected})"
        if v == "format":
            return f"is not a valid {expected}"
        if v == "enum":
            return "must be one of: " + ", ".join(map(str, expected))
        if v == "const":
            return f"must be {expected!r}"
        if top in secret_fields:
            return f"is not valid ({v})"
    return error.message


def validate_settings(cls: type[Connector], settings: dict[str, Any]) -> list[dict[str, str]]:
    """Field-level errors of ``settings`` against the type's schema (unknown fields included)."""
    schema = type_schema(cls)
    secret_fields = set(cls.secret_fields())
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    details: list[dict[str, str]] = []
    known = sorted(schema.get("properties", {}))
    for error in sorted(validator.iter_errors(settings), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            props = error.schema.get("properties", {})
            for key in sorted(k for k in error.instance if k not in props):
                prefix = _field_path(error)
                details.append({"path": f"{prefix}.{key}",
                                "message": "unknown field; known fields: " + (", ".join(known) or "none")})
        elif error.validator == "required":
            prefix = _field_path(error)
            for key in error.validator_value:
                if isinstance(error.instance, dict) and key not in error.instance:
                    details.append({"path": f"{prefix}.{key}", "message": "is required"})
        else:
            details.append({"path": _field_path(error), "message": _plain(error, secret_fields)})
    return details


def _parse_default(value: Any, cls: type[Connector] | None, details: list) -> list[str] | None:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
        details.append({"path": "default", "message": "must be a channel name or a list of channel names"})
        return None
    served = cls.channels if cls else CHANNELS
    bad = [c for c in items if c not in served]
    if bad:
        details.append({"path": "default", "message": f"{', '.join(bad)}: this connector serves "
                                                      f"{', '.join(served) or 'no channel'}"})
        return None
    return sorted(set(items), key=list(CHANNELS).index)


def _parse_unit_cost(value: Any, details: list) -> Decimal | None:
    if value is None:
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        details.append({"path": "unit_cost", "message": "must be a number (the cost of one touch)"})
        return None
    try:
        cost = Decimal(str(value).strip())
    except InvalidOperation:
        details.append({"path": "unit_cost", "message": f"{value!r} is not a number"})
        return None
    if not cost.is_finite() or cost < 0 or cost > MAX_UNIT_COST:
        details.append({"path": "unit_cost", "message": f"must be between 0 and {MAX_UNIT_COST}"})
        return None
    return cost.quantize(Decimal("0.0001"))


def parse_rate_limit(value: Any) -> str | None:
    """``"600/60"`` (calls/seconds) normalised, or None for the type's default; ValueError when bad."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    match = RATE_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("must be CALLS/SECONDS, e.g. 600/60 (600 calls a minute)")
    calls, seconds = int(match.group(1)), int(match.group(2))
    if not (1 <= calls <= 1_000_000 and 1 <= seconds <= 86_400):
        raise ValueError("calls must be 1 to 1,000,000 and seconds 1 to 86,400")
    return f"{calls}/{seconds}"


def _merge(cls: type[Connector], stored_settings: dict, stored_secrets: dict, patch: Any,
           details: list) -> tuple[dict, dict] | None:
    """Apply a merge patch to (settings, secrets); masked secrets keep the stored value."""
    if not isinstance(patch, dict):
        details.append({"path": "settings", "message": "must be an object"})
        return None
    secret_fields = set(cls.secret_fields())
    settings, secrets = dict(stored_settings), dict(stored_secrets)
    for key, value in patch.items():
        target = secrets if key in secret_fields else settings
        if value is None:
            target.pop(key, None)
        elif key in secret_fields and crypto.is_masked(value):
            if key not in stored_secrets:
                details.append({"path": f"settings.{key}",
                                "message": "is a mask, and no secret is stored yet; enter the real value"})
        else:
            target[key] = value
    return settings, secrets


# -- writing ---------------------------------------------------------------------------

def _audit(action: str, name: str, actor_id: int | None, details: dict | None = None) -> None:
    db.session.add(AuditLog(actor_id=actor_id, action=action, target_type="connector",
                            target_id=name, details=details or {}))


def _claim_defaults(config: ConnectorConfig, channels: list[str]) -> None:
    """Make ``config`` the only default of each channel in ``channels``."""
    if channels:
        for other in db.session.execute(select(ConnectorConfig).where(ConnectorConfig.id != config.id)).scalars():
            kept = [c for c in (other.default_for or []) if c not in channels]
            if kept != list(other.default_for or []):
                other.default_for = kept
    config.default_for = list(channels)


def _check_fields(data: Any, allowed: tuple[str, ...]) -> dict:
    if not isinstance(data, dict):
        raise ValidationError([{"path": "(body)", "message": "must be a JSON object"}])
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ValidationError([{"path": k, "message": "unknown field; known fields: " + ", ".join(allowed)}
                               for k in unknown])
    return data


def _apply(config: ConnectorConfig, cls: type[Connector], data: dict, details: list,
           stored_secrets: dict) -> dict | None:
    """Validate and apply the mutable fields of ``data``; returns the new secrets (or None on errors)."""
    secrets = stored_secrets
    if "settings" in data or config.id is None:
        before = _hosts({**(config.settings or {}), **stored_secrets})
        merged = _merge(cls, config.settings or {}, stored_secrets, data.get("settings", {}), details)
        if merged is not None:
            settings, secrets = merged
            said = {d["path"] for d in details}
            schema_problems = [p for p in validate_settings(cls, {**settings, **secrets}) if p["path"] not in said]
            details.extend(schema_problems)
            if not schema_problems:
                details.extend(_target_problems({**settings, **secrets}))
            if not details and config.id is not None and _hosts({**settings, **secrets}) != before:
                details.extend(_secrets_to_enter_again(cls, stored_secrets, data.get("settings") or {},
                                                       _hosts({**settings, **secrets})))
            config.settings = settings
    if "default" in data:
        channels = _parse_default(data["default"], cls, details)
        if channels is not None and not details:
            data["_default"] = channels
    if "unit_cost" in data:
        cost = _parse_unit_cost(data["unit_cost"], details)
        if cost is not None:
            config.unit_cost = cost
    if "rate_limit" in data:
        try:
            config.rate_limit = parse_rate_limit(data["rate_limit"])
        except ValueError as exc:
            details.append({"path": "rate_limit", "message": str(exc)})
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            details.append({"path": "enabled", "message": "must be true or false"})
        else:
            config.enabled = data["enabled"]
    return None if details else secrets


def _urls(values: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in values.items() if isinstance(v, str) and v.startswith(("http://", "https://"))}


def _hosts(values: dict[str, Any]) -> set[str]:
    """The origins (scheme, host, port) the connector's URL settings point at."""
    return {http.origin(url) for url in _urls(values).values()}


def _target_problems(values: dict[str, Any]) -> list[dict]:
    """URL settings whose host is not a public address (``connectors.http.check_url``)."""
    problems = []
    for key, url in sorted(_urls(values).items()):
        try:
            http.check_url(url)
        except http.UnsafeTarget as exc:
            problems.append({"path": f"settings.{key}", "message": str(exc)})
    return problems


def _secrets_to_enter_again(cls: type[Connector], stored: dict, patch: Any, hosts: set[str]) -> list[dict]:
    """The stored secrets a patch keeps although the connector now calls other hosts:
    a stored secret is never sent to a new host, so each must be typed again."""
    patch = patch if isinstance(patch, dict) else {}
    kept = [k for k in cls.secret_fields()
            if k in stored and (k not in patch or crypto.is_masked(patch[k]))]
    where = ", ".join(sorted(hosts)) or "the provider's default address"
    return [{"path": f"settings.{k}", "message": f"enter it again: the connector now calls {where}, and a "
                                                 "stored secret is never sent to a new host"} for k in kept]


def create(data: Any, actor_id: int | None = None, commit: bool = True) -> ConnectorConfig:
    """Create a connector from ``{type, name, settings, default?, unit_cost?, rate_limit?, enabled?}``.

    ``commit=False`` only checks (every problem at once, as a ValidationError) and stores nothing."""
    data = dict(_check_fields(data, FIELDS))
    details: list[dict] = []
    type_name, name = data.get("type"), data.get("name")
    cls = None
    if not isinstance(type_name, str) or not type_name:
        details.append({"path": "type", "message": "is required: one of " + ", ".join(sorted(registry.all_types()))})
    else:
        try:
            cls = registry.get(type_name)
        except registry.UnknownConnectorType:
            details.append({"path": "type", "message": f"unknown connector type {type_name!r}; installed: "
                                                       + ", ".join(sorted(registry.all_types()))})
    if not isinstance(name, str) or not NAME_RE.match(name):
        details.append({"path": "name", "message": "is required: lowercase letters, digits, - and _, "
                                                   "starting with a letter or digit, at most 63 characters"})
    if cls is None:
        raise ValidationError(details)
    config = ConnectorConfig(name=name, type=type_name, settings={}, default_for=[], state={},
                             unit_cost=Decimal(0), enabled=True)
    secrets = _apply(config, cls, data, details, {})
    if details:
        raise ValidationError(details)
    if db.session.execute(select(ConnectorConfig.id).where(ConnectorConfig.name == name)).first():
        raise Conflict(f"a connector named {name!r} exists already; choose another name or PATCH it")
    if not commit:
        return config
    config.secrets = crypto.encrypt_json(secrets)
    db.session.add(config)
    db.session.flush()
    if "_default" in data:
        _claim_defaults(config, data["_default"])
    _audit("connector.create", name, actor_id, {"type": type_name, "fields": sorted(data.get("settings") or {})})
    db.session.commit()
    return config


def update(name: str, data: Any, actor_id: int | None = None, commit: bool = True) -> ConnectorConfig:
    """PATCH a connector: only the fields given change (``type`` and ``name`` cannot).
    ``commit=False`` only checks and stores nothing."""
    data = dict(_check_fields(data, FIELDS))
    config = get_config(name)
    fixed = [{"path": k, "message": f"cannot be changed (it is {getattr(config, k)!r}); "
                                    "create a new connector instead"}
             for k in ("type", "name") if k in data and data[k] != getattr(config, k)]
    if fixed:
        raise ValidationError(fixed)
    cls = type_of(config)
    if cls is None:
        raise ValidationError([{"path": "type", "message": f"connector type {config.type!r} is not installed"}])
    details: list[dict] = []
    stored = _readable_secrets(config) if "settings" in data else {}
    secrets = _apply(config, cls, data, details, stored)
    if details or not commit:
        db.session.rollback()
        if details:
            raise ValidationError(details)
        return config
    if "settings" in data:
        config.secrets = crypto.encrypt_json(secrets)
    if "_default" in data:
        _claim_defaults(config, data["_default"])
    changed = sorted(k for k in data if k in MUTABLE)
    _audit("connector.update", name, actor_id, {"fields": changed, "settings": sorted(data.get("settings") or {})})
    db.session.commit()
    return config


def _readable_secrets(config: ConnectorConfig) -> dict[str, Any]:
    """The stored secrets; none when no key reads them, so that new ones can be entered."""
    try:
        return secrets_of(config)
    except UnreadableSecrets:
        return {}


def delete(name: str, actor_id: int | None = None) -> None:
    config = get_config(name)
    db.session.delete(config)
    _audit("connector.delete", name, actor_id, {"type": config.type})
    db.session.commit()


def set_enabled(name: str, enabled: bool, actor_id: int | None = None) -> ConnectorConfig:
    return update(name, {"enabled": bool(enabled)}, actor_id)


def set_default(channel: str, name: str | None, actor_id: int | None = None) -> None:
    """Make ``name`` the default connector of ``channel`` (None: no default)."""
    if channel not in CHANNELS:
        raise ValidationError([{"path": "channel", "message": f"unknown channel {channel!r}; "
                                                               "one of " + ", ".join(CHANNELS)}])
    if name is None:
        for row in list_configs():
            if channel in (row.default_for or []):
                row.default_for = [c for c in row.default_for if c != channel]
        _audit("connector.default", "", actor_id, {"channel": channel, "connector": None})
        db.session.commit()
        return
    config = get_config(name)
    if channel not in channels_of(config):
        raise ValidationError([{"path": "default", "message": f"connector {name!r} does not serve {channel}"}])
    _claim_defaults(config, sorted({*(config.default_for or []), channel}, key=list(CHANNELS).index))
    _audit("connector.default", name, actor_id, {"channel": channel, "connector": name})
    db.session.commit()


def set_unit_cost(name: str, cost: Any, actor_id: int | None = None) -> ConnectorConfig:
    return update(name, {"unit_cost": cost}, actor_id)


def set_rate_limit(name: str, rate: str | None, actor_id: int | None = None) -> ConnectorConfig:
    return update(name, {"rate_limit": rate}, actor_id)


def save_state(name: str, state: dict[str, Any]) -> None:
    """Persist what a connector keeps between runs (cursors, list ids)."""
    config = get_config(name)
    config.state = dict(state)
    db.session.commit()


# -- using -----------------------------------------------------------------------------

def context_for(config: ConnectorConfig) -> ConnectorContext:
    app = current_app
    return ConnectorContext(base_url=app.config.get("BASE_URL", "http://127.0.0.1:5000"),
                            outbox_dir=app.config.get("OUTBOX_DIR"), state=dict(config.state or {}))


def instantiate(name: str, allow_disabled: bool = False) -> Connector:
    """The connector called ``name``, built with its decrypted secrets and the product context."""
    config = get_config(name)
    if not config.enabled and not allow_disabled:
        raise DisabledConnector(name)
    cls = type_of(config)
    if cls is None:
        raise UnreadableSecrets(name, f"its type {config.type!r} is not installed")
    settings = {**(config.settings or {}), **secrets_of(config)}
    return cls(config.name, settings, context_for(config))


def _redact(message: str, secrets: dict[str, Any]) -> str:
    for value in secrets.values():
        text = str(value)
        if len(text) >= 4 and text in message:
            message = message.replace(text, crypto.mask(text))
    return message


def version_status(config: ConnectorConfig) -> dict[str, str] | None:
    """``{"level": ok|warn|fail, "message"}`` for the provider API version the connector
    uses (:mod:`connectors.versions`), None for types without versions."""
    found = versions.check(config.type, config.settings or {}, clock.now().date())
    return {"level": found.level, "message": found.message} if found else None


def version_problems() -> list[tuple[str, dict[str, str]]]:
    """(connector name, status) of every enabled connector whose API version warns or fails."""
    found = []
    for config in list_configs():
        status = version_status(config)
        if config.enabled and status and status["level"] != "ok":
            found.append((config.name, status))
    return found


def test(name: str) -> tuple[bool, str]:
    """Call the connector's own ``test()``; (True, what it said) or (False, a plain reason).

    A provider API version past its sunset fails the test without a call; one that
    sunsets within 60 days passes with the warning in front of what the provider said."""
    version = version_status(get_config(name))
    if version and version["level"] == "fail":
        return False, version["message"]
    warning = f"warning: {version['message']}. " if version and version["level"] == "warn" else ""
    try:
        connector = instantiate(name, allow_disabled=True)
    except UnreadableSecrets as exc:
        return False, exc.message
    secrets = {k: connector.settings[k] for k in connector.secret_fields() if k in connector.settings}
    try:
        message = connector.test()
    except ConnectorError as exc:
        reason = str(exc) or type(exc).__name__
        return False, _redact(reason, secrets)
    except Exception as exc:  # noqa: BLE001 - a test must answer in a sentence, not a trace
        log.error("testing connector %r raised %s", name, type(exc).__name__)
        return False, (f"the test of {name!r} failed unexpectedly ({type(exc).__name__}); "
                       "check its settings, and the server log for details")
    return True, warning + _redact(str(message or "the connector answered"), secrets)


def ensure_demo_connectors() -> list[str]:
    """Create the built-in ``outbox`` and ``log`` connectors when missing; return those created.

    A channel that has a default already keeps it; the others get outbox (email) or log
    (ads, alert, task, webhook).
    """
    created = []
    taken = {c for row in list_configs() for c in (row.default_for or [])}
    for name, type_name, channels in DEMO_CONNECTORS:
        if db.session.execute(select(ConnectorConfig.id).where(ConnectorConfig.name == name)).first():
            continue
        free = [c for c in channels if c not in taken]
        create({"type": type_name, "name": name, "settings": {}, "default": free})
        taken.update(free)
        created.append(name)
    return created
