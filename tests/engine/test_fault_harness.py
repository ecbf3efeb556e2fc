"""The fault harness: a few hundred webhook touches through two real ``abm worker``
processes while the test SIGKILLs a worker at seeded random moments (ten times, a new
worker started each time), empties Redis once and drops every PostgreSQL connection of the
workers once. Counted at the receiver (a real HTTP server speaking the webhook protocol):
no touch lost, and no more repeats than the kills allow (a webhook call is one POST, so at
most one repeat per kill). Recovery runs every second here (the scheduler's runs every
15 s) with a 3 s lease, so that the run fits the suite.
"""

from __future__ import annotations

import random
import time

import pytest
import redis as redis_lib
from sqlalchemy import text

from abm.db import db, utcnow
from tests.connectors.harness import serve
from tests.engine.processes import Abm, wait_for
from tests.engine.test_delivery_processes import Receiver, _setup, _statuses
from workers import dispatcher

N_TOUCHES = 300
KILLS = 10


@pytest.fixture(autouse=True)
def _postgresql_only(backend):
    if backend != "postgresql":
        pytest.skip("the harness drops PostgreSQL connections (pg_terminate_backend)")


def _drop_worker_connections() -> None:
    db.session.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    db.session.commit()


def test_kills_an_emptied_redis_and_dropped_connections_lose_nothing(app):
    rng = random.Random(12)
    env = {"ABM_TOUCH_LEASE_SECONDS": "3"}
    app.config["ABM_TOUCH_LEASE_SECONDS"] = 3
    receiver = Receiver(delay=0.05)
    mid_run = 0
    with serve(receiver.app) as server:
        _setup(N_TOUCHES, server, rate_limit="1000/1")
        dispatcher.dispatch(now=utcnow(), batch_size=20)  # fifteen jobs of twenty
        workers = [Abm(app, "worker", **env) for _ in range(2)]
        try:
            for kill in range(KILLS):
                time.sleep(rng.uniform(0.3, 1.5))
                victim = workers.pop(rng.randrange(len(workers)))
                victim.kill()
                mid_run += len(receiver.arrivals) < N_TOUCHES
                workers.append(Abm(app, "worker", **env))
                if kill == 3:
                    redis_lib.Redis.from_url(app.config["REDIS_URL"]).flushdb()  # Redis back, empty
                if kill == 6:
                    _drop_worker_connections()
                dispatcher.recover(now=utcnow())

            def settled() -> bool:
                dispatcher.recover(now=utcnow())
                return _statuses() == {"sent": N_TOUCHES}

            wait_for(settled, 120, "every touch sent", every=1.0)
        finally:
            for w in workers:
                w.kill()
    assert mid_run >= KILLS // 2, mid_run  # the kills came while there was sending to interrupt
    delivered = receiver.delivered()
    assert len(delivered) == N_TOUCHES  # none lost
    assert sum(n - 1 for n in delivered.values()) <= KILLS  # at most the one call in flight per kill
