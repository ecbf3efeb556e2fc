"""Retries, rate limits and dead workers with the production recipe: ``abm worker`` and
``abm scheduler`` processes (nothing else: no RQ scheduler), real PostgreSQL and Redis,
and a real HTTP receiver speaking the webhook connector's protocol.

- a ``429 Retry-After: 7`` is retried no sooner than 7 s and within 7 s plus the
  dispatcher's period (``workers.scheduler.DISPATCH_PERIOD``, 1 s);
- a connector at ``10/1``: 100 calls through two workers take at least 9 s, timed from
  the first call's arrival at the receiver (call k no sooner than (k - 9) / 10 s after it);
- the worker that holds the job in flight (found by RQ's record of its current job),
  killed, does not stall its connector for more than a minute (default lease): the
  other worker sends the rest, and only the call in flight can arrive twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from flask import jsonify, request
from rq import Worker
from rq.job import Job
from sqlalchemy import func, select

from abm.db import db, utcnow
from abm.models import Account, Contact, Touch
from abm.redis_conn import get_redis
from abm.services import connectors
from abm.services import playbooks as service
from tests.connectors.fakes.webhook_receiver import receiver_app
from tests.connectors.harness import serve
from tests.engine.processes import Abm, Recipe, wait_for
from workers import dispatcher, enqueue
from workers.scheduler import DISPATCH_PERIOD

SECRET = "shared-secret-0123456789"
#: Starting a job and answering a request take a moment on a loaded machine.
SLACK = 2.5
#: How much sooner than its token a call may be seen to arrive: the first call's own way
#: to the receiver (a new connection) against a later one's.
TOLERANCE = 0.15

PLAYBOOK = """version: 1
key: hooks
name: Hooks
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: notify
    webhook: {connector: hook, payload: {domain: "{{ account.domain }}"}}
"""


@pytest.fixture(autouse=True)
def _postgresql_only(backend):
    if backend != "postgresql":
        pytest.skip("the production recipe's processes run against PostgreSQL here (SQLite: tests/engine/test_failures.py)")


class Receiver:
    """The webhook receiver, with the arrival time of every POST and a script of answers."""

    def __init__(self, delay: float = 0.0):
        self.app = receiver_app(SECRET)
        self.arrivals: list[tuple[float, str]] = []
        self.answers: list[tuple[int, dict]] = []  # answered first, in order
        self.lock = threading.Lock()
        self.delay = delay
        self.app.before_request(self._before)

    def _before(self):
        with self.lock:
            self.arrivals.append((time.monotonic(), request.headers.get("webhook-id", "")))
            scripted = self.answers.pop(0) if self.answers else None
        if self.delay:
            time.sleep(self.delay)
        if scripted:
            status, headers = scripted
            return jsonify(error="scripted"), status, headers
        return None

    def delivered(self) -> Counter:
        return Counter(d["id"] for d in self.app.config["RECEIVED"])


def _setup(n: int, server, rate_limit: str | None = None) -> None:
    db.session.add_all(Account(name=f"H{i}", domain=f"h{i}.example", tier=1) for i in range(n))
    db.session.flush()
    ids = db.session.execute(select(Account.id)).scalars().all()
    db.session.add_all(Contact(account_id=a, email=f"dm@{a}.example", buying_role="decision_maker") for a in ids)
    db.session.commit()
    connectors.create({"type": "webhook", "name": "hook", **({"rate_limit": rate_limit} if rate_limit else {}),
                       "settings": {"url": server.base_url + "/hooks/abm", "secret": SECRET, "timeout": 10}})
    service.apply(PLAYBOOK)
    service.activate("hooks")


def _statuses() -> Counter:
    db.session.rollback()
    return Counter(db.session.execute(select(Touch.status)).scalars())


def test_a_429_with_retry_after_7_is_retried_after_7_seconds_and_within_the_dispatch_period(app):
    receiver = Receiver()
    receiver.answers.append((429, {"Retry-After": "7"}))
    with serve(receiver.app) as server:
        _setup(1, server)
        with Recipe(app, workers=1):
            wait_for(lambda: len(receiver.arrivals) >= 2, 40, "the retry")
            wait_for(lambda: _statuses() == {"sent": 1}, 20, "the touch marked sent")
    first, second = receiver.arrivals[0][0], receiver.arrivals[1][0]
    assert 7.0 <= second - first <= 7.0 + DISPATCH_PERIOD + SLACK, second - first
    assert len(receiver.arrivals) == 2


def test_a_connector_at_10_per_second_keeps_its_pace_across_two_workers(app):
    receiver = Receiver()
    with serve(receiver.app) as server:
        _setup(100, server, rate_limit="10/1")
        dispatcher.dispatch(now=utcnow(), batch_size=10, enqueue=False)  # the workers' dispatch enqueues them
        with Recipe(app, workers=2, scheduler=False) as recipe:
            queued = db.session.execute(select(Touch.id, Touch.connector).order_by(Touch.id)).all()
            for start in range(0, 100, 10):  # ten jobs of ten: both workers take some
                enqueue.touches([tuple(r) for r in queued[start:start + 10]])
            wait_for(lambda: len(receiver.arrivals) >= 100, 60, "100 calls")
            assert all(w.alive() for w in recipe.workers)
    # Timed from the first call's arrival, not from before the workers booted (their start
    # alone takes seconds here): ten at once (the bucket's capacity), then ten a second, so
    # call k (k >= 10) arrives no sooner than (k - 9) / 10 s after the first. TOLERANCE: the
    # first request may take longer to arrive than the later ones (a new connection).
    first = receiver.arrivals[0][0]
    early = [(k, round(at - first, 2)) for k, (at, _) in enumerate(receiver.arrivals)
             if k >= 10 and at - first < (k - 9) / 10 - TOLERANCE]
    assert early == [], early
    assert receiver.arrivals[-1][0] - first >= 9.0 - TOLERANCE
    assert len(receiver.arrivals) == 100 and sorted(receiver.delivered().values()) == [1] * 100


def _sending(recipe: Recipe) -> Abm | None:
    """The recipe's worker running a touch job now: RQ's record of each worker (its pid and
    current job, in Redis) matched to our processes (``abm worker`` runs jobs in its own
    process)."""
    redis = get_redis()
    by_pid = {w.proc.pid: w for w in recipe.workers}
    for rq_worker in Worker.all(connection=redis):
        job_id = rq_worker.get_current_job_id()
        if job_id and rq_worker.pid in by_pid:
            job = Job.fetch(job_id, connection=redis)
            if job.func_name == "workers.jobs.send_touches":
                return by_pid[rq_worker.pid]
    return None


def _held() -> int:
    """Touches claimed by a job and not yet recorded."""
    db.session.rollback()
    return db.session.execute(select(func.count()).select_from(Touch).where(
        Touch.status == "queued", Touch.claimed_at.is_not(None))).scalar_one()


def test_a_killed_worker_does_not_stall_its_connector_for_more_than_a_minute(app):
    receiver = Receiver(delay=0.2)
    with serve(receiver.app) as server:
        _setup(40, server)
        with Recipe(app, workers=2) as recipe:
            wait_for(lambda: len(receiver.arrivals) >= 3, 30, "sending to start")
            victim = _sending(recipe)  # the worker holding the job in flight, not whichever came first
            assert victim is not None and _held() > 0
            victim.kill()
            killed_at = time.monotonic()
            stranded = _held()
            assert stranded > 0  # its claims stay until the lease runs out
            [survivor] = [w for w in recipe.workers if w is not victim]
            wait_for(lambda: _statuses() == {"sent": 40}, 90, "every touch sent after the kill", every=0.5)
            assert survivor.alive() and not victim.alive()
    # The call in flight may end just after the kill; the next arrival is the other worker's.
    resumed = next(at for at, _ in receiver.arrivals if at > killed_at + 0.5)
    assert resumed - killed_at <= 60, resumed - killed_at
    delivered = receiver.delivered()
    assert len(delivered) == 40
    assert sum(n - 1 for n in delivered.values()) <= 1  # a webhook call is one POST: the one in flight
