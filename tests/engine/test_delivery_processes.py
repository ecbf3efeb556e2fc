"""Retries, rate limits and dead workers with the production recipe: ``abm worker`` and
``abm scheduler`` processes (nothing else: no RQ scheduler), real PostgreSQL and Redis,
and a real HTTP receiver speaking the webhook connector's protocol.

- a ``429 Retry-After: 7`` is retried no sooner than 7 s and within 7 s plus the
  dispatcher's period (5 s);
- a connector at ``10/1``: 100 calls through two workers take at least 9 s;
- a worker killed in the middle of its job does not stall its connector for more than a
  minute (default lease): the other worker sends the rest, and only the call in flight
  can arrive twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from flask import jsonify, request
from sqlalchemy import select

from abm.db import db, utcnow
from abm.models import Account, Contact, Touch
from abm.services import connectors
from abm.services import playbooks as service
from tests.connectors.fakes.webhook_receiver import receiver_app
from tests.connectors.harness import serve
from tests.engine.processes import Recipe, wait_for
from workers import dispatcher, enqueue

SECRET = "shared-secret-0123456789"
DISPATCH_PERIOD = 5.0
#: Starting a job and answering a request take a moment on a loaded machine.
SLACK = 2.5

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
        started = time.monotonic()
        with Recipe(app, workers=2, scheduler=False) as recipe:
            queued = db.session.execute(select(Touch.id, Touch.connector).order_by(Touch.id)).all()
            for start in range(0, 100, 10):  # ten jobs of ten: both workers take some
                enqueue.touches([tuple(r) for r in queued[start:start + 10]])
            wait_for(lambda: len(receiver.arrivals) >= 100, 60, "100 calls")
            assert all(w.alive() for w in recipe.workers)
    elapsed = receiver.arrivals[-1][0] - started
    assert elapsed >= 9.0, elapsed  # ten at once (the bucket's capacity), then ten a second
    assert len(receiver.arrivals) == 100 and sorted(receiver.delivered().values()) == [1] * 100


def test_a_killed_worker_does_not_stall_its_connector_for_more_than_a_minute(app):
    receiver = Receiver(delay=0.2)
    with serve(receiver.app) as server:
        _setup(40, server)
        with Recipe(app, workers=2) as recipe:
            wait_for(lambda: len(receiver.arrivals) >= 3, 30, "sending to start")
            victim = recipe.workers[0]
            victim.kill()
            killed_at = time.monotonic()
            wait_for(lambda: _statuses() == {"sent": 40}, 90, "every touch sent after the kill", every=0.5)
    # The call in flight may end just after the kill; the next arrival is the other worker's.
    resumed = next(at for at, _ in receiver.arrivals if at > killed_at + 0.5)
    assert resumed - killed_at <= 60, resumed - killed_at
    delivered = receiver.delivered()
    assert len(delivered) == 40
    assert sum(n - 1 for n in delivered.values()) <= 1  # a webhook call is one POST: the one in flight
