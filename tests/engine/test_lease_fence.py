"""A job that lost its lease while it was stalled sends none of the touches it no longer
holds: recovery gave them to another job, which sends them once (workers.leases)."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

import connectors.registry as registry
from abm.db import db, utcnow
from abm.models import Touch
from abm.services import connectors, delivery
from abm.services import playbooks as service
from tests.engine.conftest import make_account
from tests.engine.slow_connector import StallingConnector
from workers import dispatcher, jobs, leases

LEASE = 1
PLAYBOOK = """version: 1
key: fence
name: Fence
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    webhook: {connector: stall, payload: {n: 1}}
"""


@pytest.fixture
def calls(app, tmp_path):
    registry.BUILTIN["stalling"] = "tests.engine.slow_connector:StallingConnector"
    registry.reset_cache()
    app.config["ABM_TOUCH_LEASE_SECONDS"] = LEASE
    path = tmp_path / "calls.jsonl"
    connectors.create({"type": "stalling", "name": "stall", "settings": {"path": str(path), "delay": 0.01}})
    yield path
    registry.BUILTIN.pop("stalling", None)
    registry.reset_cache()
    StallingConnector.STALL = None


class Database:
    """The database as the jobs' heartbeats see it: ``down`` makes every renewal fail, as
    a database out of reach does, so that claims run out for real."""

    down = False


@pytest.fixture
def database(monkeypatch):
    renew = leases.Lease.renew

    def flaky_renew(lease):
        if Database.down:
            raise ConnectionError("the database is out of reach")
        return renew(lease)

    monkeypatch.setattr(leases.Lease, "renew", flaky_renew)
    yield Database
    Database.down = False


def _recovery_and_another_job(ids: list[int], others: dict):
    """While the job is stalled and its heartbeat cannot reach the database: its claims run
    out, recovery releases them, and another job sends the last five."""

    def stall() -> None:
        Database.down = True
        time.sleep(LEASE + 0.3)  # no beat got through for a whole lease
        assert sorted(i for i, _ in delivery.lost(utcnow())) == ids
        Database.down = False
        others.update(jobs.send_touches(ids[5:], "stall"))

    return stall


def _touches(n: int) -> list[int]:
    for i in range(n):
        make_account(f"Fence{i}")
    service.apply(PLAYBOOK)
    service.activate("fence")
    dispatcher.dispatch(now=utcnow(), enqueue=False)
    return sorted(db.session.execute(select(Touch.id)).scalars())


def test_a_job_that_lost_its_lease_does_not_send_what_another_job_took(app, calls, database):
    ids = _touches(10)
    others: dict = {}
    StallingConnector.STALL = _recovery_and_another_job(ids, others)

    first = jobs.send_touches(ids, "stall")  # max_batch 5: its second call is fenced off
    assert others == {"claimed": 5, "sent": 5}
    assert first == {"claimed": 10, "sent": 5}
    sent = [json.loads(line)["touch_id"] for line in calls.read_text().splitlines()]
    assert sorted(sent) == ids and len(sent) == len(set(sent))  # each touch once
    db.session.expire_all()
    assert set(db.session.execute(select(Touch.status)).scalars()) == {"sent"}


def test_a_touch_claimed_again_is_no_longer_held(app, calls, database):
    ids = _touches(4)
    claimed = delivery.claim_rows(ids, utcnow(), ("id", "attempts"))
    with leases.heartbeat({r.id: r.attempts for r in claimed}) as lease:
        assert lease.held(ids) == ids  # just claimed: no question asked
        database.down = True
        time.sleep(LEASE + 0.3)  # the claims ran out
        assert [r.id for r in delivery.claim_rows(ids[:2], utcnow())] == ids[:2]  # another job's claim
        database.down = False
        # Nobody took the other two: they are still this job's (and renewed).
        assert lease.held(ids) == ids[2:]
