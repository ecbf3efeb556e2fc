"""Touches per second end to end, on PostgreSQL and a real Redis, with two worker processes.

    python bench/dispatch_bench.py [--touches 20000] [--single 1000] [--workers 2]

End to end means: enrollments due now are claimed by the dispatcher (this process, one
pass after another), advanced, their email touches built (recipients, suppression,
caps, window, rendering) and written, enqueued as jobs of many touches, and sent by
``abm worker touches`` processes through a ``log`` connector that appends every touch
to a file, then marked sent. Printed:

- touches/s from the first dispatch to the last touch marked sent, and the due-to-sent
  lag (p50, p95) computed from the touches' ``due_at`` and ``sent_at``;
- the CPU time per touch of the dispatcher (this process's main thread) and of the
  workers (their work horses included), and the rate that makes on 2 idle cores: a
  figure other processes on the machine do not move (the wall-clock rate they do);
- the peak memory (RSS) of each worker process, work horses included;
- beside it, in the same run and with the same workers, the rate of one RQ job per
  touch (``send_touches([id])`` enqueued once per touch) over ``--single`` touches.

Targets: >= 2,000 touches/s on 2 cores, >= 20x the one-job-per-touch rate, lag p95 < 5 s,
worker memory < 300 MB. The machine may be shared: the figures are only as quiet as it is.

Environment: ABM_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/abm_eng_bench,
recreated), ABM_BENCH_REDIS_URL (default redis://127.0.0.1:6379/9, flushed).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.activation_bench import PG_URL, REDIS_URL, fresh_database, make_app  # noqa: E402

PLAYBOOK = """version: 1
key: bench-dispatch
name: Bench dispatch
audience:
  where: {{tier: [1]}}
send_window: {{timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}}
caps: []
steps:
  - id: hello
    email:
      connector: bench-log
      to: {{roles: [decision_maker]}}
      subject: "{{{{ account.name }}}}: a note"
      body: "<p>Hi {{{{ contact.first_name or 'there' }}}}, a short note for {{{{ account.name }}}}.</p>"
"""


def seed(n: int, start: int = 0) -> None:
    from sqlalchemy import text

    from abm.db import db

    db.session.execute(text("""
        INSERT INTO accounts (name, domain, industry, employees, country, tier, tags, stage, attributes,
                              crm_ids, score, score_ref, engagement, created_at, updated_at)
        SELECT 'Account ' || g, 'account' || g || '.example', 'fintech', 500, 'US', 1, '[]'::jsonb, 'target',
               '{}'::jsonb, '{}'::jsonb, 0, 0, 'cold', now(), now()
        FROM generate_series(CAST(:a AS integer), CAST(:b AS integer)) AS g"""), {"a": start + 1, "b": start + n})
    db.session.execute(text("""
        INSERT INTO contacts (account_id, email, first_name, buying_role, attributes, crm_ids, created_at, updated_at)
        SELECT id, 'dm@' || domain, 'Pat', 'decision_maker', '{}'::jsonb, '{}'::jsonb, now(), now()
        FROM accounts WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.account_id = accounts.id)"""))
    db.session.commit()
    db.session.execute(text("ANALYZE"))
    db.session.commit()


class Workers:
    """``abm worker touches`` processes, with their peak memory sampled from /proc."""

    def __init__(self, count: int, instance: str):
        env = dict(os.environ, ABM_DATABASE_URL=PG_URL, ABM_REDIS_URL=REDIS_URL, ABM_INSTANCE_PATH=instance,
                   ABM_ENV="testing")
        # `python -c` with the repository as the working directory, like `abm worker touches`.
        command = [sys.executable, "-c", "from abm.cli import main; main(prog_name='abm')", "worker", "touches"]
        self.procs = [subprocess.Popen(command, cwd=ROOT,
                                       env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL) for _ in range(count)]
        self.peak = [0] * count
        self._stop = False
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _group_rss(self, pgid: int) -> tuple[int, int]:
        """(the worker's RSS, the largest work horse's RSS) in its process group."""
        parent, horse = 0, 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) != pgid:
                    continue
            except OSError:
                continue
            rss = self._rss(int(entry.name))
            if int(entry.name) == pgid:
                parent = rss
            else:
                horse = max(horse, rss)
        return parent, horse

    def _sample(self) -> None:
        while not self._stop:
            for i, p in enumerate(self.procs):
                parent, horse = self._group_rss(p.pid)
                self.peak[i] = max(self.peak[i], parent, horse)
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time of the workers and of their finished work horses, from /proc."""
        total = 0
        for p in self.procs:
            try:
                fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._stop = True
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def wait_sent(expected: int, timeout: float) -> float:
    from sqlalchemy import func, select

    from abm.db import db
    from abm.models import Touch

    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        sent = db.session.execute(select(func.count()).select_from(Touch).where(Touch.status == "sent")).scalar_one()
        if sent >= expected:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {sent} of {expected} touches sent")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touches", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    fresh_database()
    instance = tempfile.mkdtemp(prefix="abm-bench-")
    os.environ["ABM_INSTANCE_PATH"] = instance
    app = make_app()
    log_path = Path(instance) / "sent.jsonl"
    with app.app_context():
        import redis as redis_lib
        from sqlalchemy import select

        from abm.db import db, utcnow
        from abm.models import Touch
        from abm.services import connectors, touches
        from abm.services import playbooks as service
        from workers import dispatcher

        redis_lib.Redis.from_url(REDIS_URL).flushdb()
        connectors.create({"type": "log", "name": "bench-log", "settings": {"path": str(log_path), "keep": 1},
                           "default": ["email", "ads", "alert", "task", "webhook"]})
        seed(args.touches)
        service.apply(PLAYBOOK.format(), "bench.yaml")
        service.activate("bench-dispatch")
        workers = Workers(args.workers, instance)
        try:
            time.sleep(3)  # let the workers start before the clock runs
            workers_cpu = workers.cpu_seconds()
            started, started_cpu = time.perf_counter(), time.thread_time()
            while True:
                stats = dispatcher.dispatch(now=utcnow(), max_batches=1)
                if not stats.get("batches"):
                    break
            dispatched, dispatcher_cpu = time.perf_counter(), time.thread_time() - started_cpu
            finished = wait_sent(args.touches, timeout=600)
            time.sleep(0.5)  # the last work horse is reaped
            workers_cpu = workers.cpu_seconds() - workers_cpu
            lags = sorted((t.sent_at - t.due_at).total_seconds() for t in db.session.execute(
                select(Touch.due_at, Touch.sent_at).where(Touch.status == "sent")))
            rate = args.touches / (finished - started)

            # The reference: one RQ job per touch, same workers, same connector.
            from sqlalchemy import update

            single_ids = [t for t, in db.session.execute(
                select(Touch.id).order_by(Touch.id).limit(args.single))]
            db.session.execute(update(Touch).where(Touch.id.in_(single_ids)).values(
                status="queued", claimed_at=None, sent_at=None, queued_at=utcnow()))
            db.session.commit()
            from rq import Queue

            queue = Queue("touches", connection=redis_lib.Redis.from_url(REDIS_URL))
            started_single = time.perf_counter()
            queue.enqueue_many([Queue.prepare_data(touches.JOB_FUNC, args=([i], "bench-log"), result_ttl=60)
                                for i in single_ids])
            finished_single = wait_sent(args.touches, timeout=900)
            single_rate = args.single / (finished_single - started_single)
        finally:
            workers.stop()
        sent_lines = sum(1 for _ in log_path.open())
        print(f"touches: {args.touches} (email, rendered), workers: {args.workers}, cores: {os.cpu_count()}")
        print(f"end to end: {rate:8,.0f} touches/s  ({finished - started:.1f} s; dispatching took "
              f"{dispatched - started:.1f} s)")
        per_touch = (dispatcher_cpu + workers_cpu) / args.touches
        print(f"CPU per touch: dispatcher {dispatcher_cpu / args.touches * 1000:.2f} ms, workers "
              f"{workers_cpu / args.touches * 1000:.2f} ms (PostgreSQL not counted) -> "
              f"{2 / per_touch:,.0f} touches/s on 2 idle cores")
        print(f"due-to-sent lag: p50 {statistics.median(lags):.2f} s, "
              f"p95 {lags[int(len(lags) * 0.95) - 1]:.2f} s, max {lags[-1]:.2f} s")
        print(f"one RQ job per touch: {single_rate:8,.0f} touches/s over {args.single} touches "
              f"-> batched is {rate / single_rate:.1f}x")
        print("peak worker RSS: " + ", ".join(f"{p / 2**20:.0f} MB" for p in workers.peak))
        print(f"lines at the connector: {sent_lines} (expected {args.touches + args.single})")
        print("targets: >= 2,000 touches/s, >= 20x one-job-per-touch, lag p95 < 5 s, worker RSS < 300 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
