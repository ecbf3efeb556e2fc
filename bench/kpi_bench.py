"""The shared KPIs at scale: the dashboard and the API at 100,000 accounts, 10 million
events and a million touches, on PostgreSQL.

    python bench/kpi_bench.py [--touches 1000000]

Builds on the engagement benchmark's database (run bench/engagement_bench.py first; its
accounts and events are reused) and adds playbooks, enrollments with a holdout, a million
sent touches, opportunities and stage changes, once. Then it times the workers' rollup
refresh, and the p95 latency of ``GET /api/v1/kpis`` (each grouping) and of the KPI
dashboard page served from the rollups (target: under 300 ms), beside the time the same
answer takes computed from the raw rows.
"""

from __future__ import annotations

import argparse
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


def log(msg: str) -> None:
    print(msg, flush=True)


def build(n_touches: int) -> None:
    from sqlalchemy import text

    from abm.db import db

    have = db.session.execute(text("SELECT count(*) FROM touches")).scalar_one()
    if have >= n_touches:
        log(f"data: {have:,} touches already there")
        return
    log(f"adding playbooks, enrollments, {n_touches:,} touches, opportunities and stage changes (once) ...")
    db.session.execute(text("TRUNCATE touches, enrollments, playbook_versions, playbooks, opportunities, "
                            "stage_changes, costs, kpi_rollups RESTART IDENTITY CASCADE"))
    db.session.commit()
    n_accounts = db.session.execute(text("SELECT max(id) FROM accounts")).scalar_one()
    rng = random.Random(5)
    now = datetime.now(UTC)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
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
                pb = rng.randint(1, 10)
                state = "held_out" if rng.random() < .1 else rng.choice(["active", "completed", "waiting"])
                cp.write_row((pb, pb, aid, 1, state, 0, now - timedelta(days=rng.randint(30, 300)), "audience", now))
        raw.commit()
        channels = [("email", "outbox")] * 7 + [("ads", "linkedin-ads")] * 3
        with cur.copy("COPY touches (enrollment_id, playbook_id, account_id, contact_key, step_id, step_index, kind, "
                      "channel, connector, status, payload, due_at, sent_at, attempts, created_at, updated_at) "
                      "FROM STDIN") as cp:
            for i in range(n_touches):
                eid = rng.randint(1, n_accounts)
                channel, connector = rng.choice(channels)
                at = now - timedelta(seconds=rng.randint(0, 365 * 86400))
                cp.write_row((eid, (eid % 10) + 1, eid, i + 1, "s", 0, channel, channel, connector, "sent", "{}",
                              at, at, 1, at, at))
        raw.commit()
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
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--touches", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    engagement_bench.ensure_database()  # built by bench/engagement_bench.py
    app = engagement_bench.make_app()
    app.config["WTF_CSRF_ENABLED"] = False
    with app.app_context():
        from abm.auth import issue_token
        from abm.db import db
        from abm.models import User
        from abm.services import kpis, rollups
        from abm.services.users import create_user

        build(args.touches)
        t0 = time.perf_counter()
        stored = rollups.refresh()
        refresh_s = time.perf_counter() - t0
        log(f"\nrollup refresh (the workers' periodic job): {stored} answers in {refresh_s:.1f} s")
        period = rollups.standard_periods()[1]
        t0 = time.perf_counter()
        kpis.compute("playbook", period)
        live_s = time.perf_counter() - t0
        log(f"one grouping computed from the raw rows: {live_s * 1000:.0f} ms (the reference)")
        user = db.session.query(User).filter_by(email="bench-manager@bench.test").one_or_none() or create_user(
            "bench-manager@bench.test", "manager", "bench-password", "Bench")
        token = issue_token(user, "bench")
        db.session.commit()
        db.session.remove()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    page_client = app.test_client()
    resp = page_client.post("/login", data={"email": "bench-manager@bench.test", "password": "bench-password"})
    assert resp.status_code == 302, resp.status_code
    api_times, page_times = [], []
    for i in range(args.rounds):
        group_by = ("playbook", "channel", "product")[i % 3]
        t0 = time.perf_counter()
        r = client.get(f"/api/v1/kpis?group_by={group_by}")
        api_times.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.data[:300]
        t0 = time.perf_counter()
        r = page_client.get(f"/kpis?group_by={group_by}")
        page_times.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.status_code
    log(f"GET /api/v1/kpis   p95 {p95(api_times):6.1f} ms   (target < 300)")
    log(f"GET /kpis (page)   p95 {p95(page_times):6.1f} ms   (target < 300)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ABM_ENV", "development")
    sys.exit(main())
