"""Configured connectors as stored: found by name, their type, channels, defaults,
secrets, rate limits and provider API versions; and the errors a worker may meet."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from abm import crypto
from abm.db import db
from abm.errors import ApiError, Conflict, NotFound
from abm.models import ConnectorConfig
from abm.services import clock, paging
from abm.services.paging import SortKey
from connectors import registry, versions
from connectors.base import Connector, PermanentError

RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


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

