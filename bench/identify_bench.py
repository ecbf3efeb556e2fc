"""Account identification at a million ranges: the index, the drain, the visit endpoint.

    python bench/identify_bench.py [--ranges 1000000] [--visits 20000] [--duration 10] [--rounds 3]

1. **The index** (:class:`abm.ipranges.AddressIndex`): builds it from ``--ranges`` disjoint
   IPv4 ranges spread over 100,000 accounts; prints the build time, the memory it holds
   (tracemalloc) and lookups per second over a million random addresses (the reference
   in the same run: parsing those addresses alone, which every lookup does first).
2. **The drain** on PostgreSQL: the same ranges stored as account networks (database
   ``abm_identify_bench``), then ``--visits`` anonymous visits drained with identification
   on, and the same visits with it off, alternated for ``--rounds``; the ratio of their
   rates (the matching is done here, in bulk, not in the request).
3. **The visit endpoint** under wrk (``POST /t/v``, what the site snippet sends: a
   configured site's key and origin, a new visitor, page and client address each request,
   the address given in ``X-Forwarded-For`` to a server told of one proxy, so that the
   per-visitor and per-address limits do not answer 429) against the trivial
   ``/healthz`` of the same production server (reused from ``pixel_bench``), with the
   million ranges loaded: ratio and p99 (target: at least 0.65).

Environment: as ``bench/pixel_bench.py`` (ABM_BENCH_PG_SERVER, ABM_BENCH_REDIS_URL, db 13,
flushed); wrk must be installed for part 3 (``--no-http`` skips it).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


import pixel_bench  # noqa: E402  (the server, wrk and environment helpers)
from sqlalchemy import delete, func, insert, select  # noqa: E402

from abm import ipranges  # noqa: E402
from abm.db import db  # noqa: E402
from abm.models import Account, AccountNetwork, Event  # noqa: E402
from abm.services import events, identification  # noqa: E402
from abm.services import settings as settings_service  # noqa: E402

pixel_bench.PG_DB = os.environ.get("ABM_BENCH_PG_DB", "abm_identify_bench")
ACCOUNTS = 100_000
TARGET_RATIO = 0.65
log = pixel_bench.log


def make_ranges(n: int, seed: int = 7) -> list[tuple[int, int, int]]:
    """n disjoint IPv4 ranges (sizes 1 to 4,096 addresses) with account ids 1..ACCOUNTS."""
    rng = random.Random(seed)
    out, pos = [], 1 << 24
    for _ in range(n):
        pos += rng.randint(0, 2048)
        size = rng.choice((1, 8, 64, 256, 1024, 4096))
        out.append((pos, pos + size - 1, rng.randint(1, ACCOUNTS)))
        pos += size
    return out


def addresses(ranges, n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    lo, hi = ranges[0][0], ranges[-1][1]
    return [str(ipaddress.IPv4Address(rng.randint(lo, hi))) for _ in range(n)]


def matching_visits(app, ranges, n: int) -> list[tuple[str, int]]:
    """n addresses inside the ranges, each with the id of the account its range is on."""
    with app.app_context():
        ids = list(db.session.execute(select(Account.id).order_by(Account.id).limit(ACCOUNTS)).scalars())
    rng = random.Random(13)
    out = []
    for start, end, account in rng.sample(ranges, n):
        out.append((str(ipaddress.IPv4Address(rng.randint(start, end))), ids[account - 1]))
    return out


def bench_index(ranges) -> dict:
    tracemalloc.start()
    t0 = time.perf_counter()
    index = ipranges.AddressIndex((ipranges.IpRange(s, e, 4), a) for s, e, a in ranges)
    build_s = time.perf_counter() - t0
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    probes = addresses(ranges, 1_000_000)
    t0 = time.perf_counter()
    hits = sum(1 for p in probes if index.find(p) is not None)
    lookup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in probes:
        ipranges.address_value(p)
    parse_s = time.perf_counter() - t0
    return {"segments": len(index), "build_s": build_s, "held_mb": held / 1e6, "peak_mb": peak / 1e6,
            "arrays_mb": index.nbytes() / 1e6, "lookups_per_s": len(probes) / lookup_s, "hit_rate": hits / len(probes),
            "parse_per_s": len(probes) / parse_s}


def seed_networks(app, ranges) -> None:
    """ACCOUNTS accounts and the ranges as their networks (once; reused by later runs)."""
    with app.app_context():
        if db.session.execute(select(func.count()).select_from(AccountNetwork)).scalar() == len(ranges):
            return
        db.session.execute(AccountNetwork.__table__.delete())
        have = db.session.execute(select(func.count()).select_from(Account)).scalar()
        for start in range(have, ACCOUNTS, 10_000):
            db.session.execute(insert(Account), [{"name": f"Bench {i}", "domain": f"bench{i}.example",
                                                  "stage": "target"} for i in range(start + 1, min(start + 10_001, ACCOUNTS + 1))])
        ids = list(db.session.execute(select(Account.id).order_by(Account.id).limit(ACCOUNTS)).scalars())
        for i in range(0, len(ranges), 20_000):
            db.session.execute(insert(AccountNetwork), [
                {"account_id": ids[a - 1], "network": "bench", "version": 4, "range_start": f"{s:032x}",
                 "range_end": f"{e:032x}", "source": "bench"} for s, e, a in ranges[i:i + 20_000]])
        identification.bump("networks")
        db.session.commit()


def drain_rate(app, visits: list[tuple[str, int]], enabled: bool) -> float:
    """Visits per second through the drain: anonymous ones identified by their address
    (``enabled``), or the reference: the same visits already naming their account, with
    identification off, so that both store and score the same rows."""
    with app.app_context():
        cfg = dict(settings_service.current()["identification"], enabled=enabled)
        settings_service.update({"identification": cfg})
        db.session.execute(delete(Event))
        db.session.commit()
        identification_warm(enabled)
        lines = [json.dumps({"type": "web_visit", "occurred_at": "2026-12-01T10:00:00+00:00",
                             **({"ip": ip} if enabled else {"account_id": account_id}),
                             "url": "https://www.ourco.example/pricing", "source": "snippet",
                             "visitor_id": f"v{i}"}) for i, (ip, account_id) in enumerate(visits)]
        t0 = time.perf_counter()
        for i in range(0, len(lines), 5000):
            events.store(lines[i:i + 5000])
        return len(lines) / (time.perf_counter() - t0)


def identification_warm(enabled: bool) -> None:
    """Build the index before timing (a worker builds it once, then on changes only)."""
    if enabled:
        t0 = time.perf_counter()
        identification.indexes()
        log(f"  index built from the database in {time.perf_counter() - t0:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranges", type=int, default=1_000_000)
    parser.add_argument("--visits", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-http", action="store_true", help="skip the wrk part")
    args = parser.parse_args()
    ranges = make_ranges(args.ranges)
    log(f"1. the index: {len(ranges):,} IPv4 ranges over {ACCOUNTS:,} accounts")
    r = bench_index(ranges)
    log(f"  built in {r['build_s']:.1f} s; {r['segments']:,} segments; memory held {r['held_mb']:.1f} MB "
        f"(arrays {r['arrays_mb']:.1f} MB), peak while building {r['peak_mb']:.1f} MB")
    log(f"  lookups: {r['lookups_per_s']:,.0f}/s ({1e6 / r['lookups_per_s']:.2f} us each; {r['hit_rate']:.0%} hits); "
        f"reference, parsing the same addresses alone: {r['parse_per_s']:,.0f}/s")

    pixel_bench.ensure_database()
    app = pixel_bench.make_app()
    log(f"2. the drain on PostgreSQL ({pixel_bench.PG_DB}): storing {len(ranges):,} networks (once) ...")
    seed_networks(app, ranges)
    visits = matching_visits(app, ranges, args.visits)
    on, off = [], []
    for n in range(args.rounds):
        on.append(drain_rate(app, visits, True))
        off.append(drain_rate(app, visits, False))
        log(f"  round {n + 1}: {args.visits:,} visits drained at {on[-1]:,.0f}/s identified by address, "
            f"{off[-1]:,.0f}/s naming their account")
    log(f"  median: identified {statistics.median(on):,.0f}/s against {statistics.median(off):,.0f}/s for the "
        f"same visits naming their account: ratio {statistics.median(on) / statistics.median(off):.2f}")
    with app.app_context():
        settings_service.update({"identification": dict(settings_service.current()["identification"], enabled=True)})
    if args.no_http:
        return 0
    return bench_http(args, app)


SITE = "https://www.ourco.example"
#: Each request a new visitor, page and client address (198.18.0.0/15, the benchmarking
#: range: only ever a header's text here, never a destination).
LUA = """
local n = 0
request = function()
  n = n + 1
  local ip = string.format("198.%d.%d.%d", 18 + math.random(0, 1), math.random(0, 255), math.random(1, 254))
  local body = string.format('{"type":"web_visit","url":"%s/p/%d","visitor_id":"w%d-%d","site":"%s"}',
                             "SITE", n, math.random(1, 1000000000), n, "KEY")
  return wrk.format("POST", "/t/v", {["Content-Type"] = "application/json", ["Origin"] = "SITE",
                                     ["X-Forwarded-For"] = ip}, body)
end
"""


def site_key(app) -> str:
    """The bench's website for the snippet (made once in its settings); its key."""
    with app.app_context():
        sites = settings_service.current().get("sites") or []
        if not sites:
            sites = settings_service.update({"sites": [{"name": "www", "origins": [SITE]}]})["sites"]
        return sites[0]["key"]


def bench_http(args, app) -> int:
    port = pixel_bench.free_port()
    script = ROOT / "bench" / "out" / "visit.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(LUA.replace("SITE", SITE).replace("KEY", site_key(app)))
    env = {**pixel_bench.bench_env(), "ABM_TRUSTED_PROXIES": "1"}
    server = subprocess.Popen([*pixel_bench.ABM, "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        pixel_bench.wait_ready(base + "/healthz", server)
        health, visit = [], []
        for _ in range(args.rounds):
            health.append(pixel_bench.run_wrk(base + "/healthz", 2, 8, args.duration))
            visit.append(pixel_bench.run_wrk(base + "/t/v", 2, 8, args.duration, script=str(script)))
    finally:
        server.terminate()
        server.wait(20)
    h, v = pixel_bench.median_run(health), pixel_bench.median_run(visit)
    ratio = v["rps"] / h["rps"]
    log(f"3. POST /t/v {v['rps']:,.0f}/s (p99 {v['p99_ms']:.1f} ms, non-2xx {v['non_2xx']}) against /healthz "
        f"{h['rps']:,.0f}/s (p99 {h['p99_ms']:.1f} ms): ratio {ratio:.2f} (target >= {TARGET_RATIO})  "
        f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}; load average {os.getloadavg()[0]:.1f}")
    return 0 if ratio >= TARGET_RATIO and not v["non_2xx"] else 1


if __name__ == "__main__":
    sys.exit(main())
