"""CSV import throughput against a raw COPY of the same rows, and peak memory on a big file.

    python bench/import_bench.py [--accounts 100000 --contacts 300000 --memory-rows 1000000]

On PostgreSQL (ABM_BENCH_PG_URL, default postgresql://postgres@127.0.0.1/abm_imp_bench;
the database is dropped and re-created). Prints, for accounts and contacts: rows per
second of ``abm.services.imports`` (into empty tables, then again as updates), rows per
second of a raw psycopg COPY of the same rows into the same tables, and their ratio
(target >= 0.3), as medians of ``--rounds`` rounds that each measure everything once;
then the peak resident memory of a separate process importing a contacts file of
``--memory-rows`` rows (target < 300 MB).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

import config
from abm import create_app
from abm.migrate import upgrade
from abm.services import imports
from abm.services.seed import write_csv

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgresql://postgres@127.0.0.1/abm_imp_bench"


def make_database(url: str) -> None:
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    upgrade(url)


def make_app(url: str):
    os.environ.setdefault("ABM_INSTANCE_PATH", tempfile.mkdtemp(prefix="abm-bench-"))
    cfg = config.DevelopmentConfig()
    cfg.DATABASE_URL = url
    cfg.REDIS_URL = "redis://127.0.0.1:6379/6"
    return create_app(cfg)


def truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE accounts, contacts, stage_changes, audit_log RESTART IDENTITY CASCADE")
        conn.execute("VACUUM ANALYZE accounts")
        conn.execute("VACUUM ANALYZE contacts")


def raw_copy(url: str, path: Path, kind: str) -> float:
    """COPY the file's rows into the table as they are (no normalising, no upsert); seconds."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur, open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        if kind == "accounts":
            sql = ("COPY accounts (name, domain, industry, employees, annual_revenue, country, tier, timezone, "
                   "stage, tags, attributes, crm_ids, score, score_ref, engagement, created_at, updated_at) "
                   "FROM STDIN")
            extra = ("target", "[]", "{}", "{}", 0.0, 0.0, "cold", now, now)
        else:
            sql = ("COPY contacts (email, first_name, last_name, title, buying_role, country, phone, "
                   "attributes, crm_ids, created_at, updated_at) FROM STDIN")
            extra = ("{}", "{}", now, now)
        with cur.copy(sql) as copy:
            for row in rows:
                copy.write_row((*row[:7], *extra) if kind == "contacts" else (*row, *extra))
        conn.commit()
    return time.perf_counter() - started


def run_import(app, path: Path, kind: str) -> tuple[float, dict]:
    fn = imports.import_accounts if kind == "accounts" else imports.import_contacts
    with app.app_context(), open(path, "rb") as f:
        started = time.perf_counter()
        report = fn(f, tune_interpreter=True).to_dict()  # as `abm import` runs it
        return time.perf_counter() - started, report


def changed_copy(path: Path, column: str, change) -> Path:
    """A copy of the CSV file with ``change`` applied to ``column`` of every row: a re-import that updates."""
    out = path.with_name(f"changed-{path.name}")
    with open(path, newline="", encoding="utf-8") as src, open(out, "w", newline="", encoding="utf-8") as dst:
        rows = csv.reader(src)
        header = next(rows)
        index = header.index(column)
        writer = csv.writer(dst)
        writer.writerow(header)
        for row in rows:
            row[index] = change(row[index])
            writer.writerow(row)
    return out


def memory_child(url: str, path: str) -> None:
    """Import ``path`` as contacts in this process; print peak RSS (MB) and the counts as JSON."""
    app = make_app(url)
    seconds, report = run_import(app, Path(path), "contacts")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": round(peak_mb, 1), "seconds": round(seconds, 1), "rows": report["rows"],
                      "created": report["created"], "errors_total": report["errors_total"]}))


def baseline_rss_mb(url: str) -> float:
    """Peak RSS of a process that only loads the app: what the import adds is on top."""
    code = (f"import resource, sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv=['x'];"
            f"from bench.import_bench import make_app; make_app({url!r});"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                 .stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=300_000)
    parser.add_argument("--memory-rows", type=int, default=1_000_000, help="0 to skip the memory run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measurement; medians compared")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = os.environ.get("ABM_BENCH_PG_URL", DEFAULT_URL)
    if args.memory_child:
        memory_child(url, args.memory_child)
        return

    per_account = max(1, round(args.contacts / args.accounts))
    workdir = Path(tempfile.mkdtemp(prefix="abm-bench-"))
    accounts_csv, contacts_csv = workdir / "accounts.csv", workdir / "contacts.csv"
    started = time.perf_counter()
    write_csv(accounts_csv, contacts_csv, args.accounts, per_account)
    n_contacts = args.accounts * per_account
    print(f"data: {args.accounts:,} accounts, {n_contacts:,} contacts written in "
          f"{time.perf_counter() - started:.1f}s ({accounts_csv.stat().st_size / 1e6:.1f} + "
          f"{contacts_csv.stat().st_size / 1e6:.1f} MB)")
    make_database(url)
    app = make_app(url)
    load_start = os.getloadavg()[0]  # the machine may be shared: the figures mean little under load

    # Rounds, each measuring everything once in the same order, so that a slow spell of a shared
    # machine falls on both sides of a ratio; the medians are compared.
    runs: dict[str, dict[str, list[float]]] = {k: {"copy": [], "import": [], "update": []}
                                               for k in ("accounts", "contacts")}
    files = (("accounts", accounts_csv, args.accounts), ("contacts", contacts_csv, n_contacts))
    # the re-import changes a value of every row (an import updates only the rows whose values change)
    changed = {"accounts": changed_copy(accounts_csv, "Number of Employees", lambda v: str(int(v or 0) + 1)),
               "contacts": changed_copy(contacts_csv, "Job Title", lambda v: v + " II")}
    for _ in range(args.rounds):
        truncate(url)
        for kind, path, n in files:
            runs[kind]["copy"].append(n / raw_copy(url, path, kind))
        truncate(url)
        for kind, path, n in files:
            seconds, report = run_import(app, path, kind)
            assert report["created"] == n and not report["errors_total"], report
            runs[kind]["import"].append(n / seconds)
        for kind, _, n in files:
            seconds, report = run_import(app, changed[kind], kind)
            assert report["updated"] == n, report
            runs[kind]["update"].append(n / seconds)

    print(f"\nload average (1 min) at the start {load_start:.1f}, at the end {os.getloadavg()[0]:.1f} "
          f"({os.cpu_count()} CPUs)")
    print(f"\nmedians of {args.rounds} rounds:")
    print(f"{'':10}{'import rows/s':>15}{'re-import (updates)':>22}{'raw COPY rows/s':>18}{'ratio':>8}")
    for kind, r in runs.items():
        imported, updated, copied = (statistics.median(r[m]) for m in ("import", "update", "copy"))
        print(f"{kind:10}{imported:>15,.0f}{updated:>22,.0f}{copied:>18,.0f}{imported / copied:>8.2f}")
    for kind, r in runs.items():
        print(f"{kind} per round: import " + ", ".join(f"{x:,.0f}" for x in r["import"])
              + "; raw COPY " + ", ".join(f"{x:,.0f}" for x in r["copy"])
              + "; ratios " + ", ".join(f"{i / c:.2f}" for i, c in zip(r["import"], r["copy"], strict=True)))

    if args.memory_rows:
        big = workdir / "contacts_big.csv"
        per = 4
        write_csv(None, big, max(1, args.memory_rows // per), per, seed=7)
        base_mb = baseline_rss_mb(url)
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(big)], capture_output=True,
                             text=True, env={**os.environ, "ABM_BENCH_PG_URL": url})
        if out.returncode:
            sys.exit(f"memory run failed:\n{out.stderr[-3000:]}")
        mem = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\nmemory: importing {mem['rows']:,} contacts ({big.stat().st_size / 1e6:.0f} MB file) "
              f"in {mem['seconds']}s: peak RSS {mem['peak_mb']} MB (the app alone: {base_mb:.0f} MB)")
    for path in workdir.iterdir():
        path.unlink()
    workdir.rmdir()


if __name__ == "__main__":
    main()
