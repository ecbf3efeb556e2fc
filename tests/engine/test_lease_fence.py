"""A job that lost its lease while it was stalled sends none of the touches it no longer
holds: recovery gave them to another job, which sends them once (workers.leases)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

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


def _recovery_and_another_job(ids: list[int], others: dict):
    """While the job is stalled: its claims run out, recovery releases them, and another
    job sends the last five."""

    def stall() -> None:
        time.sleep(LEASE / 2 + 0.1)  # past the job's last confirmation: it must ask again
        with db.engine.begin() as connection:
            connection.execute(update(Touch).where(Touch.id.in_(ids), Touch.status == "queued")
                               .values(claimed_at=utcnow() - timedelta(seconds=3 * LEASE)))
        assert sorted(i for i, _ in delivery.lost(utcnow())) == ids
        others.update(jobs.send_touches(ids[5:], "stall"))

    return stall



def _touches(n: int) -> list[int]:
    for i in range(n):
        make_account(f"Fence{i}")
    service.apply(PLAYBOOK)
    service.activate("fence")
    dispatcher.dispatch(now=utcnow(), enqueue=False)
    return sorted(db.session.execute(select(Touch.id)).scalars())


def test_a_job_that_lost_its_lease_does_not_send_what_another_job_took(app, calls):
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


def test_a_touch_claimed_again_is_no_longer_held(app, calls):
    ids = _touches(4)
    claimed = delivery.claim_rows(ids, utcnow(), ("id", "attempts"))
    with leases.heartbeat({r.id: r.attempts for r in claimed}) as lease:
        assert lease.held(ids) == ids  # just claimed: no question asked
        db.session.execute(update(Touch).where(Touch.id.in_(ids[:2]))
                           .values(claimed_at=utcnow() - timedelta(seconds=3 * LEASE)))
        db.session.commit()
        assert [r.id for r in delivery.claim_rows(ids[:2], utcnow())] == ids[:2]  # another job's claim
        time.sleep(LEASE / 2 + 0.1)
        assert lease.held(ids) == ids[2:]
