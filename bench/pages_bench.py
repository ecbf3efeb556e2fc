"""The pages an account executive waits for, over HTTP: My accounts and the stage by
engagement matrix, at 100,000 accounts, beside a trivial page of the same server.

    python bench/pages_bench.py [--accounts 100000] [--events 1000000] [--rounds 200]

Starts the production server (``abm serve``: gunicorn, ``ABM_ENV=production``, its
default workers and threads) on PostgreSQL (``ABM_BENCH_PG_URL``, default
``postgresql://postgres@127.0.0.1/abm_bench_pages``; built once with
``engagement_bench.build``: 100 AEs, the accounts spread over them, events over a year,
30 days of score snapshots; kept between runs) and Redis (``ABM_BENCH_REDIS_URL``,
default ``redis://127.0.0.1:6379/7``), logs in through the login form as one AE (about
1,000 accounts), and fetches, one request at a time on one kept-alive connection, in
turns for ``--rounds`` rounds:

- ``/healthz``: a Flask view returning JSON through the same gunicorn, the reference;
- My accounts as an AE opens it (``/engagement/mine``), sorted by change, and filtered
  (level hot, a search, changed this week), each a page of 50;
- the matrix, the AE's own (``/engagement``) and the whole workspace's
  (``/engagement?owner=all``, 100,000 accounts counted).

Prints p50 and p95 of each, and of the references, in ms. Target: p95 under 150 ms for
every page.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ABM_BENCH_PG_URL", "postgresql://postgres@127.0.0.1/abm_bench_pages")
os.environ.setdefault("ABM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")

import engagement_bench  # noqa: E402  (the data builder; reads the two variables above)
import requests  # noqa: E402
from pixel_bench import ABM, free_port, wait_ready  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from abm.auth import hash_password  # noqa: E402
from abm.db import db  # noqa: E402
from abm.models import Account, User  # noqa: E402
from abm.services import scores  # noqa: E402

PG_URL = engagement_bench.PG_URL
REDIS_URL = engagement_bench.REDIS_URL
SECRET_KEY = "pages-bench-fixed-secret-key-of-at-least-32-bytes-" + "x" * 16
ENCRYPTION_KEY = base64.urlsafe_b64encode(b"pages-bench-fixed-fernet-key-32b").decode()
PASSWORD = "pages-bench-password"
TARGET_P95_MS = 150.0
PAGES = {
    "/healthz (reference)": "/healthz",
    "My accounts": "/engagement/mine?sort=score",
    "My accounts, by change": "/engagement/mine?sort=change",
    "My accounts, hot": "/engagement/mine?level=hot",
    "My accounts, search": "/engagement/mine?q=company1",
    "My accounts, changed this week": "/engagement/mine?changed=week&sort=change",
    "Matrix, mine": "/engagement?owner=mine",
    "Matrix, all 100k": "/engagement?owner=all",
}


def log(msg: str = "") -> None:
    print(msg, flush=True)


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"ABM_ENV": "production", "ABM_DATABASE_URL": PG_URL, "ABM_REDIS_URL": REDIS_URL,
                "ABM_SECRET_KEY": SECRET_KEY, "ABM_ENCRYPTION_KEYS": ENCRYPTION_KEY,
                "ABM_INSTANCE_PATH": str(ROOT / "bench" / "out" / "pages-instance"),
                "ABM_BASE_URL": "http://127.0.0.1",
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    return env


def prepare(n_accounts: int, n_events: int) -> tuple[str, int, dict]:
    """The data (built once), scores computed, and an AE with a password: (email, accounts owned, row counts)."""
    engagement_bench.ensure_database(n_accounts, n_events)
    app = engagement_bench.make_app()
    with app.app_context():
        engagement_bench.build(app, n_accounts, n_events)
        engagement_bench.ensure_snapshots()
        if not db.session.execute(select(func.count()).where(Account.score_ref > 0)).scalar_one():
            log("computing the scores once ...")
            scores.recompute()
            raw = db.engine.raw_connection()  # what autovacuum does after the recompute's rewrite of every account
            try:
                raw.driver_connection.autocommit = True
                raw.cursor().execute("VACUUM ANALYZE accounts")
            finally:
                raw.close()
        user = db.session.execute(select(User).where(User.email == "ae1@bench.test")).scalar_one()
        user.password_hash = hash_password(PASSWORD)
        user.preferences = {}
        db.session.commit()
        owned = db.session.execute(select(func.count()).where(Account.owner_id == user.id)).scalar_one()
        counts = {t: db.session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608 (fixed names)
                  for t in ("accounts", "events", "score_snapshots", "users")}
        return user.email, owned, counts


def login(session, base: str, email: str) -> None:
    """Through the login form, as a browser does (its CSRF token; the session cookie is
    Secure in production, so it is carried by hand over this plain-HTTP loopback)."""
    page = session.get(base + "/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    resp = session.post(base + "/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                        headers={"Cookie": _cookie_header(page)}, allow_redirects=False, timeout=10)
    if resp.status_code != 302:
        raise SystemExit(f"login answered {resp.status_code}: {resp.text[:300]}")
    session.headers["Cookie"] = _cookie_header(resp)


def _cookie_header(resp) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in resp.cookies)


def measure(session, base: str, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    for _ in range(3):  # warm every worker's caches and connections
        for path in PAGES.values():
            session.get(base + path, timeout=30)
    for _ in range(rounds):
        for name, path in PAGES.items():
            t0 = time.perf_counter()
            resp = session.get(base + path, timeout=30)
            elapsed = (time.perf_counter() - t0) * 1000
            if resp.status_code != 200:
                raise SystemExit(f"{path} answered {resp.status_code}")
            times[name].append(elapsed)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    email, owned, counts = prepare(args.accounts, args.events)
    log("rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()) + f"; the AE owns {owned:,} accounts")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([*ABM, "serve", "--host", "127.0.0.1", "--port", str(port)], env=server_env(), cwd=ROOT)
    try:
        wait_ready(base + "/healthz", server)
        with requests.Session() as session:
            login(session, base, email)
            size = len(session.get(base + PAGES["My accounts"], timeout=30).content)
            log(f"My accounts page: {size / 1024:.0f} KB")
            times = measure(session, base, args.rounds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    log(f"\n{'page':<34}{'p50 ms':>9}{'p95 ms':>9}")
    worst = 0.0
    for name, values in times.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        log(f"{name:<34}{statistics.median(values):>9.1f}{p95:>9.1f}")
        if "reference" not in name:
            worst = max(worst, p95)
    log(f"\nworst page p95 {worst:.1f} ms (target < {TARGET_P95_MS:.0f} ms): {'met' if worst < TARGET_P95_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
