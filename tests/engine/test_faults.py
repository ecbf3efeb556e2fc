"""Exactly once under faults, counted at the connector.

Real worker processes (``tests/engine/worker_process.py``, an RQ worker like ``abm
worker``) send through a slow connector that appends one line per touch it accepts:

- a worker killed with SIGKILL in the middle of a batch: afterwards every touch was
  sent, and only the touches of the batch in flight at the kill can have reached the
  provider twice (the documented at-least-once window; ``Touch.key`` lets a provider
  drop them: by key, every touch arrived exactly once);
- a job that outlives two leases keeps its claims by its heartbeat: recovery, run all
  along, takes nothing, and every touch arrives once;
- Redis flushed (our db only) in the middle of a run: every touch sent exactly once;
- two dispatchers at once on PostgreSQL: every due enrollment advanced by exactly
  one of them, every touch enqueued once and sent once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import func, select

import connectors.registry as registry
from abm.db import db, utcnow
from abm.models import Account, Contact, Touch
from abm.redis_conn import get_redis
from abm.services import connectors
from abm.services import connectors as connector_service
from abm.services import playbooks as service
from tests.engine.conftest import run_worker
from tests.engine.slow_connector import SlowLogConnector
from workers import dispatcher

ROOT = Path(__file__).resolve().parents[2]
LEASE = 2
N_ACCOUNTS = 30

PLAYBOOK = """version: 1
key: faults
name: Faults
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    email:
      connector: CONNECTOR
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi</p>"
"""


@pytest.fixture
def slow(app, tmp_path):
    registry.BUILTIN["slowlog"] = "tests.engine.slow_connector:SlowLogConnector"
    registry.reset_cache()
    app.config["ABM_TOUCH_LEASE_SECONDS"] = LEASE
    calls = tmp_path / "calls.jsonl"
    connectors.create({"type": "slowlog", "name": "slow", "settings": {"path": str(calls), "delay": 0.1},
                       "default": ["email", "ads", "alert", "task", "webhook"]})
    yield calls
    registry.BUILTIN.pop("slowlog", None)
    registry.reset_cache()


def _accounts(n: int) -> None:
    db.session.add_all(Account(name=f"F{i}", domain=f"f{i}.example", tier=1) for i in range(n))
    db.session.flush()
    ids = db.session.execute(select(Account.id)).scalars().all()
    db.session.add_all(Contact(account_id=a, email=f"dm@{a}.example", buying_role="decision_maker") for a in ids)
    db.session.commit()


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _start_worker(app, burst: bool = False) -> subprocess.Popen:
    env = dict(os.environ, ABM_DATABASE_URL=app.config["DATABASE_URL"], ABM_REDIS_URL=app.config["REDIS_URL"],
               ABM_INSTANCE_PATH=app.instance_path, ABM_TOUCH_LEASE_SECONDS=str(LEASE),
               BURST="1" if burst else "0", FORK="0")
    return subprocess.Popen([sys.executable, "-m", "tests.engine.worker_process"], cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the worker and its work horse (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _in_flight() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count()).select_from(Touch).where(
        Touch.status == "queued", Touch.claimed_at.is_not(None))).scalar_one()


def _drain(app) -> None:
    proc = _start_worker(app, burst=True)
    try:
        err, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            _kill(proc)
    assert proc.returncode == 0, err.decode()[-2000:]


def _statuses() -> Counter:
    db.session.rollback()
    return Counter(db.session.execute(select(Touch.status)).scalars())


def test_worker_killed_mid_batch(app, slow):
    _accounts(N_ACCOUNTS)
    service.apply(PLAYBOOK.replace("CONNECTOR", "slow"))
    service.activate("faults")
    assert dispatcher.dispatch(now=utcnow())["queued"] == N_ACCOUNTS
    worker = _start_worker(app)
    try:
        _wait_for(lambda: len(_lines(slow)) >= 6 and _in_flight() > 0, what="a batch in flight")
    finally:
        _kill(worker)
    killed_job = _in_flight()
    assert killed_job > 0
    # The heartbeat stopped with the worker: the lease runs out, the periodic recovery
    # finds the claimed-but-unmarked touches.
    time.sleep(LEASE + 0.2)
    assert dispatcher.recover(now=utcnow()) == killed_job
    _drain(app)

    assert _statuses() == {"sent": N_ACCOUNTS}
    calls = Counter(line["key"] for line in _lines(slow))
    keys = set(db.session.execute(select(Touch.enrollment_id, Touch.step_id, Touch.contact_key)).all())
    assert set(calls) == {f"{e}:{s}:{c}" for e, s, c in keys}  # each touch arrived, by key once
    duplicates = sum(n - 1 for n in calls.values())
    assert duplicates <= SlowLogConnector.max_batch  # only the one provider call in flight at the kill


def test_a_job_longer_than_two_leases_keeps_its_claims_by_its_heartbeat(app, slow):
    """A live job may take as long as its provider needs: its heartbeat renews its claims
    (every third of the lease), so recovery, run all along, finds nothing to take, and
    nothing arrives twice. One provider call outlives two leases, so the fence's own
    renewal before each call cannot be what keeps the claims."""
    n = SlowLogConnector.max_batch
    config = connector_service.get_config("slow")
    config.settings = {**config.settings, "delay": 1.0}  # one call of five touches: 5 s, two and a half leases
    db.session.commit()
    _accounts(n)
    service.apply(PLAYBOOK.replace("CONNECTOR", "slow"))
    service.activate("faults")
    assert dispatcher.dispatch(now=utcnow())["queued"] == n
    worker = _start_worker(app)
    recovered, renewed, first_claim = [], False, None
    try:
        _wait_for(lambda: _in_flight() > 0, what="the job's claims")
        started = time.monotonic()
        while _statuses() != {"sent": n}:
            assert time.monotonic() - started < 60, "the job did not finish"
            recovered.append(dispatcher.recover(now=utcnow()))  # what the scheduler runs every 15 s
            claims = db.session.execute(select(func.min(Touch.claimed_at)).where(
                Touch.status == "queued", Touch.claimed_at.is_not(None))).scalar_one()
            if claims is not None:
                first_claim = first_claim or claims
                renewed = renewed or claims > first_claim
            time.sleep(0.2)
        took = time.monotonic() - started
    finally:
        _kill(worker)
    assert took > 2 * LEASE, took  # the job outlived two leases...
    assert renewed  # ...because its claims were renewed while it ran
    assert recovered and set(recovered) == {0}  # recovery never took its touches
    calls = Counter(line["key"] for line in _lines(slow))
    assert len(calls) == n and set(calls.values()) == {1}  # one delivery each, one job's
    assert len({line["pid"] for line in _lines(slow)}) == 1
    assert set(db.session.execute(select(Touch.attempts)).scalars()) == {1}  # claimed once


def test_redis_flushed_mid_run(app, slow):
    _accounts(N_ACCOUNTS)
    service.apply(PLAYBOOK.replace("CONNECTOR", "slow"))
    service.activate("faults")
    dispatcher.dispatch(now=utcnow(), batch_size=5)  # six jobs of five
    worker = _start_worker(app)
    try:
        _wait_for(lambda: len(_lines(slow)) >= 6, what="sending to start")
        redis_lib.Redis.from_url(app.config["REDIS_URL"]).flushdb()  # our db only
        _wait_for(lambda: _in_flight() == 0, what="the batch in flight to be marked")
    finally:
        _kill(worker)
    assert _statuses()["queued"] > 0  # their jobs are gone with Redis
    time.sleep(LEASE + 0.2)
    assert dispatcher.recover(now=utcnow()) == _statuses()["queued"]
    _drain(app)
    assert _statuses() == {"sent": N_ACCOUNTS}
    calls = Counter(line["key"] for line in _lines(slow))
    assert len(calls) == N_ACCOUNTS and set(calls.values()) == {1}


def test_two_dispatchers_at_once_on_postgresql(app, backend, slow):
    if backend != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; on SQLite one dispatcher holds a Redis lock (tested below)")
    n = 200
    _accounts(n)

    fast = slow.parent / "fast.jsonl"
    connectors.create({"type": "log", "name": "fast", "settings": {"path": str(fast)}})
    service.apply(PLAYBOOK.replace("CONNECTOR", "fast"))
    service.activate("faults")
    now = utcnow() + timedelta(seconds=1)
    barrier = threading.Barrier(2)
    results = []

    def run():
        with app.app_context():
            barrier.wait()
            results.append(dispatcher.dispatch(now=now, batch_size=25))
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2 and all(r["batches"] > 0 for r in results)
    assert sum(r["enrollments"] for r in results) == n
    assert sum(r["queued"] for r in results) == n

    run_worker(app)
    calls = Counter(line["key"] for line in _lines(fast))
    assert len(calls) == n and set(calls.values()) == {1}


def test_single_dispatcher_lock_on_sqlite(app, backend):
    if backend != "sqlite":
        pytest.skip("PostgreSQL dispatchers run concurrently (SKIP LOCKED)")

    lock = get_redis().lock(dispatcher.LOCK_KEY, timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert dispatcher.dispatch(now=utcnow()) == {"skipped_locked": 1}
    finally:
        lock.release()
    assert "skipped_locked" not in dispatcher.dispatch(now=utcnow())
