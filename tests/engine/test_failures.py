"""Connector failures: retryable errors requeue (and give up after the attempts),
permanent errors fail with the provider's message (shown by the API), per-touch
failures are recorded one by one, and a job run twice sends nothing twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

import connectors.registry as registry
from abm.db import db
from abm.models import Touch
from abm.services import connectors, delivery
from abm.services import playbooks as service
from tests.engine.conftest import make_account, sent_lines
from workers import dispatcher, jobs

PLAYBOOK = """version: 1
key: flaky-pb
name: Flaky
audience:
  where: {tier: [1]}
steps:
  - id: hook
    webhook: {connector: flaky, payload: {account: "{{ account.domain }}"}}
"""


@pytest.fixture
def flaky(app, tmp_path, clock):
    registry.BUILTIN["flaky"] = "tests.engine.slow_connector:FlakyConnector"
    registry.reset_cache()
    path = tmp_path / "flaky.jsonl"
    connectors.create({"type": "flaky", "name": "flaky", "settings": {"path": str(path), "mode": "ok"}})
    for i in range(4):
        make_account(f"Fl{i}")
    service.apply(PLAYBOOK)
    service.activate("flaky-pb")
    dispatcher.dispatch(now=clock(), enqueue=False)
    yield path
    registry.BUILTIN.pop("flaky", None)
    registry.reset_cache()


def _mode(mode: str) -> None:
    connectors.update("flaky", {"settings": {"mode": mode}})


def _ids() -> list[int]:
    return list(db.session.execute(select(Touch.id).order_by(Touch.id)).scalars())


def _state() -> list[tuple]:
    db.session.expire_all()
    return [(t.status, t.claimed_at is None, t.attempts, t.error)
            for t in db.session.execute(select(Touch).order_by(Touch.id)).scalars()]


def test_retryable_waits_its_backoff_then_gives_up_with_the_providers_message(app, flaky, clock):
    ids = _ids()
    _mode("retryable")
    for attempt in range(1, delivery.MAX_ATTEMPTS):
        assert jobs.send_touches(ids, "flaky") == {"claimed": 4, "retry": 4}
        assert {s[:3] for s in _state()} == {("queued", True, attempt)}
        assert jobs.send_touches(ids, "flaky") == {"claimed": 0}  # not before its time
        waits = {t.not_before - clock() for t in db.session.execute(select(Touch)).scalars()}
        ceiling = timedelta(seconds=delivery.BACKOFF_BASE * 2 ** (attempt - 1))
        assert len(waits) == 1 and ceiling / 2 <= waits.pop() <= ceiling  # backoff with jitter
        clock.advance(ceiling)
        assert sorted(i for i, _ in delivery.retry_due(clock())) == ids
    assert jobs.send_touches(ids, "flaky") == {"claimed": 4, "failed": 4}
    states = _state()
    assert {s[0] for s in states} == {"failed"}
    assert states[0][3] == "gave up after 5 attempts: provider busy (503); try later"


def test_permanent_fails_with_message_shown_by_api(app, flaky, api):
    _mode("permanent")
    assert jobs.send_touches(_ids(), "flaky") == {"claimed": 4, "failed": 4}
    items = api("ae").get("/api/v1/touches?status=failed&playbook=flaky-pb").get_json()["items"]
    assert len(items) == 4
    assert {t["error"] for t in items} == {"the API key was rejected (401); check the connector's settings"}


def test_partial_failures_and_running_twice(app, flaky):
    _mode("partial")
    ids = _ids()
    assert jobs.send_touches(ids, "flaky") == {"claimed": 4, "sent": 2, "failed": 2}
    assert jobs.send_touches(ids, "flaky") == {"claimed": 0}  # a job run twice sends nothing twice
    assert len(sent_lines(flaky)) == 2
    assert sorted(s[0] for s in _state()) == ["failed", "failed", "sent", "sent"]
    assert {s[3] for s in _state() if s[0] == "failed"} == {"mailbox does not exist"}


def test_unknown_connector_fails_its_touches(app, flaky):
    connectors.delete("flaky")
    jobs.send_touches(_ids(), "flaky")
    states = _state()
    assert {s[0] for s in states} == {"failed"} and "flaky" in states[0][3]
