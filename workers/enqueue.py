"""Where services (and the dispatcher) hand work to the queues: the one module that makes
RQ jobs, and the one module of ``workers/`` that services import.

A service writes its rows, commits, then calls one function here; it never builds an RQ
``Queue`` itself. Each job is named by its function, imported here, so a renamed job
breaks an import rather than a queue. The job modules import services and services
import this module, so the job functions are imported inside the functions that make
their jobs (:func:`_job_modules`), once the modules on both sides are loaded. Nothing relies on RQ's retries, rate limits or scheduler:
a touch that fails retryably is released with a ``not_before`` and the dispatcher
enqueues it again when that time comes; the pace of each provider is a token bucket
taken per call (``workers.ratelimit``).
"""

from __future__ import annotations

from collections import defaultdict

from rq import Queue

from abm.redis_conn import get_redis
from abm.services import connectors
from workers.queues import get_queue

#: At most this many touches per job: a job's fixed cost (its claim, look-ups; with
#: ``abm worker --fork`` a work horse's start too) is then a small part of each touch's.
JOB_SIZE = 1000
#: A job of a slow connector holds a worker about this long: its size is what the
#: connector's rate limit lets through in that time (so one slow provider does not keep
#: every worker waiting on its bucket while other connectors' jobs queue behind).
JOB_SECONDS = 10
#: Jobs of a connector whose provider call carries one touch (SMTP, webhooks, Slack, CRM
#: tasks) hold at most this many: a job's fixed cost (its claim, look-ups, a connection:
#: about 20 ms) stays under a tenth of its messages' (1 to 3 ms each), and a dispatcher
#: batch of 1,000 becomes four jobs that all workers share rather than one that a single
#: worker sends while the others wait.
ONE_BY_ONE_JOB_SIZE = 250
#: A key that lives as long as Redis keeps its data: recovery reads its absence as "Redis
#: lost its queues" and re-enqueues every queued touch at once (``dispatcher.recover``).
EPOCH_KEY = "abm:touches:epoch"

_JOB_OPTIONS = {"timeout": 900, "result_ttl": 300, "failure_ttl": 86400}
#: An import of the largest file the API accepts takes minutes; a stuck one is stopped after this.
IMPORT_TIMEOUT = 3600


def _job_modules():
    """The modules of the job functions (imported here, not at the top: they import the
    services that import this module)."""
    from workers import dispatcher, engagement_jobs, import_jobs, jobs, send_to_self_jobs, user_jobs  # noqa: PLC0415 - a cycle: see above

    return dispatcher, engagement_jobs, import_jobs, jobs, send_to_self_jobs, user_jobs


def job_size(connector_name: str) -> int:
    """Touches per job for this connector (see ``JOB_SECONDS``)."""
    try:
        config = connectors.get_config(connector_name)
    except Exception:  # noqa: BLE001 - an unknown connector fails at send time, with its reason
        return 100
    cls = connectors.type_of(config)
    per_call = cls.max_batch if cls else 100
    calls, seconds = connectors.rate_limit_of(config)
    size = int(max(per_call, min(JOB_SIZE, per_call * calls / max(seconds, 1) * JOB_SECONDS)))
    return min(size, ONE_BY_ONE_JOB_SIZE) if per_call == 1 else size


def touches(pairs: list[tuple[int, str | None]], connection=None) -> int:
    """Jobs of :func:`workers.jobs.send_touches` for (touch id, connector) pairs, per
    connector and :func:`job_size`, in one ``enqueue_many``. Returns how many jobs."""
    if not pairs:
        return 0
    connection = connection or get_redis()
    by_connector: dict[str | None, list[int]] = defaultdict(list)
    for touch_id, connector in pairs:
        by_connector[connector].append(touch_id)
    jobs = _job_modules()[3]
    prepared = []
    for connector, ids in by_connector.items():
        size = job_size(connector or "")
        ids.sort()
        prepared.extend(Queue.prepare_data(jobs.send_touches, args=(ids[i:i + size], connector), **_JOB_OPTIONS)
                        for i in range(0, len(ids), size))
    queue = get_queue("touches", connection)
    with connection.pipeline() as pipe:
        queue.enqueue_many(prepared, pipeline=pipe)
        pipe.set(EPOCH_KEY, 1, nx=True)
        pipe.execute()
    return len(prepared)


def redis_was_emptied(connection=None) -> bool:
    """True when Redis no longer had the key every enqueue sets (it restarted empty, or was
    flushed: the jobs of queued touches are gone); the key is set again."""
    return bool((connection or get_redis()).set(EPOCH_KEY, 1, nx=True))


def dispatch_link(number: int, queue_name: str, connection=None) -> None:
    """The next link of dispatcher chain ``number`` (see ``workers.dispatcher``)."""
    dispatcher = _job_modules()[0]
    get_queue(queue_name, connection or get_redis()).enqueue(
        dispatcher.dispatch_chain, number, job_timeout=600, result_ttl=60, failure_ttl=3600)


def rescore() -> None:
    """Re-score every account's history in the background (the scoring rules changed)."""
    get_queue("events", get_redis()).enqueue(_job_modules()[1].recompute_scores, job_timeout=3600)


def import_run(run_id: int, connection=None) -> str:
    """Queue the import run ``run_id`` (a committed ``ImportRun``) on the ``imports`` queue; the job's id."""
    queue = get_queue("imports", connection or get_redis())
    job = queue.enqueue(_job_modules()[2].run_import, run_id, job_timeout=IMPORT_TIMEOUT, result_ttl=86400,
                        description=f"import run {run_id}")
    return job.id


def email_to_self(connector: str, payload: dict, to: str, account: dict, contact: dict, playbook: dict,
               connection=None) -> str:
    """Queue a test of an email step (``workers.send_to_self_jobs``) on the ``touches`` queue; the job's id."""
    queue = get_queue("touches", connection or get_redis())
    job = queue.enqueue(_job_modules()[4].send_test_email, connector, payload, to, account, contact, playbook, job_timeout=120,
                        result_ttl=3600, failure_ttl=86400, description=f"test of {playbook.get('key')} to {to}")
    return job.id


def password_reset(user_id: int, connection=None) -> str:
    """Queue the password-reset email to user ``user_id`` (``workers.user_jobs``) on the default queue; the job's id."""
    queue = get_queue("default", connection or get_redis())
    job = queue.enqueue(_job_modules()[5].send_password_reset, user_id, job_timeout=120, result_ttl=3600, failure_ttl=86400,
                        description=f"password reset link to user {user_id}")
    return job.id
