"""Dispatcher chains on PostgreSQL: two real worker processes serving the ``dispatch`` and
``touches`` queues (one running jobs in its own process, as ``abm worker`` does, one
forking a work horse per job: ``abm worker --fork``) dispatch in parallel and send, every
touch exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis as redis_lib
from rq import Queue
from rq.registry import FinishedJobRegistry
from sqlalchemy import func, select

from abm.db import db
from abm.models import Enrollment, Touch
from abm.services import connectors
from abm.services import playbooks as service
from tests.engine.test_faults import PLAYBOOK, ROOT, _accounts, _lines
from workers import dispatcher

N = 300
BATCH = 25


def _workers(app) -> list[subprocess.Popen]:
    env = dict(os.environ, ABM_DATABASE_URL=app.config["DATABASE_URL"], ABM_REDIS_URL=app.config["REDIS_URL"],
               ABM_INSTANCE_PATH=app.instance_path, QUEUES="dispatch,touches", DISPATCH_BATCH_SIZE=str(BATCH))
    return [subprocess.Popen([sys.executable, "-m", "tests.engine.worker_process"], cwd=ROOT, env=dict(env, FORK=fork),
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for fork in ("1", "0")]


def _sent() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count()).select_from(Touch).where(Touch.status == "sent")).scalar_one()


def _playbook(tmp_path):
    _accounts(N)
    log = tmp_path / "sent.jsonl"
    connectors.create({"type": "log", "name": "fast", "settings": {"path": str(log)}})
    service.apply(PLAYBOOK.replace("CONNECTOR", "fast"))
    service.activate("faults")
    return log


def test_on_sqlite_the_periodic_job_dispatches_in_its_own_process(app, backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("PostgreSQL starts dispatcher chains (below)")
    _playbook(tmp_path)
    stats = dispatcher.run_dispatch()
    assert stats["queued"] == N and "chains_started" not in stats
    assert Queue("touches", connection=redis_lib.Redis.from_url(app.config["REDIS_URL"])).count == stats["jobs"]


def test_dispatcher_chains_share_the_work_and_send_each_touch_once(app, backend, tmp_path):
    if backend != "postgresql":
        pytest.skip("parallel dispatch is PostgreSQL's (SKIP LOCKED); SQLite runs one dispatcher")
    log = _playbook(tmp_path)
    redis = redis_lib.Redis.from_url(app.config["REDIS_URL"])
    procs = _workers(app)
    try:
        assert dispatcher.run_dispatch() == {"chains_started": 2}
        assert dispatcher.run_dispatch() == {"chains_started": 0}  # both chains are running
        deadline = time.monotonic() + 90
        while _sent() < N or any(redis.exists(dispatcher.CHAIN_KEY.format(n)) for n in range(2)):
            assert time.monotonic() < deadline, f"{_sent()} of {N} sent"
            time.sleep(0.1)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(20)
    calls = Counter(line["key"] for line in _lines(log))
    assert len(calls) == N and set(calls.values()) == {1}
    assert db.session.execute(select(func.count()).select_from(Enrollment).where(
        Enrollment.state == "active", Enrollment.next_run_at.is_not(None))).scalar_one() == 0
    links = []
    for name in ("dispatch", "touches"):
        queue = Queue(name, connection=redis)
        for job in queue.job_class.fetch_many(FinishedJobRegistry(queue=queue).get_job_ids(), connection=redis):
            if job is not None and job.func_name == "workers.dispatcher.dispatch_chain":
                links.append((job.origin, job.args[0], job.return_value()))
    # N / BATCH batches, LINK_BATCHES per link: both chains ran, their later links behind the sends.
    assert {number for _, number, _ in links} == {0, 1}
    assert sum(stats.get("enrollments", 0) for _, _, stats in links) == N
    assert Counter(origin for origin, _, _ in links)["dispatch"] == 2
    assert len(links) >= N // BATCH // dispatcher.LINK_BATCHES


def test_a_chain_whose_link_was_lost_is_started_again_when_its_key_expires(app, backend):
    if backend != "postgresql":
        pytest.skip("dispatcher chains are PostgreSQL's")
    app.config["ABM_DISPATCHERS"] = 3
    redis = redis_lib.Redis.from_url(app.config["REDIS_URL"])
    dispatch_queue = Queue("dispatch", connection=redis)
    assert dispatcher.run_dispatch() == {"chains_started": 3} and dispatch_queue.count == 3
    assert dispatcher.run_dispatch() == {"chains_started": 0}  # their keys are held
    assert 0 < redis.ttl(dispatcher.CHAIN_KEY.format(1)) <= dispatcher.CHAIN_LEASE_SECONDS
    dispatch_queue.empty()  # the links are lost (Redis emptied of its jobs, a worker killed) ...
    redis.delete(dispatcher.CHAIN_KEY.format(1))  # ... and chain 1's key expired
    assert dispatcher.run_dispatch() == {"chains_started": 1}
    assert [job.args for job in dispatch_queue.jobs] == [(1,)]
