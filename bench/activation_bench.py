"""Activating a playbook on 100,000 accounts, on PostgreSQL.

    python bench/activation_bench.py [--accounts 100000] [--holdout 10]

Prints enrollments per second of ``playbooks.activate`` (the audience compiled to SQL,
holdout hashed in SQL, one ``INSERT ... SELECT``), beside, in the same run and on the
same table, a raw bulk insert of exactly the rows it wrote: an executemany INSERT of
the row values (SQLAlchemy's insertmanyvalues) and a COPY. Target: at least 0.5 of the
raw rate.

Environment: ABM_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/abm_eng_bench;
dropped and recreated), ABM_BENCH_REDIS_URL (default redis://127.0.0.1:6379/9).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, select, text

import config
from abm import create_app
from abm.db import db
from abm.migrate import upgrade
from abm.models import Enrollment
from abm.services import connectors
from abm.services import playbooks as service

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("ABM_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/abm_eng_bench")
REDIS_URL = os.environ.get("ABM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")

PLAYBOOK = """version: 1
key: bench-activation
name: Bench activation
audience:
  where:
    stage: [target, aware]
    tier: [1, 2, 3]
holdout: {holdout}%
steps:
  - id: hello
    alert: {{to: "sales@example.com", message: "{{{{ account.name }}}}"}}
"""


def fresh_database() -> None:
    server, name = PG_URL.rsplit("/", 1)
    admin = create_engine(server.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    upgrade(PG_URL)


def make_app():
    os.environ.setdefault("ABM_INSTANCE_PATH", tempfile.mkdtemp(prefix="abm-bench-"))
    os.environ["ABM_DATABASE_URL"] = PG_URL
    os.environ["ABM_REDIS_URL"] = REDIS_URL

    return create_app(config.load("testing"))


def seed_accounts(n: int) -> None:
    db.session.execute(text("""
        INSERT INTO accounts (name, domain, industry, employees, country, tier, tags, stage, attributes,
                              crm_ids, score, score_ref, engagement, created_at, updated_at)
        SELECT 'Account ' || g, 'account' || g || '.example', 'fintech', 100 + g % 5000, 'US', 1 + g % 3,
               '[]'::jsonb, CASE WHEN g % 2 = 0 THEN 'target' ELSE 'aware' END, '{}'::jsonb, '{}'::jsonb,
               0, 0, 'cold', now(), now()
        FROM generate_series(1, CAST(:n AS integer)) AS g"""), {"n": n})
    db.session.commit()
    db.session.execute(text("ANALYZE accounts"))
    db.session.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--holdout", type=int, default=10)
    args = parser.parse_args()

    fresh_database()
    app = make_app()
    with app.app_context():
        connectors.ensure_demo_connectors()
        seed_accounts(args.accounts)
        service.apply(PLAYBOOK.format(holdout=args.holdout), "bench.yaml")

        started = time.perf_counter()
        result = service.activate("bench-activation")
        activation = time.perf_counter() - started
        total = result["enrolled"] + result["held_out"]

        columns = ["playbook_id", "version_id", "account_id", "cycle", "state", "step_index", "next_run_at",
                   "entered_at", "entry_source", "updated_at"]
        table = Enrollment.__table__
        rows = [dict(r._mapping) for r in db.session.execute(select(*[table.c[c] for c in columns]))]
        db.session.commit()

        def clear():
            db.session.execute(text("TRUNCATE enrollments RESTART IDENTITY CASCADE"))
            db.session.commit()

        clear()
        started = time.perf_counter()
        for i in range(0, len(rows), 10_000):
            db.session.execute(table.insert(), rows[i:i + 10_000])
        db.session.commit()
        executemany = time.perf_counter() - started

        clear()
        conn = db.session.connection().connection
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY enrollments ({', '.join(columns)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([r[c] for c in columns])
        conn.commit()
        copy_time = time.perf_counter() - started
        db.session.commit()

        rate = total / activation
        raw_many = len(rows) / executemany
        raw_copy = len(rows) / copy_time
        print(f"accounts: {args.accounts}, enrolled: {result['enrolled']}, held out: {result['held_out']} "
              f"({result['held_out'] / max(total, 1):.1%}, holdout {args.holdout}%)")
        print(f"activate (INSERT ... SELECT):   {activation:7.2f} s  {rate:10,.0f} enrollments/s")
        print(f"raw executemany INSERT:          {executemany:7.2f} s  {raw_many:10,.0f} rows/s  "
              f"-> activation = {rate / raw_many:.2f}x")
        print(f"raw COPY:                        {copy_time:7.2f} s  {raw_copy:10,.0f} rows/s  "
              f"-> activation = {rate / raw_copy:.2f}x")
        print("target: activation >= 0.5x the raw bulk insert")
    return 0


if __name__ == "__main__":
    sys.exit(main())
