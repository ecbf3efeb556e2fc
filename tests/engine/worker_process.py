"""A real RQ worker process for the fault tests: ``python -m tests.engine.worker_process``.

Reads ABM_DATABASE_URL, ABM_REDIS_URL, ABM_INSTANCE_PATH like ``abm worker``, registers
the slow test connector type, and works the ``touches`` queue, or the queues named in
``QUEUES`` (comma-separated), until stopped (``BURST=1``: until empty).
``DISPATCH_BATCH_SIZE`` sets the dispatcher chains' batch size; ``FORK=0`` runs the jobs in
this process (as ``abm worker`` does; by default a work horse per job, ``--fork``).
"""

from __future__ import annotations

import os
import sys

import config
import connectors.registry as registry
import workers.dispatcher  # loaded before forking, as run_worker does
import workers.jobs  # noqa: F401
from abm import create_app
from abm.redis_conn import get_redis
from workers.queues import get_queue
from workers.runner import AppSimpleWorker, AppWorker


def main() -> int:
    registry.BUILTIN["slowlog"] = "tests.engine.slow_connector:SlowLogConnector"
    registry.reset_cache()

    app = create_app(config.TestingConfig(),
                     ABM_TOUCH_LEASE_SECONDS=int(os.environ.get("ABM_TOUCH_LEASE_SECONDS", "30")))
    conn = get_redis(app)

    if os.environ.get("DISPATCH_BATCH_SIZE"):
        workers.dispatcher.BATCH_SIZE = int(os.environ["DISPATCH_BATCH_SIZE"])
    worker_class = AppSimpleWorker if os.environ.get("FORK") == "0" else AppWorker
    worker_class.flask_app = app
    queues = [get_queue(name, conn) for name in os.environ.get("QUEUES", "touches").split(",")]
    worker = worker_class(queues, connection=conn)
    worker.work(burst=os.environ.get("BURST") == "1", logging_level=os.environ.get("LOG", "WARNING"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
