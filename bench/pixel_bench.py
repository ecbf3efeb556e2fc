"""The open pixel under load, against the production server, and the events it loses (none).

    python bench/pixel_bench.py [--connections 8] [--curve 8,16,32] [--threads 2] [--duration 10]
                                [--rounds 3] [--workers N] [--server-threads N]

Starts ``abm serve`` (gunicorn, ABM_ENV=production, its default workers and threads unless
told) on a free loopback port against PostgreSQL (database ``abm_engweb_bench``, created
when missing, migrated) and Redis db 13, with a fixed ABM_SECRET_KEY; makes a valid
open-pixel token for a seeded touch; then drives the server with wrk (keep-alive), for
each concurrency of ``--curve`` (connections kept busy by wrk) the same threads and
duration for both endpoints:

1. ``GET /healthz``, the trivial endpoint (the reference: a Flask view returning JSON);
2. ``GET /t/o/<token>.gif``, the pixel (a signature check and one Redis RPUSH);

alternated for ``--rounds`` rounds (the load of a shared machine moves between runs; the
medians are compared). Prints, per concurrency, the requests per second of each, their ratio
and both p50 and p99 latencies (the curve); the targets are judged at ``--connections``
(default 8: two cores already run flat out there, and the latency beyond it is the queue in
front of a saturated server, connections / rate by Little's law, whatever the endpoint does):
ratio at least 0.65, pixel p99 under 25 ms. Then it checks that every pixel answered became a
stored event: the Redis list ``abm:events`` after the runs (before the drain) holds at least
one event per request wrk saw completed, and at most one per connection and run more
(requests the server answered as wrk stopped); ``abm engagement drain`` (same environment)
then stores exactly that many events in PostgreSQL. Exit status 0 when every target is met.

Environment: ABM_BENCH_PG_SERVER (default postgresql://postgres@127.0.0.1:5432),
ABM_BENCH_PG_DB (default abm_engweb_bench), ABM_BENCH_REDIS_URL (default
redis://127.0.0.1:6379/13, flushed: use a db of your own). wrk must be installed
(Debian/Ubuntu: ``apt-get install wrk``). The figures depend on the machine and on what
else runs on it.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis
import requests
from sqlalchemy import delete, select, update

import config
from abm import create_app, tracking
from abm.db import db, utcnow
from abm.migrate import upgrade
from abm.models import Account, Contact, Enrollment, Event, Playbook, PlaybookVersion, Touch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("ABM_BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
PG_DB = os.environ.get("ABM_BENCH_PG_DB", "abm_engweb_bench")
REDIS_URL = os.environ.get("ABM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET_KEY = "pixel-bench-fixed-secret-key-0123456789abcdef"  # fixed: tokens made here verify there
ENCRYPTION_KEY = base64.urlsafe_b64encode(b"pixel-bench-fixed-fernet-key-32b").decode()
QUEUE_KEY = "abm:events"
ABM = [sys.executable, "-c", "from abm.cli import main; main()"]  # the `abm` command of this Python
TARGET_RATIO = 0.65
TARGET_P99_MS = 25.0


def log(msg: str = "") -> None:
    print(msg, flush=True)


def bench_env() -> dict[str, str]:
    """The environment of the server and of the drain: production, our database and Redis db."""
    env = dict(os.environ)
    env.update({
        "ABM_ENV": "production",
        "ABM_DATABASE_URL": f"{PG_SERVER}/{PG_DB}",
        "ABM_REDIS_URL": REDIS_URL,
        "ABM_SECRET_KEY": SECRET_KEY,
        "ABM_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "ABM_INSTANCE_PATH": str(ROOT / "bench" / "out" / "pixel-instance"),
        "ABM_BASE_URL": "http://127.0.0.1",
        "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    return env


def ensure_database() -> None:
    with psycopg.connect(PG_SERVER + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{PG_DB}"')
            log(f"created database {PG_DB}")
    upgrade(f"{PG_SERVER}/{PG_DB}")


def make_app():
    os.environ.update({k: v for k, v in bench_env().items() if k.startswith("ABM_")})

    return create_app(config.load("production"))


def seed_and_token(app) -> tuple[str, int]:
    """One account, contact, playbook and sent touch (made once); the pixel token of that
    touch; and the events table emptied, so that what the drain stores is this run's."""
    with app.app_context():
        touch = db.session.execute(select(Touch).where(Touch.step_id == "pixel-bench")).scalar_one_or_none()
        if touch is None:
            account = Account(name="Pixel Bench Inc", domain="pixel-bench.example", stage="aware")
            db.session.add(account)
            db.session.flush()
            contact = Contact(account_id=account.id, email="reader@pixel-bench.example", first_name="Reader")
            # archived: the engine leaves it alone (its compiled form is empty)
            playbook = Playbook(key="pixel-bench", name="Pixel bench", status="archived")
            db.session.add_all([contact, playbook])
            db.session.flush()
            version = PlaybookVersion(playbook_id=playbook.id, version=1, source="", compiled={})
            db.session.add(version)
            db.session.flush()
            enrollment = Enrollment(playbook_id=playbook.id, version_id=version.id, account_id=account.id)
            db.session.add(enrollment)
            db.session.flush()
            touch = Touch(enrollment_id=enrollment.id, playbook_id=playbook.id, account_id=account.id,
                          contact_id=contact.id, contact_key=contact.id, step_id="pixel-bench", kind="email",
                          channel="email", status="sent", sent_at=utcnow())
            db.session.add(touch)
        db.session.execute(update(Playbook).where(Playbook.key == "pixel-bench").values(status="archived"))
        db.session.execute(delete(Event))
        db.session.commit()
        return tracking.open_token(touch.id, touch.contact_id, touch.account_id), touch.account_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"abm serve exited with status {server.returncode} before answering; see its output above")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"abm serve did not answer {url} within {timeout:.0f} s")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, threads: int, connections: int, duration: int, script: str | None = None) -> dict:
    """One wrk run (with a Lua ``script``, e.g. for a POST); its requests per second,
    completed requests, errors and p50/p99."""
    lua = ["-s", script] if script else []
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", *lua, url],
                         capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "requests": int(re.search(r"(\d+) requests in", out).group(1)),
              "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
              "socket_errors": sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out)),
              "raw": out}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        result[f"p{pct}_ms"] = _ms(*m.groups())
    return result


def redis_round_trip_ms(client, n: int = 200) -> tuple[float, float]:
    """Median and p99 of a PING to the Redis the pixel pushes to: the floor of its extra cost."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        client.ping()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(n * 0.99) - 1]


def median_run(runs: list[dict]) -> dict:
    """The median of each figure over rounds (one round: itself); request counts are summed."""
    out = {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")}
    out.update({key: sum(r[key] for r in runs) for key in ("requests", "non_2xx", "socket_errors")})
    return out


def drain_and_count(account_id: int) -> int:
    """``abm engagement drain`` with the bench environment, then the pixel events stored."""
    done = subprocess.run([*ABM, "engagement", "drain"], env=bench_env(),
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"abm engagement drain failed ({done.returncode}):\n{done.stderr[-2000:]}")
    log(f"  drain: {done.stdout.strip()}")
    with psycopg.connect(f"{PG_SERVER}/{PG_DB}") as conn:
        return conn.execute("SELECT count(*) FROM events WHERE source = 'pixel' AND type = 'email_open' "
                            "AND account_id = %s", (account_id,)).fetchone()[0]


def worker_count(server: subprocess.Popen) -> int:
    """The gunicorn worker processes the server runs (its children)."""
    done = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True)
    return len(done.stdout.split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8,
                        help="the concurrency at which the targets are judged (it must be one of --curve)")
    parser.add_argument("--curve", default="8,16,32", help="concurrencies measured, comma-separated")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate /healthz and pixel runs this many times per concurrency; the medians are "
                             "reported (a shared machine's load changes from one run to the next)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: abm serve's)")
    parser.add_argument("--server-threads", type=int, default=None,
                        help="gunicorn threads per worker (default: abm serve's)")
    args = parser.parse_args()
    curve = sorted({int(c) for c in args.curve.split(",") if c.strip()} | {args.connections})
    if shutil.which("wrk") is None:
        log("wrk is not installed: apt-get install wrk (Debian/Ubuntu), then run this again")
        return 2

    ensure_database()
    app = make_app()
    token, account_id = seed_and_token(app)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()

    port = free_port()
    command = [*ABM, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.server_threads:
        command += ["--threads", str(args.server_threads)]
    log(f"abm serve on 127.0.0.1:{port} (gunicorn, production), PostgreSQL {PG_DB}, Redis {REDIS_URL}")
    server = subprocess.Popen(command, env=bench_env(), cwd=ROOT)
    health_at: dict[int, dict] = {}
    pixel_at: dict[int, dict] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/healthz", server)
        pixel_url = f"{base}/t/o/{token}.gif"

        probe = requests.get(pixel_url, timeout=5)
        if probe.status_code != 200 or probe.headers.get("Content-Type") != "image/gif":
            raise SystemExit(f"the pixel answered {probe.status_code} {probe.headers.get('Content-Type')}")
        # the pixel answers a GIF to any token; only a token it accepts queues an event
        if client.llen(QUEUE_KEY) != 1:
            raise SystemExit("the pixel refused the bench's token (no event queued): do the server and "
                             "this script share ABM_SECRET_KEY?")
        client.delete(QUEUE_KEY)  # the probe's event: not part of the count
        log(f"server: {worker_count(server)} gunicorn workers, "
            f"{args.server_threads or 'the default number of'} threads each")
        load_before = os.getloadavg()[0]
        ping_p50, ping_p99 = redis_round_trip_ms(client)
        for conns in curve:
            shape = f"-t{args.threads} -c{conns} -d{args.duration}s"
            log(f"wrk {shape} --latency, /healthz then the pixel, {args.rounds} round(s)")
            health_runs, pixel_runs = [], []
            for n in range(1, args.rounds + 1):
                health_runs.append(run_wrk(base + "/healthz", args.threads, conns, args.duration))
                pixel_runs.append(run_wrk(pixel_url, args.threads, conns, args.duration))
                log(f"  round {n}: /healthz {health_runs[-1]['rps']:,.0f}/s (p99 {health_runs[-1]['p99_ms']:.1f} ms), "
                    f"pixel {pixel_runs[-1]['rps']:,.0f}/s (p99 {pixel_runs[-1]['p99_ms']:.1f} ms), "
                    f"load average {os.getloadavg()[0]:.1f}")
            health_at[conns], pixel_at[conns] = median_run(health_runs), median_run(pixel_runs)
        time.sleep(1.0)  # let the requests in flight as wrk stopped finish their push
        queued = int(client.llen(QUEUE_KEY))
        load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()

    stored = drain_and_count(account_id)
    health, pixel = health_at[args.connections], pixel_at[args.connections]
    ratio = pixel["rps"] / health["rps"]
    answered = sum(p["requests"] for p in pixel_at.values())
    slack = sum(curve) * args.rounds  # one request per connection and run may be answered as wrk stops
    ok_ratio = ratio >= TARGET_RATIO
    ok_p99 = pixel["p99_ms"] < TARGET_P99_MS
    ok_errors = not any(r["non_2xx"] for r in [*health_at.values(), *pixel_at.values()])
    ok_queue = answered <= queued <= answered + slack
    ok_stored = stored == queued
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    log()
    log("medians over the rounds; requests summed:")
    log(f"{'conns':>5}  {'':9}{'requests/s':>11}  {'p50 ms':>8}  {'p99 ms':>8}  {'requests':>9}  non-2xx  "
        "socket errors  ratio pixel/healthz")
    for conns in curve:
        for name, r in (("/healthz", health_at[conns]), ("pixel", pixel_at[conns])):
            ratio_cell = f"{pixel_at[conns]['rps'] / health_at[conns]['rps']:.2f}" if name == "pixel" else ""
            log(f"{conns:>5}  {name:9}{r['rps']:>11,.0f}  {r['p50_ms']:>8.2f}  {r['p99_ms']:>8.2f}  "
                f"{r['requests']:>9,}  {r['non_2xx']:>7}  {r['socket_errors']:>13}  {ratio_cell}")
    log(f"machine: {os.cpu_count()} cores, load average {load_before:.1f} before and {load_after:.1f} after "
        "(anything above the core count is other work competing with the server and wrk)")
    log(f"Redis round trip (PING, before the runs): p50 {ping_p50:.2f} ms, p99 {ping_p99:.2f} ms "
        "(the pixel makes one; other people's tests share this Redis server)")
    log(f"at {args.connections} connections a request waits on average connections / rate = "
        f"{args.connections / pixel['rps'] * 1000:.1f} ms (Little's law): the p99 below cannot be less")
    log(f"judged at {args.connections} connections:")
    log(f"ratio pixel / healthz: {ratio:.2f} (target >= {TARGET_RATIO})  {verdict(ok_ratio)}")
    log(f"pixel p99: {pixel['p99_ms']:.2f} ms (target < {TARGET_P99_MS:.0f} ms; /healthz p99 "
        f"{health['p99_ms']:.2f} ms)  {verdict(ok_p99)}")
    log(f"every answer a 2xx: {verdict(ok_errors)}")
    log(f"pixel requests completed (wrk, all runs): {answered:,}; events queued in Redis: {queued:,} "
        f"(at most {slack} more than wrk saw: answered as it stopped)  {verdict(ok_queue)}")
    log(f"events queued: {queued:,}; events stored by the drain: {stored:,}  {verdict(ok_stored)}")
    if not ok_stored:
        log(f"  (if the drain read fewer events than were queued, something else used {REDIS_URL} meanwhile: "
            "a test run flushing it, another drain; run the benchmark alone on its Redis db)")
    return 0 if all((ok_ratio, ok_p99, ok_errors, ok_queue, ok_stored)) else 1


if __name__ == "__main__":
    sys.exit(main())
