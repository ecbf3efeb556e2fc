"""The whole path: apply, activate, dispatch, send, wait, branch, exit on a stage change."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from abm.db import db
from abm.models import Account, Enrollment, Touch
from abm.services import accounts
from abm.services import playbooks as service
from tests.engine.conftest import make_account, sent_lines
from workers import dispatcher

PLAYBOOK = """
version: 1
key: e2e
name: End to end
audience:
  where: {tier: [1]}
exit_when:
  stage: [opportunity]
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p>"
  - wait: 2d
  - id: hot
    branch:
      if: {score: {gte: 10}}
      then: alert-owner
  - id: nudge
    email:
      to: {roles: [decision_maker]}
      subject: "Still there, {{ account.name }}?"
      body: "<p>A nudge</p>"
  - exit: true
  - id: alert-owner
    alert:
      to: owner
      message: "{{ account.name }} is hot"
"""


def test_apply_activate_dispatch_send_wait_branch_exit(app, sent_log, clock, worker, make_user):
    owner = make_user("ae", email="ae@example.com")
    cold = make_account("Cold Co", owner=owner)
    hot = make_account("Hot Co", owner=owner)
    leaving = make_account("Leaving Co", owner=owner)
    make_account("Tier Two", tier=2)

    row, version = service.apply(PLAYBOOK, "e2e.yaml")
    assert (row.key, version, row.status) == ("e2e", 1, "draft")
    result = service.activate("e2e", now=clock())
    assert result["enrolled"] == 3

    dispatcher.dispatch(now=clock())
    worker()
    lines = sent_lines(sent_log)
    assert sorted(line["payload"]["subject"] for line in lines) == [
        "Hello Cold Co", "Hello Hot Co", "Hello Leaving Co"]
    assert all("/u/" in line["payload"]["unsubscribe_url"] for line in lines)
    # One-Click (RFC 8058) only beside an https unsubscribe URI; the test app's base URL is http.
    assert all(line["payload"]["headers"]["List-Unsubscribe"] == f"<{line['payload']['unsubscribe_url']}>"
               and line["payload"]["headers"].get("List-Unsubscribe-Post") == (
                   "List-Unsubscribe=One-Click" if line["payload"]["unsubscribe_url"].startswith("https://") else None)
               for line in lines)

    # Nothing more before the wait is over, however often the dispatcher runs.
    clock.advance(timedelta(days=1))
    dispatcher.dispatch(now=clock())
    worker()
    assert len(sent_lines(sent_log)) == 3

    db.session.get(Account, hot.id).score = 25.0
    accounts.change_stage(db.session.get(Account, leaving.id), "opportunity", source="test", actor_id=None,
                          at=clock())
    db.session.commit()
    left = db.session.execute(select(Enrollment).where(Enrollment.account_id == leaving.id)).scalar_one()
    assert (left.state, left.exit_reason) == ("exited", "exit_condition")

    clock.advance(timedelta(days=1, minutes=1))
    dispatcher.dispatch(now=clock())
    worker()
    lines = sent_lines(sent_log)
    later = sorted((line["kind"], line["payload"].get("subject") or line["payload"].get("message"))
                   for line in lines[3:])
    assert later == [("alert", "Hot Co is hot"), ("email", "Still there, Cold Co?")]
    assert [line["to"] for line in lines if line["kind"] == "alert"] == ["ae@example.com"]
    states = dict(db.session.execute(select(Enrollment.account_id, Enrollment.exit_reason)).all())
    assert states == {cold.id: "exit_step", hot.id: "end", leaving.id: "exit_condition"}
    assert db.session.execute(select(Touch.status).distinct()).scalars().all() == ["sent"]
