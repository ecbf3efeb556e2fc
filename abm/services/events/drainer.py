"""The drain: queued events into the database in bulk, and what they change.

:func:`drain` (a periodic job, one drainer at a time) reads batches from the spool and
the Redis list; :func:`store` writes one batch: matched to contacts and accounts
(:mod:`.resolve`), inserted once each (:mod:`.insert`), then scores, bounced and
unsubscribed contacts, the engine and the alerts.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis
from sqlalchemy import update

from abm.db import db, in_list, utcnow
from abm.models import Contact
from abm.redis_conn import get_redis
from abm.services import alerts, crm_sync, engine_hooks, heat, identification, scores
from abm.services import settings as settings_service
from abm.services.events.insert import insert_new
from abm.services.events.intake import QUEUE_KEY, take_spool
from abm.services.events.resolve import match_events
from abm.services.events.validation import EventError, parse_time

LOCK_KEY = "abm:events:drain-lock"
SUPPRESSING = {"unsubscribe": "unsubscribed_at", "spam_report": "unsubscribed_at", "email_bounce": "bounced_at"}
CRM_TYPES = ("stage_changed", "opportunity")


@dataclass
class DrainResult:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    invalid: int = 0
    matched: int = 0
    accounts: set[int] = field(default_factory=set)
    crm: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"read": self.read, "stored": self.stored, "duplicates": self.duplicates,
                "invalid": self.invalid, "matched": self.matched, "accounts": len(self.accounts)}


def drain(batch_size: int = 5000, max_batches: int = 20, now: datetime | None = None) -> DrainResult:
    """Move queued events into the database, in batches; one drainer at a time."""
    total = DrainResult()
    client = get_redis()
    try:
        lock = client.lock(LOCK_KEY, timeout=300, blocking_timeout=0)
        if not lock.acquire():
            return total
    except redis.RedisError:
        lock = None
    try:
        for path in take_spool():
            _drain_file(path, batch_size, total, now)
        if lock is None:
            return total
        for _ in range(max_batches):
            raw = client.lrange(QUEUE_KEY, 0, batch_size - 1)
            if not raw:
                break
            store([r.decode() if isinstance(r, bytes) else r for r in raw], total, now)
            client.ltrim(QUEUE_KEY, len(raw), -1)
            if len(raw) < batch_size:
                break
    finally:
        if lock is not None:
            try:
                lock.release()
            except redis.RedisError:
                pass
    return total


def _drain_file(path: Path, batch_size: int, total: DrainResult, now) -> None:
    lines: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                lines.append(line)
            if len(lines) >= batch_size:
                store(lines, total, now)
                lines = []
    if lines:
        store(lines, total, now)
    path.unlink()


def store(lines: list[str], total: DrainResult | None = None, now: datetime | None = None) -> DrainResult:
    """Write one batch of queued events (JSON strings) and apply their effects."""
    total = total or DrainResult()
    now = now or utcnow()
    events, crm = [], []
    seen: set[str] = set()
    for line in lines:
        total.read += 1
        try:
            if "\\u0000" in line:  # a NUL character, which no database column takes
                raise EventError("a NUL character")
            event = json.loads(line)
            event["occurred_at"] = min(parse_time(event["occurred_at"]), now)
        except (ValueError, KeyError, TypeError, EventError):
            total.invalid += 1
            continue
        if event.get("type") in CRM_TYPES:
            crm.append(event)
            continue
        key = event.get("dedup_key") or ("~" + uuid.uuid4().hex)
        if key in seen:
            total.duplicates += 1
            continue
        seen.add(key)
        event["dedup_key"] = key
        events.append(event)
    if events:
        identification.known_visitors(events)
        identification.identify(events, now)
        rows = match_events(events)
        heat.set_factors(rows, settings_service.current())
        inserted = insert_new(rows)
        total.duplicates += len(rows) - len(inserted)
        total.stored += len(inserted)
        total.matched += sum(1 for r in inserted if r["account_id"])
        _flag_contacts(inserted)
        changes = scores.add_events(inserted, now)
        total.accounts |= set(changes)
        stitched = identification.stitch(inserted, now) - set(changes)
        if stitched:
            scores.rescore(stitched, now)
            total.accounts |= stitched
        db.session.commit()
        _after_store(inserted, changes, now)
    if crm:
        total.crm.extend(crm)
        crm_sync.apply(crm)
    return total


def _flag_contacts(rows: list[dict]) -> None:
    """Bounces and unsubscribes suppress the contact in every playbook at once."""
    for etype, column in SUPPRESSING.items():
        ids = {r["contact_id"] for r in rows if r["type"] == etype and r["contact_id"]}
        if ids:
            col = getattr(Contact, column)
            db.session.execute(update(Contact).where(in_list(Contact.id, ids), col.is_(None))
                               .values({column: utcnow()}).execution_options(synchronize_session=False))


def _after_store(rows: list[dict], changes: dict[int, tuple[float, float]], now: datetime) -> None:
    """Tell the engine (wake waiting enrollments, triggers) and raise level and surge alerts."""
    touched = {r["account_id"] for r in rows if r["account_id"]}
    if not touched:
        return
    by_type: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        if r["account_id"]:
            by_type[r["type"]].add(r["account_id"])
    engine_hooks.engagement_changed(touched, dict(by_type), {a: before for a, (before, _) in changes.items()}, now)
    alerts.on_scores_changed(changes, now)
    if "intent" in by_type:
        alerts.on_intent(rows, now)
