"""Change control as a user drives it, on a running playbook with a simulated clock:
``abm playbook plan --migrate`` and ``apply --migrate`` on the command line, and the API's
apply with ``migrate=true``, plan, diff, migrate, clone and test send, each by what it
answers and what it does (the enrollments moved, the touches then sent, the copy stored,
the test email arriving)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from abm.db import db
from abm.models import Enrollment, PlaybookVersion
from abm.models import Playbook as PlaybookRow
from abm.services import playbooks as service
from tests.engine.conftest import make_account, sent_lines
from tests.engine.test_change_control import V1, V2, _sent
from workers import dispatcher

#: Where each of the three running enrollments goes when V2 is applied with a migration.
MAPPING = [{"version": 1, "step": "pause", "state": "waiting", "to": "pause", "enrollments": 3}]
AFTER_MIGRATION = [("case-study", "sent")] * 3 + [("follow", "suppressed")] * 3 + [("intro", "sent")] * 3


def _running(clock, worker) -> None:
    """V1 active on three accounts, each past its intro and waiting in ``pause``."""
    for name in ("Alpha", "Beta", "Gamma"):
        make_account(name)
    service.apply(V1)
    service.activate("cc", now=clock())
    dispatcher.dispatch(now=clock())
    worker()
    assert _sent("cc") == [("intro", "sent")] * 3
    clock.advance(timedelta(hours=1))


def _enrollments() -> set[tuple[int, int, str]]:
    """(version number, step index, state) of each enrollment of ``cc``."""
    db.session.expire_all()
    rows = db.session.execute(select(PlaybookVersion.version, Enrollment.step_index, Enrollment.state).join(
        PlaybookVersion, PlaybookVersion.id == Enrollment.version_id).join(
        PlaybookRow, PlaybookRow.id == Enrollment.playbook_id).where(PlaybookRow.key == "cc")).all()
    return {tuple(r) for r in rows}


def _then_the_engine_sends_the_new_steps(clock, worker) -> None:
    clock.advance(timedelta(days=2))
    dispatcher.dispatch(now=clock())
    worker()
    assert _sent("cc") == AFTER_MIGRATION
    db.session.expire_all()
    assert {e.state for e in db.session.execute(select(Enrollment)).scalars()} == {"completed"}


def test_cli_plan_then_apply_with_migrate(app, clock, worker, sent_log, runner, tmp_path):
    _running(clock, worker)
    path = tmp_path / "cc.yaml"
    path.write_text(V2, encoding="utf-8")

    planned = runner.invoke(args=["playbook", "plan", str(path), "--migrate"])
    assert planned.exit_code == 0, planned.output
    lines = [line.strip() for line in planned.output.splitlines()]
    assert "accounts entering: 0, held out: 0" in lines
    assert "running enrollments moving to this version: 3" in lines
    assert "3 waiting  v1 pause -> pause" in lines
    steps = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in (
        "intro", "pause", "case-study", "follow")}
    assert steps["case-study"].endswith("reached by 3, 3 touch(es)")
    assert steps["intro"].endswith("reached by 0, 0 touch(es)")  # they are past it
    assert "suppressed 3: capped: at most 2 per contact within 1w" in lines
    as_json = runner.invoke(args=["playbook", "plan", str(path), "--migrate", "--json"])
    assert as_json.exit_code == 0
    assert '"moving": 3' in as_json.output
    assert _enrollments() == {(1, 1, "waiting")}  # a plan moves nothing

    applied = runner.invoke(args=["playbook", "apply", str(path), "--migrate"])
    assert applied.exit_code == 0, applied.output
    assert applied.output.splitlines()[:3] == [
        "cc: version 2 stored (status active)",
        "cc: 3 running enrollment(s) moved to version 2",
        "         3 waiting  v1 pause -> pause"]
    assert _enrollments() == {(2, 1, "waiting")}
    _then_the_engine_sends_the_new_steps(clock, worker)


def test_api_plan_and_apply_with_migrate(app, clock, worker, sent_log, api):
    _running(clock, worker)
    manager = api("manager")

    plan = manager.post("/api/v1/playbooks/plan?migrate=true", data=V2.encode(), content_type="application/yaml")
    assert plan.status_code == 200, plan.get_json()
    body = plan.get_json()
    assert (body["moving"], body["entering"], body["migration"]) == (3, 0, MAPPING)
    by_step = {s["id"]: s for s in body["steps"]}
    assert (by_step["case-study"]["touches"], by_step["follow"]["touches"]) == (3, 0)
    assert by_step["follow"]["suppressed"] == {"capped: at most 2 per contact within 1w": 3}
    without = manager.post("/api/v1/playbooks/plan", data=V2.encode(), content_type="application/yaml")
    assert without.get_json()["migration"] is None and without.get_json()["moving"] == 0

    applied = manager.post("/api/v1/playbooks?migrate=true", data=V2.encode(), content_type="application/yaml")
    assert applied.status_code == 201, applied.get_json()
    assert applied.get_json() == {"key": "cc", "version": 2, "status": "active", "moved": 3, "mapping": MAPPING}
    assert _enrollments() == {(2, 1, "waiting")}
    _then_the_engine_sends_the_new_steps(clock, worker)


def test_api_diff_then_migrate(app, clock, worker, sent_log, api):
    _running(clock, worker)
    manager = api("manager")
    applied = manager.post("/api/v1/playbooks", data=V2.encode(), content_type="application/yaml")
    assert applied.get_json() == {"key": "cc", "version": 2, "status": "active"}  # no migrate: nothing moves
    assert _enrollments() == {(1, 1, "waiting")}

    diff = api("ae").get("/api/v1/playbooks/cc/diff?from=1")
    assert diff.status_code == 200, diff.get_json()
    body = diff.get_json()
    assert (body["from"], body["to"], body["settings"]) == (1, 2, [])
    assert body["steps"] == {"added": ["case-study"], "removed": ["last"],
                             "changed": [{"id": "intro", "fields": ["subject"]}], "moved": []}
    assert '-      subject: "Hello {{ account.name }}"' in body["yaml"]
    assert '+      subject: "Hello again {{ account.name }}"' in body["yaml"]
    assert "+  - id: case-study" in body["yaml"] and "-  - id: last" in body["yaml"]
    assert api("ae").get("/api/v1/playbooks/cc/diff?from=1&to=1").get_json()["yaml"] == []
    assert api("ae").get("/api/v1/playbooks/cc/diff?from=3").status_code == 404

    moved = manager.post("/api/v1/playbooks/cc/migrate")
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json() == {"key": "cc", "version": 2, "status": "active", "moved": 3, "mapping": MAPPING}
    assert _enrollments() == {(2, 1, "waiting")}
    again = manager.post("/api/v1/playbooks/cc/migrate")
    assert (again.get_json()["moved"], again.get_json()["mapping"]) == (0, [])
    _then_the_engine_sends_the_new_steps(clock, worker)


def test_api_clone(app, sent_log, api):
    manager = api("manager")
    assert manager.post("/api/v1/playbooks", data=V1.encode(), content_type="application/yaml").status_code == 201

    cloned = manager.post("/api/v1/playbooks/cc/clone", json={"key": "cc-copy"})
    assert cloned.status_code == 201, cloned.get_json()
    assert cloned.get_json() == {"key": "cc-copy", "version": 1, "status": "draft"}
    shown = manager.get("/api/v1/playbooks/cc-copy")
    assert shown.status_code == 200 and shown.get_json()["name"] == "Change control (copy)"
    source = manager.get("/api/v1/playbooks/cc-copy/source")
    assert 'key: "cc-copy"' in source.get_data(as_text=True)
    assert "id: follow" in source.get_data(as_text=True)  # the same steps

    named = manager.post("/api/v1/playbooks/cc/clone", json={"key": "cc-two", "name": "Second try"})
    assert named.status_code == 201 and manager.get("/api/v1/playbooks/cc-two").get_json()["name"] == "Second try"
    taken = manager.post("/api/v1/playbooks/cc/clone", json={"key": "cc-copy"})
    assert taken.status_code == 409
    assert api("ae").post("/api/v1/playbooks/cc/clone", json={"key": "cc-three"}).status_code == 403


def test_api_test_send_arrives(app, clock, worker, sent_log, api):
    make_account("Alpha")
    service.apply(V1)
    manager = api("manager")

    queued = manager.post("/api/v1/playbooks/cc/test-send", json={"step": "intro", "account": "alpha.example"})
    assert queued.status_code == 202, queued.get_json()
    body = queued.get_json()
    assert (body["to"], body["subject"], body["account"], body["contact"]) == (
        manager.user.email, "[Test] Hello Alpha", "alpha.example", "c0@alpha.example")
    assert body["job"]
    worker()
    [line] = sent_lines(sent_log)
    assert line["to"] == manager.user.email and line["payload"]["subject"] == "[Test] Hello Alpha"

    elsewhere = manager.post("/api/v1/playbooks/cc/test-send",
                             json={"step": "intro", "account": "alpha.example", "to": "me@ourco.example"})
    assert elsewhere.status_code == 202 and elsewhere.get_json()["to"] == "me@ourco.example"
    worker()
    assert [line["to"] for line in sent_lines(sent_log)] == [manager.user.email, "me@ourco.example"]
    not_email = manager.post("/api/v1/playbooks/cc/test-send", json={"step": "last", "account": "alpha.example"})
    assert not_email.status_code in (409, 422) and "only email steps" in not_email.get_json()["error"]["message"]
    assert len(sent_lines(sent_log)) == 2
