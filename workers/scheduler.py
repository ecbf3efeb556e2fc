"""The periodic jobs, on RQ's cron: the dispatcher, the audience sweep, lost-touch
recovery, the engagement drain and scores, KPI rollups, CRM polls and score write-back.

``abm scheduler`` runs :func:`run` (an RQ ``CronScheduler`` that enqueues the jobs on
the ``dispatch`` and ``events`` queues; ordinary workers run them).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

from rq.cron import CronScheduler

from abm.redis_conn import get_redis, persistence_problem
from abm.services import rollups
from workers.crm_jobs import PERIODIC as CRM

#: The dispatcher's period (seconds): how long a step that became due, a retry whose
#: ``not_before`` came or a send window that opened waits, at most, for a dispatcher to
#: start. At 5 s, 60,000 steps due 1,000 a second waited p95 5.9 s, at 1 s 2.0 s
#: (bench/README.md). Idle, the passes cost the workers about 14 ms of CPU a second more
#: than at 5 s (on PostgreSQL ``run_dispatch`` only starts the chains that are not
#: running, and each link's three queries find nothing due).
DISPATCH_PERIOD = 1
#: (function path, queue, every N seconds)
PERIODIC = (
    ("workers.dispatcher.run_dispatch", "dispatch", DISPATCH_PERIOD),
    ("workers.dispatcher.recover", "dispatch", 15),
    ("workers.dispatcher.run_sweep", "dispatch", 300),
)
ENGAGEMENT = (
    ("workers.engagement_jobs.drain_events", "events", 5),
    ("workers.engagement_jobs.match_pending", "events", 60),
    ("workers.engagement_jobs.refresh_scores", "events", 900),
    ("workers.engagement_jobs.snapshot_scores", "events", 3600),
    ("workers.engagement_jobs.surge_alerts", "events", 3600),
    # (a fourth item: the job's timeout, when not 12 periods)
    ("workers.engagement_jobs.refresh_kpi_rollups", "default", rollups.REFRESH_TICK,
     int(rollups.STALE_REFRESH.total_seconds())),
    ("workers.report_jobs.send_weekly_kpi_report", "default", 3600),
    ("workers.digest_jobs.send_weekly_digests", "default", 3600),
    ("workers.engagement_jobs.purge_idempotency_keys", "default", 3600),
    ("workers.engagement_jobs.purge_visit_addresses", "events", 3600),
    ("workers.engagement_jobs.purge_lookup_addresses", "default", 3600),
    ("workers.engagement_jobs.refresh_fit", "default", 86400),
    ("workers.identify_jobs.look_up_addresses", "default", 300),
)


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build(connection, include_engagement: bool = True):
    """A CronScheduler with every periodic job registered (not started)."""

    cron = CronScheduler(connection=connection, logging_level=logging.WARNING, name="")

    jobs = PERIODIC + ((ENGAGEMENT + CRM) if include_engagement else ())
    for path, queue, every, *timeout in jobs:
        func = _resolve(path)
        # A periodic job that outlives its period would pile up; let it expire instead.
        cron.register(func, queue_name=queue, interval=every,
                      job_timeout=timeout[0] if timeout else max(every * 12, 60),
                      ttl=max(every * 2, 10), result_ttl=60, failure_ttl=3600)
    return cron


def run(app) -> None:
    connection = get_redis(app)
    if app.config.get("ENV_NAME") == "production":
        problem = persistence_problem(connection)
        if problem:
            logging.getLogger("abm.scheduler").warning("%s", problem)
    build(connection).start()


def start_in_thread(app):
    """Run the cron loop in a daemon thread of this process (``abm worker --with-scheduler``)."""

    cron = build(get_redis(app))
    thread = threading.Thread(target=_loop, args=(cron,), name="abm-cron", daemon=True)
    thread.start()
    return thread


def _loop(cron) -> None:
    cron.register_birth()
    while True:
        if cron.enqueue_jobs():
            cron.save()
        cron.heartbeat()
        time.sleep(max(cron.calculate_sleep_interval(), 0.5))
