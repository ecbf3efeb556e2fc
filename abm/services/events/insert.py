"""Writing a batch of event rows once each: dedup keys already stored are skipped."""

from __future__ import annotations

import json

from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from abm.db import db
from abm.models import Event

try:  # psycopg comes with the `pg` extra only; without it no PostgreSQL path runs
    import psycopg
except ImportError:  # pragma: no cover - installs without PostgreSQL
    psycopg = None

_COLUMNS = ("type", "occurred_at", "account_id", "contact_id", "email", "domain", "url", "source", "touch_id",
            "playbook_id", "properties", "quantity", "dedup_key", "visitor_id", "received_at", "factor")


def insert_new(rows: list[dict]) -> list[dict]:
    """Bulk insert, skipping known dedup keys; returns the rows actually stored."""
    if not rows:
        return []
    if db.dialect == "postgresql":
        stored_keys = _insert_postgresql(rows)
    else:
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

