"""workers/enqueue.py names each job by its function: the jobs it makes run functions of workers/."""

from __future__ import annotations

from rq import Queue

from abm.redis_conn import get_redis
from workers import enqueue, import_jobs, jobs


def test_the_jobs_enqueue_makes_are_the_functions_it_imports(app):
    enqueue.touches([(1, "log"), (2, "log")])
    enqueue.import_run(7)
    touch_job = Queue("touches", connection=get_redis()).jobs[0]
    import_job = Queue("imports", connection=get_redis()).jobs[0]
    assert (touch_job.func, touch_job.args) == (jobs.send_touches, ([1, 2], "log"))
    assert (import_job.func, import_job.args) == (import_jobs.run_import, (7,))
