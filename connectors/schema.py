"""JSON-schema fragments and settings readers shared by the HTTP connectors.

Every HTTP connector has a ``base_url`` (defaulting to the provider's real one, so a
test server can stand in), a connect and a read timeout, and secrets marked
``writeOnly``. These helpers keep those declarations identical across modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.http import DEFAULT_TIMEOUT


def secret(description: str) -> dict[str, Any]:
    """A required-looking secret string: stored encrypted, shown masked."""
    return {"type": "string", "minLength": 1, "writeOnly": True, "description": description}


def base_url(default: str) -> dict[str, Any]:
    return {
        "type": "string",
        "default": default,
        "pattern": "^https?://",
        "description": "The provider's API root; change it only to point at a test server.",
    }


TIMEOUT_PROPERTIES: dict[str, Any] = {
    "connect_timeout": {
        "type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": DEFAULT_TIMEOUT[0],
        "description": "Seconds to wait for the connection.",
    },
    "read_timeout": {
        "type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": DEFAULT_TIMEOUT[1],
        "description": "Seconds to wait for each answer.",
    },
}

STAGE_MAP: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "string", "minLength": 1},
    "default": {},
    "description": "CRM stage or lifecycle value -> workspace stage; values not listed are left unmapped.",
}


def timeout_of(settings: Mapping[str, Any]) -> tuple[float, float]:
    """(connect, read) seconds from the settings, defaulting to the helper's."""
    return (
        float(settings.get("connect_timeout") or DEFAULT_TIMEOUT[0]),
        float(settings.get("read_timeout") or DEFAULT_TIMEOUT[1]),
    )


def object_schema(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    """A closed settings object (unknown keys are errors) with the timeouts added."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {**properties, **TIMEOUT_PROPERTIES},
        "required": required,
        "additionalProperties": False,
        **extra,
    }
