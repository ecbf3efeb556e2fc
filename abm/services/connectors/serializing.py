"""Configured connectors and installed types as answers: secrets masked everywhere."""

from __future__ import annotations

from typing import Any

from flask import current_app

from abm import crypto
from abm.models import ConnectorConfig
from abm.services.connectors.reading import channels_of, rate_limit_of, type_of, version_status
from abm.services.connectors.validating import type_schema
from connectors import registry
from connectors.base import Connector


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

