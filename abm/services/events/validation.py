"""Checking one event of the events API: the fields it may have, normalised."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from abm import ipranges
from abm.db import utcnow
from abm.models import EVENT_TYPES
from abm.normalize import NormalizeError, normalize_domain, normalize_email

MAX_FUTURE = timedelta(minutes=10)


class EventError(ValueError):
    pass


_FIELDS = {"type", "occurred_at", "email", "account_domain", "account_id", "contact_id", "touch_id",
           "url", "source", "dedup_key", "properties", "visitor_id", "crm_id", "quantity", "ip"}


def parse_time(value) -> datetime:
    if not isinstance(value, str):
        raise EventError("occurred_at must be an ISO 8601 time with an offset")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"occurred_at {value!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise EventError("occurred_at needs an offset (e.g. 2026-11-23T10:00:00+00:00)")
    return at.astimezone(UTC)


def validate(raw, allowed_types: Iterable[str] | None = None) -> dict:
    """One API event checked and normalised; EventError says what is wrong."""
    if not isinstance(raw, dict):
        raise EventError("an event must be an object")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise EventError(f"unknown field {unknown[0]!r}")
    etype = raw.get("type")
    if etype not in set(allowed_types or EVENT_TYPES):
        raise EventError(f"unknown event type {etype!r}")
    at = parse_time(raw.get("occurred_at"))
    if at > utcnow() + MAX_FUTURE:
        raise EventError("occurred_at is in the future")
    event = {"type": etype, "occurred_at": at.isoformat()}
    _validate_who(raw, event)
    _validate_details(raw, event)
    return event


def _validate_who(raw: dict, event: dict) -> None:
    """The fields that say whose event it is: email, domain, ids or the visitor's address."""
    for key, normalize in (("email", normalize_email), ("account_domain", normalize_domain)):
        if raw.get(key) is not None:
            try:
                event[key] = normalize(str(raw[key]))
            except NormalizeError as exc:
                raise EventError(f"{key}: {exc}") from None
    for key in ("account_id", "contact_id", "touch_id"):
        if raw.get(key) is not None:
            if not _positive_int(raw[key]):
                raise EventError(f"{key} must be a positive integer")
            event[key] = raw[key]
    if not ({"email", "account_domain", "account_id", "contact_id"} & set(event)) and raw.get("ip") is None:
        raise EventError("an event needs one of email, account_domain, account_id or ip")


def _validate_details(raw: dict, event: dict) -> None:
    """The fields that describe the event: texts, the address, the quantity and free properties."""
    for key, limit in (("url", 4000), ("source", 100), ("dedup_key", 200), ("visitor_id", 100)):
        if raw.get(key) is not None:
            if not isinstance(raw[key], str) or len(raw[key]) > limit:
                raise EventError(f"{key} must be a string of at most {limit} characters")
            event[key] = raw[key]
    if raw.get("ip") is not None:
        if not isinstance(raw["ip"], str) or ipranges.address_value(raw["ip"]) is None:
            raise EventError("ip must be an IPv4 or IPv6 address")
        event["ip"] = raw["ip"]
    if raw.get("quantity") is not None:
        if not _positive_int(raw["quantity"]) or raw["quantity"] > 1_000_000:
            raise EventError("quantity must be a whole number from 1 to 1,000,000")
        event["quantity"] = raw["quantity"]
    if raw.get("properties") is not None:
        if not isinstance(raw["properties"], dict):
            raise EventError("properties must be an object")
        event["properties"] = raw["properties"]


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
