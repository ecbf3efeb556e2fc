"""The registry of connector types: the built-in ones and any installed package's.

Third-party connector types are installed as packages that declare an entry point in
the ``abm.connectors`` group, pointing at a :class:`connectors.base.Connector`
subclass::

    [project.entry-points."abm.connectors"]
    pipedrive = "abm_pipedrive:PipedriveConnector"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from connectors.base import CHANNELS, Connector

ENTRY_POINT_GROUP = "abm.connectors"

#: type name -> "module:Class" for the built-in connectors, imported lazily.
BUILTIN = {
    "outbox": "connectors.outbox:OutboxConnector",
    "log": "connectors.log:LogConnector",
    "smtp": "connectors.smtp:SmtpConnector",
    "sendgrid": "connectors.sendgrid:SendGridConnector",
    "slack": "connectors.slack:SlackConnector",
    "webhook": "connectors.webhook:WebhookConnector",
    "linkedin": "connectors.linkedin:LinkedInConnector",
    "meta": "connectors.meta:MetaConnector",
    "google_ads": "connectors.google_ads:GoogleAdsConnector",
    "hubspot": "connectors.hubspot:HubSpotConnector",
    "salesforce": "connectors.salesforce:SalesforceConnector",
    "ipinfo": "connectors.ipinfo:IpInfoConnector",
    "g2": "connectors.g2:G2IntentConnector",
}

_cache: dict[str, type[Connector]] | None = None


class UnknownConnectorType(KeyError):
    pass


def _load(ref: str) -> type[Connector]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _check(cls: type[Connector], name: str) -> type[Connector]:
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise TypeError(f"connector type {name!r} is not a Connector subclass")
    bad = [c for c in cls.channels if c not in CHANNELS]
    if bad:
        raise TypeError(f"connector type {name!r} declares unknown channels {bad}")
    return cls


def all_types() -> dict[str, type[Connector]]:
    """Every available connector type by name; built-ins whose module is missing are left out."""
    global _cache
    if _cache is None:
        found: dict[str, type[Connector]] = {}
        for name, ref in BUILTIN.items():
            try:
                found[name] = _check(_load(ref), name)
            except ModuleNotFoundError:
                continue
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name not in found:
                found[ep.name] = _check(ep.load(), ep.name)
        _cache = found
    return dict(_cache)


def get(type_name: str) -> type[Connector]:
    types = all_types()
    if type_name not in types:
        raise UnknownConnectorType(
            f"unknown connector type {type_name!r} (known: {', '.join(sorted(types))})"
        )
    return types[type_name]


def reset_cache() -> None:
    global _cache
    _cache = None
