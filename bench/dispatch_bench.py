"""Touches per second end to end, on PostgreSQL and a real Redis, with two worker processes.

    python bench/dispatch_bench.py [--touches 20000] [--single 1000] [--workers 2]
    python bench/dispatch_bench.py --touches 60000 --arrival 1000 [--single 0]

End to end means: enrollments due now are claimed by the dispatcher chains, advanced,
their email touches built (recipients, suppression, caps, window, rendering) and
written, enqueued as jobs of many touches, and sent through a ``log`` connector that
appends every touch to a file, then marked sent -- all of it by ``abm worker dispatch
touches`` processes (jobs in the worker's process; ``--fork``: a work horse per job), as
in production: the bench starts the chains as the periodic job
does (``run_dispatch``) and waits. Printed:

- touches/s from the start of the chains to the last touch marked sent, and the
  due-to-sent lag (p50, p95) computed from the touches' ``due_at`` and ``sent_at``;
- the CPU time per touch of the workers (their work horses, dispatching and sending
  included) and of the PostgreSQL backends serving the bench's database, and the rate
  that makes on 2 idle cores: a figure other processes on the machine do not move (the
  wall-clock rate they do);
- the peak memory (RSS) of each worker process, work horses included;
- beside it, in the same run and with the same workers, the rate of one RQ job per
  touch (``send_touches([id])`` enqueued once per touch) over ``--single`` touches.

Two modes. **Burst** (the default): every enrollment is due at one instant, before the
workers start; the chains are started once (``run_dispatch``) and the bench waits. Its lag
is mostly the time the last touch waits for all the others: at 60,000 it measures the
run, not the engine's delay. **Steady arrival** (``--arrival RATE``): the enrollments
become due over time, RATE a second (each its own ``next_run_at``), while the workers run
and ``abm scheduler`` starts the dispatcher as in production (``run_dispatch`` on its
period); nothing is due when the workers start. The lag is then what a recipient feels
when the engine keeps up: from the moment its step became due to its send. In both modes
the lag is counted from the enrollment's due time (a touch's ``due_at`` is its
enrollment's ``next_run_at``), not from the touch's creation.

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

import redis as redis_lib  # noqa: E402
from rq import Queue, Worker  # noqa: E402
from sqlalchemy import func, select, text, update  # noqa: E402

from abm.db import (  # noqa: E402
    db,  # noqa: E402
    utcnow,
)
from abm.models import Touch  # noqa: E402
from abm.services import connectors  # noqa: E402
from abm.services import playbooks as service  # noqa: E402
from bench.activation_bench import PG_URL, REDIS_URL, fresh_database, make_app  # noqa: E402
from workers import dispatcher, jobs  # noqa: E402

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


def seed_history(playbook_key: str) -> None:
    """Every contact was emailed once, three days ago, by an earlier playbook (now archived):
    the caps' look-ups find a touch per contact, as they do in a workspace in use, and the
    touches table has statistics as autovacuum would have gathered them."""
    row = service.get(playbook_key)
    db.session.execute(text("""
        UPDATE enrollments SET state = 'completed', next_run_at = NULL, left_at = now() - interval '3 days'
        WHERE playbook_id = :p"""), {"p": row.id})
    db.session.execute(text("""
        INSERT INTO touches (enrollment_id, playbook_id, account_id, contact_id, contact_key, step_id, step_index,
                             kind, channel, connector, status, payload, due_at, queued_at, claimed_at, sent_at,
                             attempts, created_at, updated_at)
        SELECT e.id, e.playbook_id, e.account_id, c.id, c.id, 'hello', 0, 'email', 'email', 'bench-log', 'sent',
               '{}'::jsonb, now() - interval '3 days', now() - interval '3 days', now() - interval '3 days',
               now() - interval '3 days', 1, now() - interval '3 days', now() - interval '3 days'
        FROM enrollments e JOIN contacts c ON c.account_id = e.account_id WHERE e.playbook_id = :p"""),
                       {"p": row.id})
    db.session.commit()
    service.archive(playbook_key)
    db.session.execute(text("ANALYZE"))
    db.session.commit()


def seed(n: int, start: int = 0) -> None:
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


def _proc_stats():
    """(pid, command name, parent, process group, CPU seconds, reaped children's CPU seconds,
    RSS bytes) of every process, from /proc."""
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        head, _, rest = stat.rpartition(b")")
        fields = rest.split()
        yield (int(entry), head.partition(b"(")[2].decode(), int(fields[1]), int(fields[2]),
               (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick,
               int(fields[21]) * page)


def postgres_cpu(database: str) -> float:
    """CPU seconds of the PostgreSQL server so far, but for the live backends of other
    databases: every live postgres process (the bench's backends, the WAL writer, the
    checkpointer, ...) plus what the postmaster has reaped (the backends that exited, such
    as a work horse's). A difference of two readings is the server's work in between;
    on a quiet machine it is the bench's."""
    procs = [p for p in _proc_stats() if p[1] == "postgres"]
    pids = {p[0] for p in procs}
    total = 0.0
    for pid, _name, parent, _group, cpu, children, _rss in procs:
        if parent not in pids:  # the postmaster
            total += cpu + children
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        # A backend's title: "postgres: 15/main: <user> <database> <client> <state>".
        if len(title) >= 4 and title[2] not in ("checkpointer", "background", "walwriter", "autovacuum",
                                                "logical", "archiver", "stats") and title[3] != database:
            continue
        total += cpu
    return total


def arrive_steadily(playbook_id: int, rate: float, delay: float = 2.0) -> float:
    """The playbook's enrollments become due one after another, ``rate`` a second, the
    first ``delay`` seconds from now; returns the bench's clock (``perf_counter``) then."""
    db.session.execute(text("""
        UPDATE enrollments SET next_run_at = now() + make_interval(secs => :delay + (r.n - 1) / :rate)
        FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM enrollments WHERE playbook_id = :p) AS r
        WHERE enrollments.id = r.id"""), {"delay": delay, "rate": float(rate), "p": playbook_id})
    db.session.commit()
    return time.perf_counter() + delay


def park(playbook_id: int) -> None:
    """Nothing of the playbook is due until :func:`arrive_steadily` says when."""
    db.session.execute(text("UPDATE enrollments SET next_run_at = now() + interval '1 day' WHERE playbook_id = :p"),
                       {"p": playbook_id})
    db.session.commit()


def scheduler_process(instance: str) -> subprocess.Popen:
    """``abm scheduler``, as in production: the dispatcher, recovery and sweep on their periods."""
    env = dict(os.environ, ABM_DATABASE_URL=PG_URL, ABM_REDIS_URL=REDIS_URL, ABM_INSTANCE_PATH=instance,
               ABM_ENV="testing")
    return subprocess.Popen([sys.executable, "-c", "from abm.cli import main; main(prog_name='abm')", "scheduler"],
                            cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_process(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def lag_line(lags: list[float]) -> str:
    return f"p50 {statistics.median(lags):.2f} s, p95 {lags[int(len(lags) * 0.95) - 1]:.2f} s, max {lags[-1]:.2f} s"


class Workers:
    """``abm worker`` processes, with their peak memory sampled from /proc."""

    def __init__(self, count: int, instance: str, queues: tuple[str, ...] = ("touches",), fork: bool = False):
        env = dict(os.environ, ABM_DATABASE_URL=PG_URL, ABM_REDIS_URL=REDIS_URL, ABM_INSTANCE_PATH=instance,
                   ABM_ENV="testing")
        # `python -c` with the repository as the working directory, like `abm worker touches`.
        command = [sys.executable, "-c", "from abm.cli import main; main(prog_name='abm')", "worker", *queues,
                   *(("--fork",) if fork else ())]
        self.procs = [subprocess.Popen(command, cwd=ROOT,
                                       env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL) for _ in range(count)]
        self.peak = [0] * count
        self._stop = False
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        groups = {p.pid: i for i, p in enumerate(self.procs)}
        while not self._stop:
            for _pid, _name, _parent, group, _cpu, _children, rss in _proc_stats():
                if group in groups:
                    self.peak[groups[group]] = max(self.peak[groups[group]], rss)
            time.sleep(0.2)

    def wait_ready(self, timeout: float = 120) -> None:
        """Until every worker has registered with RQ (started, its app made): the clock of
        a run must not count a worker's start."""
        connection = redis_lib.Redis.from_url(REDIS_URL)
        deadline = time.monotonic() + timeout
        while Worker.count(connection=connection) < len(self.procs):
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start")
            time.sleep(0.2)
        time.sleep(1)  # and is listening

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


def wait_sent(expected: int, timeout: float, playbook_id: int) -> float:
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        sent = db.session.execute(select(func.count()).select_from(Touch).where(
            Touch.status == "sent", Touch.playbook_id == playbook_id)).scalar_one()
        if sent >= expected:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {sent} of {expected} touches sent")
        time.sleep(0.25)  # a count over every touch: polled gently, it is not free


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touches", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fork", action="store_true", help="run the workers with --fork (a work horse per job)")
    parser.add_argument("--arrival", type=float, default=0,
                        help="steady arrival: enrollments due RATE a second while the workers run (0: all at once)")
    args = parser.parse_args()

    fresh_database()
    database = PG_URL.rsplit("/", 1)[1]
    instance = tempfile.mkdtemp(prefix="abm-bench-")
    os.environ["ABM_INSTANCE_PATH"] = instance
    app = make_app()
    log_path = Path(instance) / "sent.jsonl"
    with app.app_context():
        redis_lib.Redis.from_url(REDIS_URL).flushdb()
        connectors.create({"type": "log", "name": "bench-log", "settings": {"path": str(log_path), "keep": 1},
                           "default": ["email", "ads", "alert", "task", "webhook"]})
        seed(args.touches)
        service.apply(PLAYBOOK.format().replace("bench-dispatch", "bench-history"), "history.yaml")
        service.activate("bench-history")
        seed_history("bench-history")
        service.apply(PLAYBOOK.format(), "bench.yaml")
        service.activate("bench-dispatch")
        playbook_id = service.get("bench-dispatch").id
        if args.arrival:
            park(playbook_id)
        workers = Workers(args.workers, instance, queues=("dispatch", "touches"), fork=args.fork)
        scheduler = scheduler_process(instance) if args.arrival else None
        try:
            workers.wait_ready()
            if scheduler is not None:
                time.sleep(3)  # and the scheduler (the first arrival is 2 s later still)
            workers_cpu, server_cpu = workers.cpu_seconds(), postgres_cpu(database)
            if args.arrival:
                started = arrive_steadily(playbook_id, args.arrival)
                chains = "abm scheduler's"
            else:
                started = time.perf_counter()
                chains = dispatcher.run_dispatch()["chains_started"]
            finished = wait_sent(args.touches, timeout=600, playbook_id=playbook_id)
            time.sleep(0.5)  # the last work horse is reaped
            workers_cpu = workers.cpu_seconds() - workers_cpu
            server_cpu = postgres_cpu(database) - server_cpu
            lags = sorted((t.sent_at - t.due_at).total_seconds() for t in db.session.execute(
                select(Touch.due_at, Touch.sent_at).where(Touch.status == "sent", Touch.playbook_id == playbook_id)))
            rate = args.touches / (finished - started)

            if scheduler is not None:
                stop_process(scheduler)
                scheduler = None
            single_rate = _single_job_rate(args, playbook_id) if args.single else None
        finally:
            if scheduler is not None:
                stop_process(scheduler)
            workers.stop()
        sent_lines = sum(1 for _ in log_path.open())
        mode = f"steady arrival, {args.arrival:,.0f} due a second" if args.arrival else "burst, all due at once"
        print(f"touches: {args.touches} (email, rendered; {mode}), workers: {args.workers}, cores: {os.cpu_count()}")
        print(f"end to end: {rate:8,.0f} touches/s  ({finished - started:.1f} s; {chains} dispatcher chains)")
        per_touch = workers_cpu / args.touches
        print(f"CPU per touch: workers {per_touch * 1000:.2f} ms (dispatching and sending), PostgreSQL "
              f"{server_cpu / args.touches * 1000:.2f} ms -> {2 / (per_touch + server_cpu / args.touches):,.0f}"
              f" touches/s on 2 idle cores ({2 / per_touch:,.0f} without PostgreSQL's)")
        print(f"lag from the step's due time to the send: {lag_line(lags)}")
        if single_rate:
            print(f"one RQ job per touch: {single_rate:8,.0f} touches/s over {args.single} touches "
                  f"-> batched is {rate / single_rate:.1f}x")
        print("peak worker RSS: " + ", ".join(f"{p / 2**20:.0f} MB" for p in workers.peak))
        print(f"lines at the connector: {sent_lines} (expected {args.touches + args.single})")
        print("targets: >= 2,000 touches/s, >= 20x one-job-per-touch, lag p95 < 5 s, worker RSS < 300 MB")
    return 0


def _single_job_rate(args, playbook_id: int) -> float:
    """The reference: one RQ job per touch, same workers, same connector, over ``args.single``
    touches sent again."""
    single_ids = [t for t, in db.session.execute(
        select(Touch.id).where(Touch.playbook_id == playbook_id).order_by(Touch.id).limit(args.single))]
    db.session.execute(update(Touch).where(Touch.id.in_(single_ids)).values(
        status="queued", claimed_at=None, sent_at=None, queued_at=utcnow()))
    db.session.commit()

    queue = Queue("touches", connection=redis_lib.Redis.from_url(REDIS_URL))
    started_single = time.perf_counter()
    queue.enqueue_many([Queue.prepare_data(jobs.send_touches, args=([i], "bench-log"), result_ttl=60)
                        for i in single_ids])
    finished_single = wait_sent(args.touches, timeout=900, playbook_id=playbook_id)
    return args.single / (finished_single - started_single)


if __name__ == "__main__":
    sys.exit(main())
