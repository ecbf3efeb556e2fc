"""Using a configured connector: built with its decrypted secrets, and tested."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from abm import crypto
from abm.models import ConnectorConfig
from abm.services.connectors.reading import (
    DisabledConnector,
    UnreadableSecrets,
    get_config,
    secrets_of,
    type_of,
    version_status,
)
from connectors.base import Connector, ConnectorContext, ConnectorError

log = logging.getLogger(__name__)


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

