"""The shared KPIs at scale, on PostgreSQL: one grouping computed live beside a bare
aggregate scan of the same rows, the rollup refresh, and the API and page latency.

    python bench/kpi_bench.py [--accounts 100000] [--events 10000000] [--touches 1000000]
    python bench/kpi_bench.py --accounts 10000 --events 1000000 --touches 100000

Builds its data once per size in its own database (``abm_bench_kpi_<accounts>``, kept
between runs): accounts and events as bench/engagement_bench.py makes them, three
contacts per account who own the lead events (form fills, meetings, replies), ten
playbooks, enrollments with a 10% holdout, sent touches over the last year,
opportunities and stage changes. The events are never touched after they are loaded
(an earlier version truncated ``playbooks`` with CASCADE, which emptied ``events``
through its foreign key); the row count of every table measured on is printed before
and after the measurements.

Prints, for the last 90 and 365 days:
- a bare aggregate scan of the same rows the KPIs read (sent marketing touches of the
  period and its attribution window, lead events, opportunities and active events of
  the period), the reference measured in the same run;
- one grouping (by playbook) computed live by :func:`abm.services.kpis.compute`, its
  speed as a share of the reference's (target: at least 0.3);
the trends page's 12 weeks in one pass beside each week computed alone; then the
workers' rollup refresh (the default view: median of three, and its share of one
worker's time as the scheduler spaces it; target under 10%), the p95 of
``GET /api/v1/kpis`` and of ``/kpis``, and ``/kpis/trends`` over 12 weeks.

After loading, the tables are vacuumed once (``VACUUM ANALYZE``), as autovacuum leaves
append-mostly tables in a running workspace: that sets the visibility map the
index-only probes of ``ix_events_account_at`` rely on.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import engagement_bench  # noqa: E402
from sqlalchemy import text  # noqa: E402

from abm.auth import issue_token  # noqa: E402
from abm.db import db  # noqa: E402
from abm.models import User  # noqa: E402
from abm.services import kpi_trends, kpis, rollups  # noqa: E402
from abm.services.kpis import MARKETING_CHANNELS, PASSIVE_EVENTS  # noqa: E402
from abm.services.users import create_user  # noqa: E402

TABLES = ("accounts", "contacts", "events", "touches", "opportunities", "stage_changes", "enrollments",
          "playbooks", "costs")
LEAD_TYPES = ("form_fill", "meeting", "email_reply")


def log(msg: str) -> None:
    print(msg, flush=True)


def row_counts() -> dict[str, int]:
    return {t: db.session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def _clear_kpi_rows(cur) -> None:
    """Empty the tables this bench fills, leaving ``events`` (and what it references) alone."""
    cur.execute("TRUNCATE touches, enrollments, playbook_versions, opportunities, stage_changes, costs, "
                "kpi_rollups RESTART IDENTITY")
    cur.execute("DELETE FROM playbooks")  # referenced by events.playbook_id: never TRUNCATE ... CASCADE
    cur.execute("ALTER SEQUENCE playbooks_id_seq RESTART")


def _add_contacts(cur, rng, n_accounts: int) -> None:
    """Three contacts per account; each lead event goes to one of its account's contacts."""
    with cur.copy("COPY contacts (account_id, email, buying_role, attributes, crm_ids, created_at, updated_at) "
                  "FROM STDIN") as cp:
        now = datetime.now(UTC)
        for aid in range(1, n_accounts + 1):
            for k, role in enumerate(("champion", "decision_maker", "user")):
                cp.write_row((aid, f"c{k}@company{aid - 1}.example", role, "{}", "{}", now, now))
    cur.execute("SELECT min(id) FROM contacts")  # COPY numbers them in order, three per account
    first = cur.fetchone()[0]
    cur.execute("UPDATE events SET contact_id = %s + (account_id - 1) * 3 + (id %% 3) "
                "WHERE type = ANY(%s) AND contact_id IS NULL", (first, list(LEAD_TYPES)))


def build(n_accounts: int, n_touches: int) -> None:
    have = db.session.execute(text("SELECT count(*) FROM touches")).scalar_one()
    if have == n_touches:
        log(f"data: {have:,} touches already there")
        return
    log(f"adding contacts, playbooks, enrollments, {n_touches:,} touches, opportunities and stage changes ...")
    db.session.commit()
    rng = random.Random(5)
    now = datetime.now(UTC)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        _clear_kpi_rows(cur)
        cur.execute("SELECT count(*) FROM contacts")
        if cur.fetchone()[0] == 0:
            _add_contacts(cur, rng, n_accounts)
        products = ["gateway", "vault", "insights"]
        for i in range(10):
            cur.execute("INSERT INTO playbooks (key, name, status, product, priority, current_version, created_at, "
                        "updated_at) VALUES (%s, %s, 'active', %s, 50, 1, %s, %s)",
                        (f"bench-{i}", f"Bench playbook {i}", products[i % 3], now, now))
            cur.execute("INSERT INTO playbook_versions (playbook_id, version, source, compiled, created_at) "
                        "VALUES (%s, 1, '', '{}', %s)", (i + 1, now))
        with cur.copy("COPY enrollments (playbook_id, version_id, account_id, cycle, state, step_index, "
                      "entered_at, entry_source, updated_at) FROM STDIN") as cp:
            for aid in range(1, n_accounts + 1):
                pb = (aid % 10) + 1
                state = "held_out" if rng.random() < .1 else rng.choice(["active", "completed", "waiting"])
                cp.write_row((pb, pb, aid, 1, state, 0, now - timedelta(days=rng.randint(30, 300)), "audience", now))
        channels = [("email", "outbox")] * 7 + [("ads", "linkedin-ads")] * 3
        with cur.copy("COPY touches (enrollment_id, playbook_id, account_id, contact_key, step_id, step_index, kind, "
                      "channel, connector, status, payload, due_at, sent_at, attempts, created_at, updated_at) "
                      "FROM STDIN") as cp:
            for i in range(n_touches):
                aid = rng.randint(1, n_accounts)
                channel, connector = rng.choice(channels)
                at = now - timedelta(seconds=rng.randint(0, 365 * 86400))
                cp.write_row((aid, (aid % 10) + 1, aid, i + 1, "s", 0, channel, channel, connector, "sent", "{}",
                              at, at, 1, at, at))
        with cur.copy("COPY opportunities (account_id, name, amount, currency, stage, product, created_at, closed_at, "
                      "won, updated_at) FROM STDIN") as cp:
            for _ in range(n_accounts // 10):
                at = now - timedelta(days=rng.randint(0, 365))
                closed = rng.random() < .5
                cp.write_row((rng.randint(1, n_accounts), "Deal", rng.randint(5, 200) * 1000, "USD", "open",
                              rng.choice(products), at, at + timedelta(days=30) if closed else None,
                              (rng.random() < .4) if closed else None, at))
        with cur.copy("COPY stage_changes (account_id, from_stage, to_stage, changed_at, source) FROM STDIN") as cp:
            stages = ["target", "aware", "engaged", "mqa", "opportunity"]
            for aid in range(1, n_accounts + 1, 2):
                at = now - timedelta(days=rng.randint(60, 365))
                for a, b in zip(stages, stages[1:rng.randint(2, 5)], strict=False):
                    at += timedelta(days=rng.randint(3, 40))
                    cp.write_row((aid, a, b, at, "bench"))
        cur.execute("INSERT INTO connectors (name, type, settings, enabled, default_for, unit_cost, state, created_at, "
                    "updated_at) VALUES ('outbox', 'outbox', '{}', true, '[]', 0.01, '{}', now(), now()), "
                    "('linkedin-ads', 'linkedin', '{}', true, '[]', 0.05, '{}', now(), now()) "
                    "ON CONFLICT (name) DO NOTHING")
        raw.commit()
    finally:
        raw.close()
    vacuum()


def vacuum() -> None:
    """VACUUM ANALYZE every table, as autovacuum does in a running workspace (outside a transaction)."""
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def bare_scan(period, window_days: int) -> None:
    """The reference: aggregates over the same rows the KPIs read, no joins between them."""
    p = {"start": period.start, "end": period.end, "from": period.start - timedelta(days=window_days),
         "channels": list(MARKETING_CHANNELS), "leads": list(LEAD_TYPES), "passive": list(PASSIVE_EVENTS)}
    s = db.session
    s.execute(text("SELECT playbook_id, count(*), count(DISTINCT account_id), max(sent_at) FROM touches "
                   "WHERE status = 'sent' AND sent_at >= :from AND sent_at < :end AND channel = ANY(:channels) "
                   "GROUP BY playbook_id"), p).all()
    s.execute(text("SELECT count(DISTINCT contact_id), min(occurred_at) FROM events WHERE type = ANY(:leads) "
                   "AND occurred_at >= :start AND occurred_at < :end"), p).all()
    s.execute(text("SELECT count(DISTINCT account_id), max(occurred_at) FROM events "
                   "WHERE occurred_at >= :start AND occurred_at < :end AND NOT type = ANY(:passive)"), p).all()
    s.execute(text("SELECT count(*), sum(amount) FROM opportunities WHERE created_at >= :start "
                   "AND created_at < :end"), p).all()


def timed(fn, rounds: int) -> float:
    """The median of ``rounds`` timings of ``fn()``, in seconds."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] * 1000


def bench_live(rounds: int) -> None:
    for days, period in zip(rollups.STANDARD_DAYS, rollups.standard_periods(), strict=True):
        if days == 30:
            continue
        bare_s = timed(lambda p=period: bare_scan(p, 90), rounds)
        live_s = timed(lambda p=period: kpis.compute("playbook", p), rounds)
        log(f"{days:>3} days: bare aggregate scan {bare_s * 1000:8.0f} ms   one grouping live "
            f"{live_s * 1000:8.0f} ms   speed ratio {bare_s / live_s:.2f} (target >= 0.3)")


def bench_default_view(rounds: int) -> None:
    """Every part of the dashboard's default view (the last 90 days) computed live: is the
    live answer fast enough to serve without a stored one? (docs/kpis.md, "Freshness")"""
    period = next(p for d, p in zip(rollups.STANDARD_DAYS, rollups.standard_periods(), strict=True) if d == 90)
    parts = {"by playbook, with the funnel": lambda: kpis.compute("playbook", period),
             "by channel": lambda: kpis.compute("channel", period, with_funnel=False),
             "velocity, coverage, pipeline over time": lambda: rollups.extras_of(period),
             "lifts": kpis.lifts}
    total = 0.0
    for name, fn in parts.items():
        seconds = timed(fn, rounds)
        total += seconds
        log(f"default view, live: {name:<40} {seconds * 1000:8.0f} ms")
    log(f"default view, live: all of it {total * 1000:8.0f} ms (fast enough to serve live: under 1,000 ms)")


def bench_refresh(rounds: int = 3) -> None:
    """The workers' refresh of the default view, forced each round (its throttle cleared)."""
    times = []
    for _ in range(rounds):
        db.session.execute(text("DELETE FROM kpi_rollups"))
        db.session.commit()
        t0 = time.perf_counter()
        stored = rollups.refresh()
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    start = datetime.now(UTC)  # a refresh of this length starts again at the first tick after next_refresh
    gap = (rollups.next_refresh(start, seconds) - start).total_seconds()
    period = math.ceil(gap / rollups.REFRESH_TICK) * rollups.REFRESH_TICK
    log(f"rollup refresh (the workers' job, here every {period} s): {stored} answers, "
        + ", ".join(f"{t:.2f}" for t in times) + f" s; median {seconds:.2f} s = {seconds / period:.1%} of one worker "
        "(target < 10%)")


def bench_http(app, token: str, rounds: int) -> None:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    page_client = app.test_client()
    resp = page_client.post("/login", data={"email": "bench-manager@bench.test", "password": "bench-password"})
    assert resp.status_code == 302, resp.status_code
    api_times, page_times = [], []
    for i in range(rounds):
        group_by = ("playbook", "channel", "product")[i % 3]
        t0 = time.perf_counter()
        r = client.get(f"/api/v1/kpis?group_by={group_by}")
        api_times.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.data[:300]
        t0 = time.perf_counter()
        r = page_client.get(f"/kpis?group_by={group_by}")
        page_times.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.status_code
    log(f"GET /api/v1/kpis   p95 {p95(api_times):8.1f} ms")
    log(f"GET /kpis (page)   p95 {p95(page_times):8.1f} ms")
    trends_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = page_client.get("/kpis/trends?weeks=12")
        trends_times.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.status_code
    log(f"GET /kpis/trends?weeks=12 (page) median of 3 {statistics.median(trends_times) * 1000:8.0f} ms")


def bench_trends(rounds: int) -> None:
    """The trends page's 12 weeks by playbook in one pass, beside the plainest way to the
    same answers in the same run: each week computed alone."""
    weeks = kpi_trends.week_periods(12, datetime.now(UTC))
    together = timed(lambda: kpis.series("playbook", weeks), rounds)
    alone = timed(lambda: [kpis.compute("playbook", w, with_funnel=False) for w in weeks], rounds)
    log(f"trends, 12 weeks by playbook: in one pass {together * 1000:8.0f} ms   each week alone (reference) "
        f"{alone * 1000:8.0f} ms   x{alone / together:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=None, help="default: 100 per account")
    parser.add_argument("--touches", type=int, default=None, help="default: 10 per account")
    parser.add_argument("--rounds", type=int, default=3, help="timings per measurement (the median is shown)")
    parser.add_argument("--http-rounds", type=int, default=30)
    parser.add_argument("--no-refresh", action="store_true", help="skip the rollup refresh")
    args = parser.parse_args()
    n_events = args.events or args.accounts * 100
    n_touches = args.touches or args.accounts * 10
    engagement_bench.PG_URL = os.environ.get(
        "ABM_BENCH_PG_URL", f"postgresql://postgres@127.0.0.1/abm_bench_kpi_{args.accounts}")
    engagement_bench.ensure_database(args.accounts, n_events)
    app = engagement_bench.make_app()
    app.config["WTF_CSRF_ENABLED"] = False
    with app.app_context():
        engagement_bench.build(app, args.accounts, n_events)
        build(args.accounts, n_touches)
        before = row_counts()
        log("rows measured on: " + ", ".join(f"{t} {n:,}" for t, n in before.items()))
        log(f"load: {os.getloadavg()[0]:.2f} (1-minute load average; {os.cpu_count()} cores)")
        bench_live(args.rounds)
        bench_default_view(args.rounds)
        bench_trends(args.rounds)
        if not args.no_refresh:
            bench_refresh()
        user = db.session.query(User).filter_by(email="bench-manager@bench.test").one_or_none() or create_user(
            "bench-manager@bench.test", "manager", "bench-password", "Bench")
        token = issue_token(user, "bench")
        db.session.commit()
        db.session.remove()
    bench_http(app, token, args.http_rounds)
    with app.app_context():
        after = row_counts()
        log("rows after: " + ", ".join(f"{t} {n:,}" for t, n in after.items()))
        assert after["events"] == before["events"] == n_events, "the events must stay"
        log(f"load: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ABM_ENV", "development")
    sys.exit(main())
