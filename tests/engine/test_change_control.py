"""Change control on a running playbook, on a simulated clock: the diff between
versions, the migration of running enrollments (shown by the plan first), a clone and a
test send."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from abm.db import db
from abm.models import Enrollment, Touch
from abm.services import change_control
from abm.services import playbooks as service
from tests.engine.conftest import make_account, sent_lines
from workers import dispatcher

V1 = """version: 1
key: cc
name: Change control
audience:
  where: {tier: [1]}
on_cap: skip
steps:
  - id: intro
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi</p>"
  - id: pause
    wait: 2d
  - id: follow
    email:
      to: {roles: [decision_maker]}
      subject: "Following up"
      body: "<p>Again</p>"
  - id: last
    alert:
      to: ops@ourco.example
      message: "{{ account.name }} is done"
"""

# intro's subject changed, a case study added before the follow-up, the alert removed.
V2 = V1.replace('"Hello {{ account.name }}"', '"Hello again {{ account.name }}"').replace(
    """  - id: follow""", """  - id: case-study
    email:
      to: {roles: [decision_maker]}
      subject: "A case study"
      body: "<p>Case</p>"
  - id: follow""").split("  - id: last")[0]


def _sent(row_key: str) -> list[tuple[str, str]]:
    row = service.get(row_key)
    return sorted((t.step_id, t.status) for t in db.session.execute(
        select(Touch).where(Touch.playbook_id == row.id)).scalars())


def test_diff_and_migration_of_a_running_playbook(app, clock, worker, sent_log, runner):
    for name in ("Alpha", "Beta", "Gamma"):
        make_account(name)
    service.apply(V1)
    service.activate("cc", now=clock())
    dispatcher.dispatch(now=clock())
    worker()
    assert _sent("cc") == [("intro", "sent")] * 3
    clock.advance(timedelta(hours=1))

    # The plan shows where each running enrollment goes before anything moves.
    plan = service.plan(V2, now=clock(), migrate=True)
    assert plan["migration"] == [{"version": 1, "step": "pause", "state": "waiting", "to": "pause",
                                  "enrollments": 3}]
    assert plan["moving"] == 3 and plan["entering"] == 0
    by_step = {s["id"]: s for s in plan["steps"]}
    assert (by_step["case-study"]["touches"], by_step["follow"]["touches"]) == (3, 0)
    # The workspace's cap (2 emails per contact a week) leaves no room for the follow-up.
    assert by_step["follow"]["suppressed"] == {"capped: at most 2 per contact within 1w": 3}

    service.apply(V2)
    diff = change_control.diff("cc", 1)
    assert (diff["from"], diff["to"], diff["settings"]) == (1, 2, [])
    assert diff["steps"] == {"added": ["case-study"], "removed": ["last"],
                             "changed": [{"id": "intro", "fields": ["subject"]}], "moved": []}
    assert '-      subject: "Hello {{ account.name }}"' in diff["yaml"]
    assert '+      subject: "Hello again {{ account.name }}"' in diff["yaml"]

    moved = runner.invoke(args=["playbook", "migrate", "cc"])
    assert moved.exit_code == 0 and "3 running enrollment(s) moved to version 2" in moved.output
    assert "v1 pause -> pause" in moved.output
    enrollments = db.session.execute(select(Enrollment)).scalars().all()
    assert {(e.version_id, e.step_index, e.state) for e in enrollments} == {
        (service.current_version(service.get("cc")).id, 1, "waiting")}

    # Still waiting from when they started: nothing before the 2 days are up.
    dispatcher.dispatch(now=clock())
    worker()
    assert _sent("cc") == [("intro", "sent")] * 3
    clock.advance(timedelta(days=2))
    dispatcher.dispatch(now=clock())
    worker()
    assert _sent("cc") == [("case-study", "sent")] * 3 + [("follow", "suppressed")] * 3 + [("intro", "sent")] * 3
    db.session.expire_all()
    assert {e.state for e in db.session.execute(select(Enrollment)).scalars()} == {"completed"}

    shown = runner.invoke(args=["playbook", "diff", "cc", "1", "2"])
    assert shown.exit_code == 0 and "steps added: case-study" in shown.output
    assert "step intro changed: subject" in shown.output


def test_clone_and_test_send(app, clock, worker, sent_log, runner):
    make_account("Alpha")
    service.apply(V1)
    cloned = runner.invoke(args=["playbook", "clone", "cc", "cc-copy"])
    assert cloned.exit_code == 0, cloned.output
    copy = service.get("cc-copy")
    assert (copy.name, copy.status, copy.current_version) == ("Change control (copy)", "draft", 1)
    assert "key: \"cc-copy\"" in service.source_of("cc-copy").source
    again = runner.invoke(args=["playbook", "clone", "cc", "cc-copy"])
    assert again.exit_code == 1 and "exists already" in again.output

    queued = runner.invoke(args=["playbook", "test-send", "cc", "intro", "--to", "me@ourco.example",
                                 "--account", "alpha.example"])
    assert queued.exit_code == 0, queued.output
    assert "'[Test] Hello Alpha' to me@ourco.example (rendered for c0@alpha.example at alpha.example)" in queued.output
    worker()
    [line] = sent_lines(sent_log)
    assert line["to"] == "me@ourco.example" and line["payload"]["subject"] == "[Test] Hello Alpha"
    assert change_control.TEST_UNSUBSCRIBE_PATH in json.dumps(line["payload"])
    assert db.session.execute(select(Touch)).first() is None  # a test is no touch
    refused = runner.invoke(args=["playbook", "test-send", "cc", "last", "--to", "me@ourco.example",
                                  "--account", "alpha.example"])
    assert refused.exit_code == 1 and "only email steps" in refused.output
