"""Where services hand work to the queues: the one module of ``workers/`` that services import.

A service writes its rows, commits, then calls one function here; it never builds an RQ
``Queue`` itself. The job each function enqueues is named once, in :data:`JOBS` (a dotted
path, so that this module imports no service: the job modules import services, and
services import this module); ``tests/test_enqueue.py`` checks that every name resolves.
"""

from __future__ import annotations

from abm.redis_conn import get_redis
from workers.queues import get_queue

#: The job functions this module enqueues, by what they do.
JOBS = {
    "email_to_self": "workers.send_to_self_jobs.send_test_email",
    "import": "workers.import_jobs.run_import",
    "password_reset": "workers.user_jobs.send_password_reset",
}
#: An import of the largest file the API accepts takes minutes; a stuck one is stopped after this.
IMPORT_TIMEOUT = 3600


def import_run(run_id: int, connection=None) -> str:
    """Queue the import run ``run_id`` (a committed ``ImportRun``) on the ``imports`` queue; the job's id."""
    queue = get_queue("imports", connection or get_redis())
    job = queue.enqueue(JOBS["import"], run_id, job_timeout=IMPORT_TIMEOUT, result_ttl=86400,
                        description=f"import run {run_id}")
    return job.id


def email_to_self(connector: str, payload: dict, to: str, account: dict, contact: dict, playbook: dict,
               connection=None) -> str:
    """Queue a test of an email step (``workers.send_to_self_jobs``) on the ``touches`` queue; the job's id."""
    queue = get_queue("touches", connection or get_redis())
    job = queue.enqueue(JOBS["email_to_self"], connector, payload, to, account, contact, playbook, job_timeout=120,
                        result_ttl=3600, failure_ttl=86400, description=f"test of {playbook.get('key')} to {to}")
    return job.id


def password_reset(user_id: int, connection=None) -> str:
    """Queue the password-reset email to user ``user_id`` (``workers.user_jobs``) on the default queue; the job's id."""
    queue = get_queue("default", connection or get_redis())
    job = queue.enqueue(JOBS["password_reset"], user_id, job_timeout=120, result_ttl=3600, failure_ttl=86400,
                        description=f"password reset link to user {user_id}")
    return job.id
