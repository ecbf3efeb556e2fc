"""Checking a connector's fields against its type: settings (JSON Schema, merge patch,
masked secrets, public hosts), default channels, unit cost and rate limit. Errors are
per field: ``{"path": "settings.url", "message": "..."}``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from jsonschema import Draft202012Validator

from abm import crypto
from abm.errors import ValidationError
from abm.models import ConnectorConfig
from abm.services.connectors.reading import RATE_RE
from connectors import http
from connectors.base import CHANNELS, Connector

MAX_UNIT_COST = Decimal("99999999")


def type_schema(cls: type[Connector]) -> dict[str, Any]:
    return cls.settings_schema or {"type": "object", "properties": {}, "additionalProperties": False}


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


def check_fields(data: Any, allowed: tuple[str, ...]) -> dict:
    """``data`` when it is an object of ``allowed`` fields only; else the ValidationError naming the others."""
    if not isinstance(data, dict):
        raise ValidationError([{"path": "(body)", "message": "must be a JSON object"}])
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ValidationError([{"path": k, "message": "unknown field; known fields: " + ", ".join(allowed)}
                               for k in unknown])
    return data


def apply_changes(config: ConnectorConfig, cls: type[Connector], data: dict, details: list,
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

