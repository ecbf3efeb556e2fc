"""A job records each call's sent touches on a connection of its own (``delivery.recorder``):
on PostgreSQL one autocommit statement per call. The marks must land all the same, and a
dropped recorder connection must cost nothing but that connection: the call is marked
through the session, and so are the job's later calls."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from abm.db import db, utcnow
from abm.models import Touch
from abm.services import delivery
from abm.services import playbooks as service
from connectors.base import TouchResult
from tests.engine.conftest import make_account
from workers import dispatcher

PLAYBOOK = """version: 1
key: recorded
name: Recorded
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    alert: {to: "sales@example.com", message: "{{ account.name }}"}
"""


def _claimed(n: int) -> dict[int, int]:
    for i in range(n):
        make_account(f"Recorded{i}")
    service.apply(PLAYBOOK)
    service.activate("recorded")
    dispatcher.dispatch(now=utcnow(), enqueue=False)
    ids = sorted(db.session.execute(select(Touch.id)).scalars())
    return {r.id: r.attempts for r in delivery.claim_rows(ids, utcnow(), ("id", "attempts"))}


def _sent(touch_id: int, provider_id: str) -> TouchResult:
    return TouchResult(touch_id, True, provider_id=provider_id)


def _statuses() -> dict[int, tuple[str, str | None]]:
    db.session.rollback()
    return {t.id: (t.status, t.provider_id) for t in db.session.execute(select(Touch)).scalars()}


def test_each_call_is_recorded_as_it_returns(app, sent_log):
    attempts = _claimed(3)
    ids = sorted(attempts)
    with delivery.recorder() as kept:
        for i in ids:
            assert delivery.mark([_sent(i, f"p{i}")], utcnow(), attempts, kept) == {"sent": 1, "failed": 0, "retry": 0}
            assert _statuses()[i] == ("sent", f"p{i}")  # committed at once, seen by another transaction
        # A call with a failure goes through the session, with the provider's message.
        assert delivery.mark([TouchResult(ids[0], False, error="refused")], utcnow(), attempts, kept)["failed"] == 1
    assert _statuses() == {i: ("sent", f"p{i}") for i in ids}  # a sent touch is never failed afterwards


def test_a_dropped_recorder_connection_marks_through_the_session(app, sent_log):
    if db.dialect != "postgresql":
        pytest.skip("the recorder's own connection is PostgreSQL's (SQLite records through the session)")
    attempts = _claimed(3)
    ids = sorted(attempts)
    with delivery.recorder() as kept:
        delivery.mark([_sent(ids[0], "a")], utcnow(), attempts, kept)
        pid = kept.cursor.connection.info.backend_pid
        db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        db.session.commit()
        assert delivery.mark([_sent(ids[1], "b")], utcnow(), attempts, kept)["sent"] == 1
        assert kept.cursor is None
        assert delivery.mark([_sent(ids[2], "c")], utcnow(), attempts, kept)["sent"] == 1
    assert _statuses() == {ids[0]: ("sent", "a"), ids[1]: ("sent", "b"), ids[2]: ("sent", "c")}
