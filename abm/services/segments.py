"""Segments: saved, named account audiences in the playbook condition language.

- ``save(name, source)``: validate the YAML condition (located errors, as a playbook's)
  and store it, new or changed; ``get``, ``listing`` (with live counts), ``delete``.
- ``members(name, cursor, limit)``: one page of the accounts in it, each with its reason
  (the parts of the condition it meets); ``export_csv`` the whole list.
- ``membership_query(name)`` / ``memberships()``: the accounts of a segment as SQL (a
  ``SELECT account_id``) or as rows, for others to join (KPI groupings by segment).
- Playbooks use a segment as their audience (``audience: {segment: NAME}``): the
  playbook's version keeps the segment's condition as it was when it was applied.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, literal, select, union_all

from abm.db import db, utcnow
from abm.errors import ApiError, NotFound, ValidationError
from abm.exports import csv_text
from abm.models import Account, Segment
from abm.services import (
    audience,
    clock,
    paging,
    playbooks,  # a cycle (it imports this module): both use the other's attributes only when called
)
from abm.services.transactions import rolls_back_on_error
from playbooks.conditions import And, Condition, Or, condition_from_dict, describe, evaluate
from playbooks.loader import load_condition

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
MAX_SOURCE = 64 * 1024
#: The most rows an export holds (an export is one answer: bounded work).
MAX_EXPORT = 100_000


class SegmentInvalid(ApiError):
    """A condition that does not validate: 422 with one located detail per error."""

    def __init__(self, errors):
        n = len(errors)
        super().__init__(422, f"the condition has {n} error{'s' if n != 1 else ''}", [e.to_dict() for e in errors])
        self.errors = errors


def condition_of(segment: Segment) -> Condition:
    return condition_from_dict(segment.condition)


def get(name: str) -> Segment:
    found = db.session.execute(select(Segment).where(Segment.name == name)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"segment {name!r}")
    return found


def compiled_all() -> dict[str, Condition]:
    """Every saved segment's condition by name (what playbooks are checked against)."""
    return {row.name: condition_of(row) for row in db.session.execute(select(Segment)).scalars()}


@rolls_back_on_error
def save(name: str, source: str, description: str | None = None, actor_id: int | None = None) -> tuple[Segment, bool]:
    """Create or change segment ``name``; (row, created). Raises ValidationError for a
    bad name and :class:`SegmentInvalid` for a bad condition. Commits."""
    name = (name or "").strip()
    if not NAME.match(name):
        raise ValidationError([{"path": "name", "message": "a segment name is 1 to 100 of a-z, 0-9, '-' and '_', "
                                                            "starting with a letter or digit"}])
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE:
        raise ValidationError([{"path": "condition", "message": f"at most {MAX_SOURCE // 1024} KiB"}])
    condition, errors = load_condition(source, f"{name}.yaml", playbooks.workspace())
    if errors:
        raise SegmentInvalid(errors)
    row = db.session.execute(select(Segment).where(Segment.name == name)).scalar_one_or_none()
    created = row is None
    if created:
        row = Segment(name=name, created_by=actor_id, created_at=utcnow())
        db.session.add(row)
    row.source, row.condition, row.updated_at = source, condition.to_dict(), utcnow()
    if description is not None:
        row.description = description.strip()[:2000] or None
    db.session.commit()
    return row, created


def delete(name: str) -> None:
    db.session.delete(get(name))
    db.session.commit()


def count(segment: Segment, now: datetime | None = None) -> int:
    return audience.count_matching(condition_of(segment), now or clock.now())


def listing(now: datetime | None = None) -> list[dict]:
    """Every segment with its live count, by name."""
    now = now or clock.now()
    rows = db.session.execute(select(Segment).order_by(Segment.name)).scalars().all()
    return [serialize(row, count(row, now)) for row in rows]


def serialize(row: Segment, members: int | None = None) -> dict:
    return {"name": row.name, "description": row.description, "condition": row.source,
            "summary": describe(condition_of(row)), "count": members,
            "updated_at": row.updated_at.isoformat() if row.updated_at else None}


def membership_query(name: str, now: datetime | None = None):
    """``SELECT accounts.id AS account_id`` of the segment's members at ``now``: a
    subquery others join (``... JOIN (membership_query(n).subquery()) ...``)."""
    condition = condition_of(get(name))
    return select(Account.id.label("account_id")).where(audience.account_filter(condition, now or clock.now()))


def memberships(now: datetime | None = None):
    """``SELECT segment, account_id`` of every segment: one row per (segment, member)."""
    now = now or clock.now()
    parts = [select(literal(row.name).label("segment"), Account.id.label("account_id"))
             .where(audience.account_filter(condition_of(row), now))
             for row in db.session.execute(select(Segment).order_by(Segment.name)).scalars()]
    return union_all(*parts) if parts else None


def reasons(condition: Condition, facts, now: datetime | None = None) -> list[str]:
    """Why an account is in, in words: every part of an ``all``, the parts of an
    ``any`` that hold for it (each down to its own parts)."""
    now = now or clock.now()
    if isinstance(condition, And):
        return [reason for item in condition.items for reason in reasons(item, facts, now)]
    if isinstance(condition, Or):
        return [reason for item in condition.items if evaluate(item, facts, now)
                for reason in reasons(item, facts, now)]
    return [describe(condition)]


def members(name: str, cursor: str | None = None, limit: int = 50) -> tuple[list[dict], str | None]:
    """One page of the segment's accounts, by name, each with its reason."""
    row = get(name)
    condition = condition_of(row)
    now = clock.now()
    query = select(Account).where(audience.account_filter(condition, now))
    accounts, next_cursor = paging.page(query, [paging.SortKey(func.lower(Account.name)), paging.SortKey(Account.id)],
                                        "name", cursor, limit)
    since = audience.longest_window([condition])
    facts = audience.load_facts([a.id for a in accounts], now, since)
    return [{"id": a.id, "name": a.name, "domain": a.domain, "tier": a.tier, "stage": a.stage,
             "reasons": reasons(condition, facts[a.id], now)} for a in accounts], next_cursor


def export_csv(name: str) -> str:
    """The whole member list as CSV (id, name, domain, tier, stage, reason)."""
    condition = condition_of(get(name))
    now = clock.now()
    rows = db.session.execute(select(Account.id, Account.name, Account.domain, Account.tier, Account.stage)
                              .where(audience.account_filter(condition, now)).order_by(Account.id)
                              .limit(MAX_EXPORT)).all()
    facts = audience.load_facts([r.id for r in rows], now, audience.longest_window([condition]))
    return csv_text(({"id": r.id, "name": r.name, "domain": r.domain, "tier": r.tier, "stage": r.stage,
                      "reason": "; ".join(reasons(condition, facts[r.id], now))} for r in rows),
                    ["id", "name", "domain", "tier", "stage", "reason"])


__all__ = ["save", "get", "delete", "listing", "count", "members", "export_csv", "membership_query",
           "memberships", "compiled_all", "SegmentInvalid", "serialize"]
