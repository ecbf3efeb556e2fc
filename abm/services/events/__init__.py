"""The engagement ingestion path: push to Redis (or a local spool), drain in bulk.

Tracking endpoints, provider webhooks and ``POST /api/v1/events`` call :func:`push`:
one Redis RPUSH of JSON, no database query. When Redis cannot be reached the events
are appended to a spool file under ``instance/spool/`` instead, so the endpoint still
answers and nothing is lost. :func:`drain` (a periodic job, one drainer at a time)
reads a batch from the list and from the spool, writes the events in bulk, matches
them to contacts and accounts, updates scores, flags bounced and unsubscribed
contacts, and tells the engine and the alerting what changed.

The JSON shape of one queued event::

    {"type": "email_click", "occurred_at": "2026-11-23T10:00:00+00:00",
     "email": "...", "account_domain": "...", "account_id": 1, "contact_id": 2,
     "touch_id": 3, "url": "...", "source": "pixel|click|snippet|api|<connector>",
     "dedup_key": "...", "properties": {...}, "visitor_id": "...", "quantity": 1}

Every event carries a ``dedup_key`` (the sender's, or one made at push time), so a
drain that is interrupted after its commit and runs again stores nothing twice.
Events in the Redis list are as durable as Redis is (run it with ``appendonly yes``
in production); events that could not reach Redis are in the spool until drained.

The package's modules: ``validation`` (one API event checked), ``intake`` (push and
spool), ``drainer`` (drain and store), ``resolve`` (whose each event is) and
``insert`` (each stored once).
"""

from abm.services.events.drainer import CRM_TYPES, LOCK_KEY, SUPPRESSING, DrainResult, drain, store
from abm.services.events.intake import QUEUE_KEY, push, queue_length, spool_write, stamp
from abm.services.events.validation import MAX_FUTURE, EventError, parse_time, validate

__all__ = [
    "CRM_TYPES", "LOCK_KEY", "MAX_FUTURE", "QUEUE_KEY", "SUPPRESSING", "DrainResult", "EventError", "drain",
    "parse_time", "push", "queue_length", "spool_write", "stamp", "store", "validate",
]
