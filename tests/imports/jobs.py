"""Run the queued import jobs the way a worker does (RQ's SimpleWorker, burst, on the imports queue)."""

from __future__ import annotations

from rq import Queue, SimpleWorker

from abm.redis_conn import get_redis


def run_import_jobs() -> int:
    """Run the imports queue to empty in this process; the jobs that ran."""
    conn = get_redis()
    queue = Queue("imports", connection=conn)
    ran = queue.count
    SimpleWorker([queue], connection=conn).work(burst=True, logging_level="WARNING")
    return ran
