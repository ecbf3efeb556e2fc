"""Queueing events for the drain: one Redis RPUSH of JSON lines, or a spool file when
Redis cannot be reached; and what the drain takes back from the spool."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from pathlib import Path

import redis
from flask import current_app

from abm.db import utcnow
from abm.redis_conn import get_redis

log = logging.getLogger(__name__)

QUEUE_KEY = "abm:events"


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


def take_spool() -> list[Path]:
    """Move the live spool aside (atomic rename) and return every file waiting to be drained."""
    folder = _spool_dir()
    live = folder / "events.jsonl"
    if live.exists() and live.stat().st_size:
        live.rename(folder / f"draining-{utcnow().strftime('%Y%m%d%H%M%S%f')}-{os.getpid()}.jsonl")
    return sorted(folder.glob("draining-*.jsonl"))


def queue_length() -> int:
    try:
        return int(get_redis().llen(QUEUE_KEY))
    except redis.RedisError:
        return -1
