"""Running an RQ worker inside the application's context."""

from __future__ import annotations

from rq import Worker

from workers.queues import QUEUE_NAMES, get_queue


class AppWorker(Worker):
    """An ordinary RQ worker whose jobs run inside a Flask app context."""

    flask_app = None

    def perform_job(self, job, queue, *args, **kwargs):
        # RQ 3 passes the execution as a third argument.
        with self.flask_app.app_context():
            return super().perform_job(job, queue, *args, **kwargs)


def run_worker(app, queues: list[str], burst: bool = False, with_scheduler: bool = False) -> int:
    from abm.redis_conn import get_redis

    conn = get_redis(app)
    # Import the job modules, the connector types (requests and the providers' modules) and
    # set up the ORM mappers once here: every forked work horse inherits them instead of
    # paying for them per job.
    from sqlalchemy.orm import configure_mappers

    import workers.dispatcher  # noqa: F401
    import workers.jobs  # noqa: F401
    from connectors import registry

    registry.all_types()
    configure_mappers()

    names = queues or list(QUEUE_NAMES)
    AppWorker.flask_app = app
    if with_scheduler:
        from workers.scheduler import start_in_thread

        start_in_thread(app)  # the periodic jobs (dispatcher, sweeps, recovery) too
    worker = AppWorker([get_queue(n, conn) for n in names], connection=conn)
    ok = worker.work(burst=burst, with_scheduler=with_scheduler, logging_level="WARNING")
    return 0 if ok or not burst else 0
