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
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from flask import current_app
from sqlalchemy import select, update

from abm import ipranges
from abm.db import db, in_list, utcnow
from abm.models import EVENT_TYPES, Account, Contact, Event, Touch
from abm.normalize import NormalizeError, normalize_domain, normalize_email
from abm.services import heat, identification
from abm.services import settings as settings_service

log = logging.getLogger(__name__)

QUEUE_KEY = "abm:events"
LOCK_KEY = "abm:events:drain-lock"
MAX_FUTURE = timedelta(minutes=10)
SUPPRESSING = {"unsubscribe": "unsubscribed_at", "spam_report": "unsubscribed_at", "email_bounce": "bounced_at"}
CRM_TYPES = ("stage_changed", "opportunity")


class EventError(ValueError):
    pass


# -- validation ---------------------------------------------------------------------

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


# -- push ---------------------------------------------------------------------------

def _spool_dir(app=None) -> Path:
    app = app or current_app
    path = Path(app.instance_path) / "spool"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stamp(event: dict) -> str:
    """One event as the queued JSON line, with a dedup key made when it has none."""
    event.setdefault("dedup_key", "~" + uuid.uuid4().hex)
    return json.dumps(event, separators=(",", ":"), default=str)


#: Each thread's own connection to Redis for :func:`push` (see :func:`_push_connection`).
_pushers = threading.local()


def _push_connection(client: redis.Redis):
    """This thread's connection to the Redis of ``client`` and whether a push went through
    it before; made on first use and kept.

    The tracking endpoints push on every request: taking a connection from redis-py's
    pool and giving it back (a lock, a liveness poll, bookkeeping) costs about twice the
    round trip itself, so each thread of a web worker keeps one connection of its own,
    made with the pool's settings (address, password, TLS, db). A new one is made after
    a fork and when the client changes.
    """
    pool = client.connection_pool
    held = getattr(_pushers, "held", None)
    if held is not None and held[0] is pool and held[1] == os.getpid():
        return held[2], _pushers.used
    if held is not None and held[1] == os.getpid():
        held[2].disconnect()
    conn = pool.connection_class(**pool.connection_kwargs)
    _pushers.held, _pushers.used = (pool, os.getpid(), conn), False
    return conn, False


def _rpush(client: redis.Redis, lines: list[str]) -> None:
    """One RPUSH on this thread's connection; once more on a fresh connection when one
    that worked before fails (Redis restarted, or closed it while idle). A push sent
    twice is stored once: every line carries its dedup key."""
    conn, used = _push_connection(client)
    for attempt in (1, 2):
        try:
            conn.send_command("RPUSH", QUEUE_KEY, *lines)
            conn.read_response()
            _pushers.used = True
            return
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            conn.disconnect()
            _pushers.used = False
            if attempt == 2 or not used:
                raise
        except redis.RedisError:
            conn.disconnect()  # an error reply (no memory, read-only replica): start clean next time
            raise


def push(events: list[dict], app=None) -> str:
    """Queue events for the drain: one Redis push; the spool when Redis is down.

    Returns ``"redis"`` or ``"spool"``. ``app``: for a caller outside an app context
    (the open pixel answers before Flask makes one).
    """
    if not events:
        return "redis"
    lines = [stamp(e) for e in events]
    try:
        from abm.redis_conn import get_redis

        _rpush(get_redis(app), lines)
        return "redis"
    except (redis.RedisError, OSError) as exc:
        log.warning("Redis unreachable (%s); spooling %d events", type(exc).__name__, len(lines))
        spool_write(lines, app)
        return "spool"


def spool_write(lines: list[str], app=None) -> None:
    path = _spool_dir(app) / "events.jsonl"
    with open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _take_spool() -> list[Path]:
    """Move the live spool aside (atomic rename) and return every file waiting to be drained."""
    folder = _spool_dir()
    live = folder / "events.jsonl"
    if live.exists() and live.stat().st_size:
        live.rename(folder / f"draining-{utcnow().strftime('%Y%m%d%H%M%S%f')}-{os.getpid()}.jsonl")
    return sorted(folder.glob("draining-*.jsonl"))


# -- drain --------------------------------------------------------------------------

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
    from abm.redis_conn import get_redis

    total = DrainResult()
    client = get_redis()
    try:
        lock = client.lock(LOCK_KEY, timeout=300, blocking_timeout=0)
        if not lock.acquire():
            return total
    except redis.RedisError:
        lock = None
    try:
        for path in _take_spool():
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
    from abm.services import scores

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
        rows = _match(events)
        heat.set_factors(rows, settings_service.current())
        inserted = _insert(rows)
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
        from abm.services import crm_sync

        crm_sync.apply(crm)
    return total


@dataclass
class _Found:
    """What a batch of events names, looked up in bulk."""

    by_email: dict = field(default_factory=dict)  # email -> (contact id, account id)
    by_contact: dict = field(default_factory=dict)  # contact id -> account id
    by_domain: dict = field(default_factory=dict)  # domain -> account id
    touches: dict = field(default_factory=dict)  # touch id -> (account id, contact id, playbook id)
    accounts: set = field(default_factory=set)  # account ids that exist


def _match(events: list[dict]) -> list[dict]:
    """Resolve every event to (account, contact, playbook) with a few bulk lookups."""
    _forget_suppressed(events, {e["email"] for e in events if e.get("email")})
    found = _look_up(events)
    received = utcnow()
    return [_event_row(e, found, received) for e in events]


def _look_up(events: list[dict]) -> _Found:
    """The contacts, accounts and touches the events name, a chunk of keys per query."""
    def keys(name: str) -> set:
        return {e[name] for e in events if e.get(name)}

    found, s = _Found(), db.session
    for chunk in _chunks(keys("email")):
        for cid, email, aid in s.execute(select(Contact.id, Contact.email, Contact.account_id)
                                         .where(in_list(Contact.email, chunk))):
            found.by_email[email] = (cid, aid)
    for chunk in _chunks(keys("contact_id")):
        found.by_contact.update(s.execute(select(Contact.id, Contact.account_id)
                                          .where(in_list(Contact.id, chunk))).all())
    for chunk in _chunks(keys("account_domain")):
        found.by_domain.update(s.execute(select(Account.domain, Account.id)
                                         .where(in_list(Account.domain, chunk))).all())
    for chunk in _chunks(keys("touch_id")):
        for tid, aid, cid, pid in s.execute(select(Touch.id, Touch.account_id, Touch.contact_id, Touch.playbook_id)
                                            .where(in_list(Touch.id, chunk))):
            found.touches[tid] = (aid, cid, pid)
    for chunk in _chunks(keys("account_id")):
        found.accounts.update(s.execute(select(Account.id).where(in_list(Account.id, chunk))).scalars())
    return found


def _resolve(e: dict, found: _Found) -> tuple[int | None, int | None, int | None]:
    """(account, contact, playbook) of one event: its touch, else its contact, email, account id, domain."""
    account_id = contact_id = playbook_id = None
    if e.get("touch_id") in found.touches:
        account_id, contact_id, playbook_id = found.touches[e["touch_id"]]
    if contact_id is None and e.get("contact_id") in found.by_contact:
        contact_id, account_id = e["contact_id"], found.by_contact[e["contact_id"]] or account_id
    if contact_id is None and e.get("email") in found.by_email:
        contact_id, aid = found.by_email[e["email"]]
        account_id = account_id or aid
    if account_id is None and e.get("account_id") in found.accounts:
        account_id = e["account_id"]
    if account_id is None and e.get("account_domain") in found.by_domain:
        account_id = found.by_domain[e["account_domain"]]
    return account_id, contact_id, playbook_id


def _event_row(e: dict, found: _Found, received) -> dict:
    account_id, contact_id, playbook_id = _resolve(e, found)
    email = e.get("email")
    return {
        "type": e["type"], "occurred_at": e["occurred_at"], "account_id": account_id,
        "contact_id": contact_id, "email": email,
        "domain": e.get("account_domain") or (email.rsplit("@", 1)[-1] if email else None),
        "url": e.get("url"), "source": e.get("source"),
        "touch_id": e.get("touch_id") if e.get("touch_id") in found.touches else None,
        "playbook_id": playbook_id, "properties": dict(e.get("properties") or {}), "dedup_key": e["dedup_key"],
        "quantity": int(e.get("quantity") or 1), "visitor_id": e.get("visitor_id"),
        "received_at": received,
    }


_COLUMNS = ("type", "occurred_at", "account_id", "contact_id", "email", "domain", "url", "source", "touch_id",
            "playbook_id", "properties", "quantity", "dedup_key", "visitor_id", "received_at", "factor")


def _forget_suppressed(events: list[dict], emails: set[str]) -> None:
    """An erased person's email (on the suppression list, as a hash) is never stored again."""
    from abm.models import Suppression
    from abm.services.contacts import email_hash

    hashes = {email_hash(e): e for e in emails}
    gone = set()
    for chunk in _chunks(hashes):
        gone.update(hashes[h] for h in db.session.execute(
            select(Suppression.email_hash).where(in_list(Suppression.email_hash, chunk))).scalars())
    for e in events:
        if e.get("email") in gone:
            e["email"] = None
            e.pop("contact_id", None)


def _insert(rows: list[dict]) -> list[dict]:
    """Bulk insert, skipping known dedup keys; returns the rows actually stored."""
    if not rows:
        return []
    if db.dialect == "postgresql":
        stored_keys = _insert_postgresql(rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(Event).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(Event.dedup_key)
        stored_keys = set(db.session.execute(stmt, rows).scalars())
    stored = []
    for r in rows:
        if r["dedup_key"] in stored_keys:
            stored_keys.discard(r["dedup_key"])
            stored.append(r)
    return stored


def _known_keys(cur, keys: list[str]) -> set[str]:
    """The dedup keys of this batch that are already stored (one index lookup per key)."""
    cur.execute("SELECT dedup_key FROM events WHERE dedup_key = ANY(%s)", (keys,))
    return {k for k, in cur.fetchall()}


def _insert_postgresql(rows: list[dict]) -> set[str]:
    """The batch's new events COPYed straight into ``events``; returns the stored keys.

    The keys already stored are looked up first and left out, so the COPY meets no
    conflict. Should another writer store one of the keys in between, the COPY fails on
    the unique index; the batch then goes through a temporary table and one
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, which skips whatever is there.
    """
    import psycopg

    cols = ", ".join(_COLUMNS)
    cur = db.session.connection().connection.cursor()
    known = _known_keys(cur, [r["dedup_key"] for r in rows])
    fresh = [r for r in rows if r["dedup_key"] not in known]
    if not fresh:
        return set()
    cur.execute("SAVEPOINT events_copy")
    try:
        with cur.copy(f"COPY events ({cols}) FROM STDIN") as copy:
            for r in fresh:
                copy.write_row(_copy_row(r))
        cur.execute("RELEASE SAVEPOINT events_copy")
        return {r["dedup_key"] for r in fresh}
    except psycopg.errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT events_copy")
    cur.execute("SELECT to_regclass('pg_temp.events_incoming')")
    if cur.fetchone()[0] is None:
        cur.execute(f"CREATE TEMP TABLE events_incoming AS SELECT {cols} FROM events WITH NO DATA")
    cur.execute("TRUNCATE events_incoming")
    with cur.copy(f"COPY events_incoming ({cols}) FROM STDIN") as copy:
        for r in fresh:
            copy.write_row(_copy_row(r))
    cur.execute(f"INSERT INTO events ({cols}) SELECT {cols} FROM events_incoming "
                "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key")
    return {k for k, in cur.fetchall()}


def _copy_row(r: dict) -> tuple:
    props = r["properties"]
    return (r["type"], r["occurred_at"], r["account_id"], r["contact_id"], r["email"], r["domain"], r["url"],
            r["source"], r["touch_id"], r["playbook_id"], json.dumps(props) if props else "{}", r["quantity"],
            r["dedup_key"], r["visitor_id"], r["received_at"], r["factor"])


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
    from abm.services import alerts, engine_hooks

    by_type: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        if r["account_id"]:
            by_type[r["type"]].add(r["account_id"])
    engine_hooks.engagement_changed(touched, dict(by_type), {a: before for a, (before, _) in changes.items()}, now)
    alerts.on_scores_changed(changes, now)
    if "intent" in by_type:
        alerts.on_intent(rows, now)


def _chunks(items, size: int = 1000):
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]


def queue_length() -> int:
    from abm.redis_conn import get_redis

    try:
        return int(get_redis().llen(QUEUE_KEY))
    except redis.RedisError:
        return -1
