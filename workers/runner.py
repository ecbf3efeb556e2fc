"""Running an RQ worker inside the application's context."""

from __future__ import annotations

import gc

from rq import SimpleWorker, Worker
from sqlalchemy.orm import configure_mappers

import workers.dispatcher  # noqa: F401 - the job modules, loaded before the first job (see run_worker)
import workers.jobs  # noqa: F401
from abm.redis_conn import get_redis
from connectors import registry
from workers.queues import QUEUE_NAMES, get_queue
from workers.scheduler import start_in_thread


class _InAppContext:
    flask_app = None

    def perform_job(self, job, queue, *args, **kwargs):
        # RQ 3 passes the execution as a third argument.
        with self.flask_app.app_context():
            return super().perform_job(job, queue, *args, **kwargs)


class AppWorker(_InAppContext, Worker):
    """RQ's forking worker (a work horse per job) whose jobs run inside a Flask app context."""


class AppSimpleWorker(_InAppContext, SimpleWorker):
    """RQ's ``SimpleWorker`` (jobs in the worker's own process) inside a Flask app context:
    what ``abm worker`` runs unless told ``--fork``.

    A forked work horse starts cold: a new database connection (a new PostgreSQL backend
    with empty catalog caches), SQLAlchemy statements compiled again, playbooks and
    connectors loaded again -- about 40 ms of CPU per job here, several percent of a
    1,000-touch job (the dispatch benchmark's workers need a third less CPU per touch
    without forking). In one process they are made once. The jobs keep no state between
    runs but these caches (keyed by immutable things: a playbook version, a template's
    source); RQ's job timeout still applies (SIGALRM in the worker)."""


def run_worker(app, queues: list[str], burst: bool = False, with_scheduler: bool = False,
               fork: bool = False) -> int:
    conn = get_redis(app)
    # Load the connector types (requests and the providers' modules) and set up the ORM
    # mappers once here, before the first job, as the job modules imported above (with
    # --fork, every work horse inherits them instead of paying for them per job).
    registry.all_types()
    configure_mappers()

    # What is loaded now stays out of the cyclic garbage collector's way: a forked work
    # horse does not copy those pages when a collection walks them, and neither process
    # walks them again.
    gc.collect()
    gc.freeze()

    names = queues or list(QUEUE_NAMES)
    worker_class = AppWorker if fork else AppSimpleWorker
    worker_class.flask_app = app
    if with_scheduler:
        start_in_thread(app)  # the periodic jobs (dispatcher, sweeps, recovery) too
    worker = worker_class([get_queue(n, conn) for n in names], connection=conn)
    worker.work(burst=burst, with_scheduler=with_scheduler, logging_level="WARNING")
    return 0
