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

The package's modules: ``reading`` (the stored rows, and the errors above),
``serializing`` (answers), ``validating`` (field errors), ``writing`` (changes,
audited) and ``using`` (a connector built and tested).
"""

from abm.services.connectors.reading import (
    RATE_RE,
    DisabledConnector,
    UnknownConnector,
    UnreadableSecrets,
    channels_by_name,
    channels_of,
    default_for,
    defaults,
    get_config,
    list_configs,
    page_configs,
    rate_limit,
    rate_limit_of,
    secrets_of,
    type_of,
    version_problems,
    version_status,
)
from abm.services.connectors.serializing import describe_type, describe_types, masked_settings, serialize
from abm.services.connectors.using import context_for, instantiate, test
from abm.services.connectors.validating import MAX_UNIT_COST, parse_rate_limit, type_schema, validate_settings
from abm.services.connectors.writing import (
    DEMO_CONNECTORS,
    FIELDS,
    MUTABLE,
    NAME_RE,
    create,
    delete,
    ensure_demo_connectors,
    save_state,
    set_default,
    set_enabled,
    set_rate_limit,
    set_unit_cost,
    update,
)

__all__ = [
    "DEMO_CONNECTORS", "FIELDS", "MAX_UNIT_COST", "MUTABLE", "NAME_RE", "RATE_RE", "DisabledConnector",
    "UnknownConnector", "UnreadableSecrets", "channels_by_name", "channels_of", "context_for", "create",
    "default_for", "defaults", "delete", "describe_type", "describe_types", "ensure_demo_connectors", "get_config",
    "instantiate", "list_configs", "masked_settings", "page_configs", "parse_rate_limit", "rate_limit",
    "rate_limit_of", "save_state", "secrets_of", "serialize", "set_default", "set_enabled", "set_rate_limit",
    "set_unit_cost", "test", "type_of", "type_schema", "update", "validate_settings", "version_problems",
    "version_status",
]
