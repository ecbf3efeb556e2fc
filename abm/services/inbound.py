"""Events that connectors bring in (provider webhooks, CRM changes), handed to ingestion.

:func:`receive` turns each :class:`connectors.base.InboundEvent` into the JSON of the
engagement queue and pushes the lot with one Redis ``RPUSH`` onto the list
``abm:events`` (:func:`abm.services.events.push`, which spools to a file under
``instance/spool/`` when Redis is down). The drain job (:func:`abm.services.events.drain`)
writes them to the database; nothing here touches it, so a webhook answers fast.

One queued event, as JSON (keys whose value would be null are left out)::

    {"type": "email_open",                      # engagement type, or stage_changed / opportunity
     "occurred_at": "2026-11-23T10:00:00+00:00", # ISO 8601 with an offset
     "email": "ana@acme.example",               # who: email, account_domain and/or crm_id
     "account_domain": "acme.example",
     "crm_id": "1234",
     "url": "https://...",                      # clicks
     "touch_id": 42,                            # the touch it answers, when the provider echoes it
     "dedup_key": "sendgrid-main:evt-123",      # "<connector>:<provider's event id>"
     "source": "sendgrid-main",                 # the connector's name
     "properties": {...}}                       # the rest, as the connector parsed it

``dedup_key`` is prefixed with the connector's name so that two providers' ids never
collide; events the provider gave no id get one at push time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from abm.services import events as events_service
from connectors.base import InboundEvent

_OPTIONAL = ("email", "account_domain", "crm_id", "url", "touch_id")


def to_queue_json(connector_name: str, event: InboundEvent) -> dict[str, Any]:
    """The queued form of one inbound event (see the module docstring)."""
    raw = asdict(event)
    item: dict[str, Any] = {"type": raw["type"], "occurred_at": raw["occurred_at"], "source": connector_name}
    for key in _OPTIONAL:
        if raw.get(key) not in (None, ""):
            item[key] = raw[key]
    if raw.get("dedup_key"):
        item["dedup_key"] = f"{connector_name}:{raw['dedup_key']}"[:200]
    item["properties"] = dict(raw.get("properties") or {})
    return item


def receive(connector_name: str, events: Iterable[InboundEvent]) -> int:
    """Queue ``events`` from the connector ``connector_name`` for the drain; return how many."""
    items = [to_queue_json(connector_name, e) for e in events]
    if items:
        events_service.push(items)
    return len(items)
