"""Creating, changing and removing configured connectors, each change audited."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from abm import crypto
from abm.db import db
from abm.errors import Conflict, ValidationError
from abm.models import AuditLog, ConnectorConfig
from abm.services.connectors.reading import (
    UnreadableSecrets,
    channels_of,
    get_config,
    list_configs,
    secrets_of,
    type_of,
)
from abm.services.connectors.validating import apply_changes, check_fields
from connectors import registry
from connectors.base import CHANNELS

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
FIELDS = ("type", "name", "settings", "default", "unit_cost", "rate_limit", "enabled")
MUTABLE = ("settings", "default", "unit_cost", "rate_limit", "enabled")

#: The demo's connectors: outbox serves email, log serves the other outbound channels.
DEMO_CONNECTORS = (
    ("outbox", "outbox", ("email",)),
    ("log", "log", ("ads", "alert", "task", "webhook")),
)


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


def create(data: Any, actor_id: int | None = None, commit: bool = True) -> ConnectorConfig:
    """Create a connector from ``{type, name, settings, default?, unit_cost?, rate_limit?, enabled?}``.

    ``commit=False`` only checks (every problem at once, as a ValidationError) and stores nothing."""
    data = dict(check_fields(data, FIELDS))
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
    secrets = apply_changes(config, cls, data, details, {})
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
    data = dict(check_fields(data, FIELDS))
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
    secrets = apply_changes(config, cls, data, details, stored)
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
