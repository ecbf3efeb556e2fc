"""The periodic jobs: the scheduler enqueues every one, and each runs to the end."""

from __future__ import annotations

from rq import Queue, SimpleWorker

from abm.redis_conn import get_redis
from workers import engagement_jobs, scheduler
from workers.queues import QUEUE_NAMES


def test_every_periodic_job_the_scheduler_starts_runs_without_failing(app):
    """What `abm scheduler` does at start, then `abm worker`: every registered periodic job is enqueued on
    its queue, and each runs to the end on a fresh workspace (a misnamed job, a wrong queue or a job that
    raises would show here)."""
    conn = get_redis()
    cron = scheduler.build(conn)
    registered = cron.get_jobs()
    assert len(cron.enqueue_jobs()) == len(registered) >= 15
    queues = [Queue(name, connection=conn) for name in QUEUE_NAMES]
    assert sum(q.count for q in queues) >= len(registered)  # each on a queue a worker listens to
    SimpleWorker(queues, connection=conn).work(burst=True, logging_level="ERROR")
    failures = {job_id: q.fetch_job(job_id).exc_info.strip().splitlines()[-1]
                for q in queues for job_id in q.failed_job_registry.get_job_ids()}
    assert failures == {}
    assert sum(q.count for q in queues) == 0


def test_periodic_engagement_jobs_run(app):
    assert engagement_jobs.drain_events()["stored"] == 0
    assert engagement_jobs.match_pending() == 0
    engagement_jobs.refresh_scores()
    assert engagement_jobs.snapshot_scores() == 0
    assert engagement_jobs.surge_alerts() == 0
    assert engagement_jobs.refresh_kpi_rollups() == 2  # the default view: 90 days by playbook and by channel
    assert engagement_jobs.purge_idempotency_keys() == 0
