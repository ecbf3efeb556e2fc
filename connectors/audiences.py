"""What the ad-audience connectors (linkedin, meta, google_ads) share.

An ``audience`` touch says which list and what to do (``payload``: ``list``, the list
name, and ``action``, ``add`` or ``remove``). The people it concerns are the touch's
``contact`` (a contact-level touch) and the contacts the account dict carries::

    account = {
        "name": "Acme Corp", "domain": "acme.com", "country": "US",
        "contacts": [
            {"email": "ada@acme.com", "first_name": "Ada", "last_name": "L", "title": "CTO",
             "country": "US"},
            {"email_sha256": "<64 lowercase hex>"},     # already hashed upstream
        ],
    }

Emails are trimmed, lowercased and SHA-256 hashed here, before anything leaves the
process: no ad connector ever sends or logs an unhashed email. Contacts with an
``erased_at`` are left out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import Touch, TouchResult, normalize_email

HEX64 = re.compile(r"^[0-9a-f]{64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ACTIONS = ("add", "remove")


@dataclass(frozen=True)
class Person:
    """One contact of a touch, with the email already hashed."""

    touch_id: int
    email_sha256: str


def hashed_email(contact: Mapping[str, Any], normalize: Callable[[str], str] = normalize_email) -> str | None:
    """The contact's SHA-256 email (64 lowercase hex), or None when it has no usable one.

    ``normalize`` is the provider's own normalisation before hashing (trim and lowercase
    by default; Meta also strips dots and control characters at the ends)."""
    pre = contact.get("email_sha256")
    if isinstance(pre, str) and HEX64.match(pre.strip().lower()):
        return pre.strip().lower()
    email = contact.get("email")
    if not isinstance(email, str):
        return None
    normalized = normalize(email)
    if not _EMAIL.match(normalized):
        return None
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def people_of(touch: Touch, normalize: Callable[[str], str] = normalize_email) -> list[Person]:
    """The touch's contact and its account's contacts, hashed, each email once."""
    contacts: list[Mapping[str, Any]] = []
    if touch.contact:
        contacts.append(touch.contact)
    listed = touch.account.get("contacts") or []
    if isinstance(listed, Iterable) and not isinstance(listed, (str, bytes, Mapping)):
        contacts.extend(c for c in listed if isinstance(c, Mapping))
    seen: set[str] = set()
    people: list[Person] = []
    for contact in contacts:
        if contact.get("erased_at"):
            continue  # erased on request (GDPR): never uploaded again
        digest = hashed_email(contact, normalize)
        if digest is None or digest in seen:
            continue
        seen.add(digest)
        people.append(Person(touch_id=touch.id, email_sha256=digest))
    return people


def group_by_list(batch: list[Touch]) -> tuple[dict[tuple[str, str], list[Touch]], list[TouchResult]]:
    """Touches grouped by (list name, action), in first-seen order; malformed ones failed."""
    groups: dict[tuple[str, str], list[Touch]] = {}
    failures: list[TouchResult] = []
    for touch in batch:
        name = touch.payload.get("list")
        action = str(touch.payload.get("action") or "add").lower()
        if not isinstance(name, str) or not name.strip():
            failures.append(TouchResult.failure(touch, "audience touch has no 'list' name in its payload"))
            continue
        if action not in ACTIONS:
            failures.append(TouchResult.failure(
                touch, f"audience action {action!r} is not one of {', '.join(ACTIONS)}"))
            continue
        groups.setdefault((name.strip(), action), []).append(touch)
    return groups, failures


def chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def in_order(batch: list[Touch], results: Iterable[TouchResult]) -> list[TouchResult]:
    """One result per touch, in the batch's order."""
    by_id = {r.touch_id: r for r in results}
    return [by_id[t.id] for t in batch]
