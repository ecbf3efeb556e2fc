"""Touches as people look for them: filtered, searched and paged (the touches page and
``GET /api/v1/touches``), and each step's results on a playbook's page, every count of
which is a filter of the same search (so a count opens the touches behind it).

Results of a step: touches by status (``sent``, ``suppressed`` and ``failed`` with their
reasons, ``scheduled`` = postponed to a send window or a cap's delay, ``skipped``), and
the touches with an engagement event of each kind (delivered, opened, clicked, replied,
bounced), counted once per touch from the ``events`` table (``events.touch_id``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, func, or_, select

from abm.db import db
from abm.errors import NotFound
from abm.models import Account, Contact, Event, Touch
from abm.models import Playbook as PlaybookRow
from abm.services import paging, touches

#: The engagement a step's results count, by the event type that records it.
RESULT_EVENTS = {"delivered": "email_delivered", "opened": "email_open", "clicked": "email_click",
                 "replied": "email_reply", "bounced": "email_bounce"}
STATUSES = ("scheduled", "queued", "sent", "failed", "suppressed", "skipped")
CHANNELS = ("email", "ads", "alert", "task", "webhook")


@dataclass
class Filters:
    playbook: str | None = None
    step: str | None = None
    channel: str | None = None
    status: str | None = None
    account: str | None = None  # id or domain
    event: str | None = None  # a key of RESULT_EVENTS: touches that got it
    variant: str | None = None  # the A/B variant of an email step
    reason: str | None = None  # the touch's error text, exactly
    q: str | None = None  # in the account's name or domain, or the contact's email

    def as_args(self) -> dict:
        return {k: v for k, v in vars(self).items() if v}


def _account_clause(text: str):
    text = text.strip()
    if text.isdigit():
        return Touch.account_id == int(text)
    return Touch.account_id.in_(select(Account.id).where(Account.domain == text.lower()))


def query(filters: Filters, connectors: list[str] | None = None):
    """The ``select(Touch)`` of these filters (an unknown playbook is a 404); with
    ``connectors``, only the touches those connectors carried."""
    stmt = select(Touch) if connectors is None else select(Touch).where(Touch.connector.in_(connectors))
    if filters.playbook:
        row = db.session.execute(select(PlaybookRow).where(PlaybookRow.key == filters.playbook)).scalar_one_or_none()
        if row is None:
            raise NotFound(f"playbook {filters.playbook!r}")
        stmt = stmt.where(Touch.playbook_id == row.id)
    for column, value in ((Touch.step_id, filters.step), (Touch.channel, filters.channel),
                          (Touch.status, filters.status), (Touch.error, filters.reason),
                          (Touch.variant, filters.variant)):
        if value:
            stmt = stmt.where(column == value)
    if filters.account:
        stmt = stmt.where(_account_clause(filters.account))
    if filters.event in RESULT_EVENTS:
        stmt = stmt.where(exists().where(Event.touch_id == Touch.id, Event.type == RESULT_EVENTS[filters.event]))
    if filters.q:
        needle = filters.q.strip().lower()[:200]
        accounts = select(Account.id).where(or_(func.lower(Account.name).contains(needle, autoescape=True),
                                                Account.domain.contains(needle, autoescape=True)))
        contacts = select(Contact.id).where(func.lower(Contact.email).contains(needle, autoescape=True))
        stmt = stmt.where(or_(Touch.account_id.in_(accounts), Touch.contact_id.in_(contacts)))
    return stmt


def search(filters: Filters, cursor: str | None = None, limit: int = 50,
           connectors: list[str] | None = None) -> tuple[list[dict], str | None]:
    """One page of touches, newest first, with their playbook key, account, contact and
    ``key`` (what the connector saw)."""
    rows, next_cursor = paging.page(query(filters, connectors), [paging.SortKey(Touch.id, descending=True)], "-id", cursor,
                                    limit)
    keys = dict(db.session.execute(select(PlaybookRow.id, PlaybookRow.key).where(
        PlaybookRow.id.in_({t.playbook_id for t in rows} or {0}))).all())
    accounts = dict(db.session.execute(select(Account.id, Account.name).where(
        Account.id.in_({t.account_id for t in rows} or {0}))).all())
    emails = dict(db.session.execute(select(Contact.id, Contact.email).where(
        Contact.id.in_({t.contact_id for t in rows if t.contact_id} or {0}))).all())
    items = []
    for t in rows:
        item = touches.serialize(t, keys.get(t.playbook_id))
        item.update(account=accounts.get(t.account_id), contact=emails.get(t.contact_id), key=touches.touch_key(t))
        items.append(item)
    return items, next_cursor


def step_results(playbook_id: int) -> dict[str, dict]:
    """step id -> {"statuses": {status: n}, "reasons": {status: {reason: n}},
    "events": {result: touches}, "variants": {variant: {"statuses", "events"}}} for one
    playbook's touches, in two queries (``variants`` is empty for a step without)."""
    out: dict[str, dict] = {}

    def entry(step_id: str, variant: str | None = None) -> dict:
        mine = out.setdefault(step_id, {"statuses": {}, "reasons": {}, "events": {}, "variants": {}})
        return mine if variant is None else mine["variants"].setdefault(variant, {"statuses": {}, "events": {}})

    for step_id, variant, status, error, n in db.session.execute(
            select(Touch.step_id, Touch.variant, Touch.status, Touch.error, func.count())
            .where(Touch.playbook_id == playbook_id)
            .group_by(Touch.step_id, Touch.variant, Touch.status, Touch.error)):
        mine = entry(step_id)
        mine["statuses"][status] = mine["statuses"].get(status, 0) + n
        if error and status in ("suppressed", "failed", "scheduled", "skipped"):
            reasons = mine["reasons"].setdefault(status, {})
            reasons[error] = reasons.get(error, 0) + n
        if variant is not None:
            counts = entry(step_id, variant)["statuses"]
            counts[status] = counts.get(status, 0) + n
    by_type = {event_type: result for result, event_type in RESULT_EVENTS.items()}
    for step_id, variant, event_type, n in db.session.execute(
            select(Touch.step_id, Touch.variant, Event.type, func.count(func.distinct(Touch.id)))
            .join(Event, Event.touch_id == Touch.id)
            .where(Touch.playbook_id == playbook_id, Event.type.in_(list(by_type)))
            .group_by(Touch.step_id, Touch.variant, Event.type)):
        events = entry(step_id)["events"]
        events[by_type[event_type]] = events.get(by_type[event_type], 0) + n
        if variant is not None:
            entry(step_id, variant)["events"][by_type[event_type]] = n
    return out


__all__ = ["Filters", "query", "search", "step_results", "RESULT_EVENTS", "STATUSES", "CHANNELS"]
