"""Engagement at scale, on PostgreSQL: the drain, a full score recompute, the AE views.

    python bench/engagement_bench.py [--accounts 100000] [--events 10000000] [--drain 200000]

Prints, each beside the reference it is compared to, measured in the same run:
- the drain: events per second from Redis into PostgreSQL (matched, de-duplicated,
  scored) beside a raw COPY and a raw executemany INSERT of the same rows into the events
  table itself, where the drain writes (target: at least 0.5 of the raw rate), and, for
  information, into an empty copy of it (whose indexes are small and stay in cache);
- a full score recompute over all events beside a bare aggregate scan of the same table
  (target: at least 0.5 of its speed);
- "My accounts" and the stage by engagement matrix: p95 latency (target under 150 ms).

Environment: ABM_BENCH_PG_URL (default postgresql://postgres@127.0.0.1/abm_bench_engagement;
the database is created when missing and its data kept between runs so that the big
table is built once), ABM_BENCH_REDIS_URL (default redis://127.0.0.1:6379/11, flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis
from sqlalchemy import text

import config
from abm import create_app
from abm.db import db
from abm.migrate import upgrade
from abm.services import events, sales_view, scores

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("ABM_BENCH_PG_URL", "postgresql://postgres@127.0.0.1/abm_bench_engagement")
REDIS_URL = os.environ.get("ABM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
TYPES = [("email_open", 30), ("email_click", 10), ("web_visit", 35), ("ad_impression", 15),
         ("ad_click", 4), ("form_fill", 3), ("meeting", 1), ("email_reply", 2)]


def log(msg: str) -> None:
    print(msg, flush=True)


def ensure_database(n_accounts: int | None = None, n_events: int | None = None) -> None:
    """Create the database when missing; re-create it when its data is not the size asked for."""
    base, name = PG_URL.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and n_accounts is not None:
            try:
                with psycopg.connect(PG_URL) as bench:
                    sizes = bench.execute("SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM events)"
                                          ).fetchone()
            except psycopg.Error:
                sizes = None
            if sizes is None or sizes[0] != n_accounts or sizes[1] < n_events:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def make_app():
    os.environ.setdefault("ABM_INSTANCE_PATH", str(ROOT / "bench" / "out" / "instance"))
    cfg = config.DevelopmentConfig()
    cfg.DATABASE_URL = PG_URL
    cfg.REDIS_URL = REDIS_URL
    return create_app(cfg)


def build(app, n_accounts: int, n_events: int) -> None:
    """Accounts (with 100 AE owners) and events, loaded with COPY; kept between runs."""
    upgrade(PG_URL)
    have_accounts = db.session.execute(text("SELECT count(*) FROM accounts")).scalar_one()
    have_events = db.session.execute(text("SELECT count(*) FROM events")).scalar_one()
    if have_accounts == n_accounts and have_events >= n_events:
        log(f"data: {have_accounts:,} accounts and {have_events:,} events already there")
        return
    log(f"building {n_accounts:,} accounts and {n_events:,} events (once) ...")
    db.session.commit()  # end the session's transaction: its locks would block the bulk load
    rng = random.Random(1)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy("COPY users (email, name, role, active, created_at) FROM STDIN") as cp:
            for i in range(100):
                cp.write_row((f"ae{i}@bench.test", f"AE {i}", "ae", True, datetime.now(UTC)))
        stages = ["target"] * 5 + ["aware"] * 3 + ["engaged", "mqa", "opportunity", "customer", "lost"]
        now = datetime.now(UTC)
        with cur.copy("COPY accounts (name, domain, tier, owner_id, stage, tags, attributes, crm_ids, score, "
                      "score_ref, engagement, created_at, updated_at) FROM STDIN") as cp:
            for i in range(n_accounts):
                cp.write_row((f"Company {i}", f"company{i}.example", rng.randint(1, 3), rng.randint(1, 100),
                              rng.choice(stages), "[]", "{}", "{}", 0.0, 0.0, "cold", now, now))
        types = [t for t, w in TYPES for _ in range(w)]
        # load without the secondary indexes, then build them once (as a bulk load would)
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events' "
                    "AND indexname NOT LIKE '%pkey'")
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f'ALTER TABLE events DROP CONSTRAINT IF EXISTS "{name}"')
            cur.execute(f'DROP INDEX IF EXISTS "{name}"')
        raw.commit()
        t0 = time.perf_counter()
        chunk = 1_000_000
        for start in range(0, n_events, chunk):
            with cur.copy("COPY events (type, occurred_at, account_id, url, source, properties, quantity, "
                          "received_at) FROM STDIN") as cp:
                for _ in range(min(chunk, n_events - start)):
                    etype = rng.choice(types)
                    url = ("https://vendor.example/pricing" if rng.random() < .2 else
                           "https://vendor.example/blog") if etype == "web_visit" else None
                    cp.write_row((etype, now - timedelta(seconds=rng.randint(0, 365 * 86400)),
                                  rng.randint(1, n_accounts), url, "bench", "{}", 1, now))
            raw.commit()
            log(f"  {min(start + chunk, n_events):,} events ({time.perf_counter() - t0:.0f} s)")
        for name, definition in indexes:
            if "UNIQUE" in definition and "dedup_key" in definition:
                cur.execute(f'ALTER TABLE events ADD CONSTRAINT "{name}" UNIQUE (dedup_key)')
            else:
                cur.execute(definition)
        raw.commit()
        log(f"  indexes rebuilt ({time.perf_counter() - t0:.0f} s)")
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def ensure_snapshots(days: int = 30) -> None:
    """Daily score snapshots for every account over the last ``days`` days, as a workspace
    of that age has them (the trend lines read them); made once, kept between runs."""
    want = db.session.execute(text("SELECT count(*) FROM accounts")).scalar_one() * days
    have = db.session.execute(text("SELECT count(*) FROM score_snapshots")).scalar_one()
    day_major = db.session.execute(text(  # the first rows are one day's, not one account's
        "SELECT count(DISTINCT day) = 1 FROM (SELECT day FROM score_snapshots LIMIT 100) s")).scalar()
    if have == want and day_major:
        return
    log(f"writing {want:,} score snapshots ({days} days) ...")
    db.session.execute(text("TRUNCATE score_snapshots"))
    db.session.execute(text(
        "INSERT INTO score_snapshots (account_id, day, score) "
        "SELECT a.id, d::date, round((random() * 80)::numeric, 4) FROM accounts a, "
        "generate_series(current_date - :back, current_date, interval '1 day') d ORDER BY d, a.id"),
        {"back": days - 1})  # day by day, as the daily job writes them: an account's rows on 30 pages
    db.session.commit()
    raw = db.engine.raw_connection()  # VACUUM (as autovacuum would after the inserts) runs outside a transaction
    try:
        raw.driver_connection.autocommit = True
        raw.cursor().execute("VACUUM ANALYZE score_snapshots")
        raw.driver_connection.autocommit = False
    finally:
        raw.close()


def bench_recompute(app) -> dict:
    db.session.execute(text("SELECT count(*) FROM events")).scalar_one()  # warm the cache
    t0 = time.perf_counter()
    db.session.execute(text("SELECT account_id, count(*), sum(quantity) FROM events "
                            "WHERE account_id IS NOT NULL GROUP BY account_id")).all()
    bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores.recompute()
    full = time.perf_counter() - t0
    return {"bare_s": bare, "recompute_s": full, "ratio": bare / full}


def bench_views(app, rounds: int = 40) -> dict:
    owners = [r[0] for r in db.session.execute(text("SELECT id FROM users ORDER BY id LIMIT 100"))]
    rng = random.Random(3)
    mine, matrix = [], []
    for _ in range(rounds):
        owner = rng.choice(owners)
        t0 = time.perf_counter()
        sales_view.my_accounts(owner, sort=rng.choice(["score", "change"]))
        mine.append(time.perf_counter() - t0)
        db.session.remove()
        t0 = time.perf_counter()
        sales_view.matrix()
        matrix.append(time.perf_counter() - t0)
        db.session.remove()
    p95 = lambda xs: statistics.quantiles(xs, n=20)[-1] * 1000  # noqa: E731
    return {"my_accounts_p95_ms": p95(mine), "matrix_p95_ms": p95(matrix)}


def bench_drain(app, n: int) -> dict:
    """Drain n events from Redis, beside COPY and executemany of the same rows."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    n_accounts = db.session.execute(text("SELECT max(id) FROM accounts")).scalar_one()
    rng = random.Random(2)
    now = datetime.now(UTC)
    lines = []
    for i in range(n):
        lines.append(json.dumps({"type": rng.choice(["email_open", "web_visit", "email_click"]),
                                 "occurred_at": (now - timedelta(seconds=rng.randint(0, 86400))).isoformat(),
                                 "account_domain": f"company{rng.randint(1, n_accounts)}.example",
                                 "source": "bench", "dedup_key": f"bench-{now.timestamp()}-{i}"}))
    for i in range(0, n, 10_000):
        client.rpush(events.QUEUE_KEY, *lines[i:i + 10_000])
    t0 = time.perf_counter()
    result = events.drain(batch_size=5000, max_batches=10**6)
    drain_s = time.perf_counter() - t0
    assert result.stored == n, f"drain stored {result.stored} of {n}"

    rows = db.session.execute(text(
        "SELECT type, occurred_at, account_id, contact_id, email, domain, url, source, touch_id, playbook_id, "
        "properties::text, quantity, dedup_key || '-raw', received_at FROM events WHERE source = 'bench' "
        "AND dedup_key IS NOT NULL ORDER BY id DESC LIMIT :n"), {"n": n}).all()
    cols = ("type, occurred_at, account_id, contact_id, email, domain, url, source, touch_id, playbook_id, "
            "properties, quantity, dedup_key, received_at")
    db.session.execute(text("DROP TABLE IF EXISTS bench_events_raw"))
    db.session.execute(text("CREATE TABLE bench_events_raw (LIKE events INCLUDING ALL)"))
    db.session.commit()
    rates = {}
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        # The references: the same rows into the events table itself (its 10M rows and their
        # indexes, as the drain writes them), and into an empty copy of it (small indexes).
        for table in ("events", "bench_events_raw"):
            t0 = time.perf_counter()
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            raw.commit()
            rates[f"copy_{table}"] = n / (time.perf_counter() - t0)
            cur.execute(f"DELETE FROM {table} WHERE source = 'bench' AND dedup_key LIKE '%-raw'")
            raw.commit()
            t0 = time.perf_counter()
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES "
                            "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s,%s)", rows)
            raw.commit()
            rates[f"insert_{table}"] = n / (time.perf_counter() - t0)
            cur.execute(f"DELETE FROM {table} WHERE source = 'bench' AND dedup_key LIKE '%-raw'")
            raw.commit()
        cur.execute("DROP TABLE bench_events_raw")
        cur.execute("DELETE FROM events WHERE source = 'bench' AND dedup_key IS NOT NULL")
        raw.commit()
        # What autovacuum does in a running system: without it the next measures would
        # wade through this benchmark's dead rows (all in the last day, where the views read).
        raw.driver_connection.autocommit = True
        try:
            cur.execute("VACUUM ANALYZE events")
            cur.execute("VACUUM ANALYZE accounts")
        finally:
            raw.driver_connection.autocommit = False
    finally:
        raw.close()
    return {"n": n, "drain_rate": n / drain_s, **rates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--drain", type=int, default=200_000, help="events for the drain benchmark")
    args = parser.parse_args()
    ensure_database(args.accounts, args.events)
    app = make_app()
    with app.app_context():
        build(app, args.accounts, args.events)
        ensure_snapshots()
        log("\n== drain (Redis -> PostgreSQL, matched and scored) ==")
        d = bench_drain(app, args.drain)
        log(f"drain        {d['drain_rate']:>10,.0f} events/s")
        for table, label in (("events", "into events (10M rows, same table)"),
                             ("bench_events_raw", "into an empty copy of events")):
            log(f"{label}:")
            log(f"  raw COPY   {d['copy_' + table]:>10,.0f} rows/s     ratio {d['drain_rate'] / d['copy_' + table]:.2f}")
            log(f"  raw INSERT {d['insert_' + table]:>10,.0f} rows/s     ratio "
                f"{d['drain_rate'] / d['insert_' + table]:.2f}")
        log("target: >= 0.5 of the raw INSERT into the events table")
        log(f"\n== full score recompute over {args.events:,} events ==")
        r = bench_recompute(app)
        log(f"bare aggregate scan  {r['bare_s']:.2f} s")
        log(f"recompute            {r['recompute_s']:.2f} s   speed ratio {r['ratio']:.2f} (target >= 0.5)")
        log(f"\n== AE views at {args.accounts:,} accounts ==")
        v = bench_views(app)
        log(f"my accounts  p95 {v['my_accounts_p95_ms']:.1f} ms   (target < 150)")
        log(f"matrix       p95 {v['matrix_p95_ms']:.1f} ms   (target < 150)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
