"""Caps, suppression, send windows, pause, versions, holdout, triggers, waits."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from abm.db import db
from abm.models import Account, Contact, Enrollment, Event, Suppression, Touch
from abm.services import accounts, enrollment
from abm.services import playbooks as service
from playbooks.holdout import is_held_out
from tests.engine.conftest import make_account, sent_lines
from workers import dispatcher


def email_playbook(key: str, priority: int = 50, extra: str = "", where: str = "{tier: [1]}", steps: str = "") -> str:
    return f"""version: 1
key: {key}
name: {key}
priority: {priority}
audience:
  where: {where}
{extra}
steps:
{steps or '''  - id: hello
    email:
      to: {roles: [decision_maker, champion]}
      subject: "Hello from ''' + key + '''"
      body: "<p>Hi</p>"'''}
"""


def start(source: str, now) -> str:
    row, _ = service.apply(source)
    service.activate(row.key, now=now)
    return row.key


def touches_by_status():
    return sorted(db.session.execute(select(Touch.step_id, Touch.status, Touch.error)).all())


def test_caps_across_playbooks_priority_wins(app, sent_log, clock, worker):
    make_account("Capped", contacts=[("decision_maker", "CEO")])
    # The workspace allows 2 emails per contact per 7 days: three playbooks want one each.
    start(email_playbook("low", priority=10), clock())
    start(email_playbook("high", priority=90), clock())
    start(email_playbook("mid", priority=50), clock())
    dispatcher.dispatch(now=clock())
    worker()
    subjects = sorted(line["payload"]["subject"] for line in sent_lines(sent_log))
    assert subjects == ["Hello from high", "Hello from mid"]
    low = db.session.execute(select(Touch.status, Touch.error, Touch.due_at).join(Enrollment).where(
        Touch.playbook_id == service.get("low").id)).one()
    # The default, on_cap: defer: the lowest priority's email waits for the next free slot
    # (a week after the first of the two sent), inside the send window.
    assert low.status == "scheduled" and low.error.startswith("postponed: capped: at most 2 per contact within 1w")
    assert low.due_at == clock() + timedelta(weeks=1)


def test_on_cap_skip_and_a_max_delay_too_short_suppress_the_capped_touch(app, sent_log, clock, worker):
    make_account("Capped", contacts=[("decision_maker", "CEO")])
    start(email_playbook("high", priority=90), clock())
    start(email_playbook("mid", priority=50), clock())
    start(email_playbook("skip", priority=10, extra="on_cap: skip"), clock())
    start(email_playbook("soon", priority=5, extra="max_delay: 2d"), clock())
    dispatcher.dispatch(now=clock())
    for key in ("skip", "soon"):
        row = db.session.execute(select(Touch.status, Touch.error).where(
            Touch.playbook_id == service.get(key).id)).one()
        assert row.status == "suppressed" and row.error.startswith("capped: at most 2 per contact within 1w"), key


def test_suppression_is_recorded_with_reason(app, sent_log, clock, worker):
    account = make_account("Supp", contacts=[("decision_maker", "A"), ("decision_maker", "B"),
                                             ("champion", "C"), ("champion", "D"), ("decision_maker", "E")])
    people = db.session.execute(select(Contact).where(Contact.account_id == account.id)
                                .order_by(Contact.id)).scalars().all()
    people[0].unsubscribed_at = clock()
    people[1].bounced_at = clock()
    people[2].erased_at = clock()

    db.session.add(Suppression(email_hash=hashlib.sha256(people[3].email.encode()).hexdigest(), reason="erased"))
    db.session.commit()
    start(email_playbook("supp"), clock())
    dispatcher.dispatch(now=clock())
    worker()
    assert [line["to"] for line in sent_lines(sent_log)] == [people[4].email]
    reasons = dict(db.session.execute(select(Touch.contact_id, Touch.error).where(Touch.status == "suppressed")).all())
    assert reasons == {people[0].id: "unsubscribed", people[1].id: "bounced", people[2].id: "erased",
                       people[3].id: "on the suppression list"}


def test_send_window_in_account_time_zone(app, sent_log, clock, worker):
    # 10:00 UTC on a Monday is 19:00 in Tokyo: outside the default 09:00-17:00 window.
    tokyo = make_account("Tokyo", timezone="Asia/Tokyo")
    make_account("Utc")
    start(email_playbook("windowed"), clock())
    dispatcher.dispatch(now=clock())
    worker()
    assert [line["account"] for line in sent_lines(sent_log)] == ["utc.example"]
    scheduled = db.session.execute(select(Touch).where(Touch.account_id == tokyo.id)).scalar_one()
    assert scheduled.status == "scheduled"
    assert scheduled.due_at == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)  # Tuesday 09:00 in Tokyo
    clock.at = datetime(2026, 6, 2, 0, 0, 30, tzinfo=UTC)
    dispatcher.dispatch(now=clock())
    worker()
    assert sorted(line["account"] for line in sent_lines(sent_log)) == ["tokyo.example", "utc.example"]


def test_playbook_window_overrides(app, sent_log, clock, worker):
    make_account("Utc")
    extra = "send_window:\n  timezone: America/New_York\n  days: [mon]\n  hours: \"09:00-12:00\""
    start(email_playbook("ny", extra=extra), clock())
    dispatcher.dispatch(now=clock())
    worker()
    assert sent_lines(sent_log) == []
    touch = db.session.execute(select(Touch)).scalar_one()
    assert touch.due_at == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)


def test_pause_stops_queued_touches_and_resume_sends_them(app, sent_log, clock, worker):
    for i in range(3):
        make_account(f"P{i}")
    key = start(email_playbook("pausable"), clock())
    dispatcher.dispatch(now=clock())  # touches queued, jobs enqueued, not run yet
    service.pause(key)
    worker()
    assert sent_lines(sent_log) == []
    assert {t.status for t in db.session.execute(select(Touch)).scalars()} == {"queued"}
    assert dispatcher.recover(now=clock() + timedelta(hours=1)) == 0  # paused touches are not "lost"
    result = service.resume(key)
    assert result["requeued"] == 3
    worker()
    assert len(sent_lines(sent_log)) == 3


def test_running_enrollments_finish_on_their_version(app, sent_log, clock, worker):
    make_account("Old")
    steps_v1 = """  - wait: 1d
  - id: mail
    email:
      to: {roles: [decision_maker]}
      subject: "version one"
      body: "<p>1</p>\""""
    key = start(email_playbook("versioned", steps=steps_v1), clock())
    service.apply(email_playbook("versioned", steps=steps_v1.replace("version one", "version two")))
    make_account("New")
    enrollment.sweep(clock())
    dispatcher.dispatch(now=clock())
    clock.advance(timedelta(days=1, minutes=1))
    dispatcher.dispatch(now=clock())
    worker()
    got = sorted((line["account"], line["payload"]["subject"]) for line in sent_lines(sent_log))
    assert got == [("new.example", "version two"), ("old.example", "version one")]
    assert service.get(key).current_version == 2


def test_holdout_is_stable_and_gets_no_touches(app, sent_log, clock, worker):
    for i in range(40):
        make_account(f"H{i}")
    start(email_playbook("held", extra="holdout: 30%"), clock())
    rows = db.session.execute(select(Enrollment.account_id, Enrollment.state)).all()
    expected = {a: ("held_out" if is_held_out("held", a, 30.0) else "active") for a, _ in rows}
    assert dict(rows) == expected and 0 < list(expected.values()).count("held_out") < 40
    dispatcher.dispatch(now=clock())
    worker()
    held = {a for a, s in expected.items() if s == "held_out"}
    sent_to = {line["account"] for line in sent_lines(sent_log)}
    assert len(sent_to) == 40 - len(held)
    assert not any(f"h{db.session.get(Account, a).name[1:]}.example" in sent_to for a in held)


def test_reenrollment_after_the_delay(app, sent_log, clock, worker):
    make_account("Again")
    start(email_playbook("again", extra="reenroll: 30d"), clock())
    dispatcher.dispatch(now=clock())
    worker()
    assert enrollment.sweep(clock() + timedelta(days=10)) == {"again": 0}
    assert enrollment.sweep(clock() + timedelta(days=31)) == {"again": 1}
    cycles = db.session.execute(select(Enrollment.cycle).order_by(Enrollment.cycle)).scalars().all()
    assert cycles == [1, 2]


def test_triggers_stage_score_activity(app, sent_log, clock, worker):
    a = make_account("Trig", stage="aware")
    stage_pb = """version: 1
key: on-stage
name: on stage
trigger: {on: stage_changed, to: [mqa]}
steps:
  - id: tell
    alert: {to: "sales@example.com", message: "{{ account.name }} is an MQA"}
"""
    score_pb = stage_pb.replace("on-stage", "on-score").replace("{on: stage_changed, to: [mqa]}",
                                                               "{on: score_crossed, above: 40}")
    activity_pb = stage_pb.replace("on-stage", "on-form").replace(
        "{on: stage_changed, to: [mqa]}", "{on: activity, type: [form_fill], within: 1d}")
    for source in (stage_pb, score_pb, activity_pb):
        start(source, clock())
    accounts.change_stage(db.session.get(Account, a.id), "mqa", source="test", actor_id=None, at=clock())
    db.session.get(Account, a.id).score = 45.0
    enrollment.on_score_changed({a.id}, now=clock(), previous={a.id: 30.0})
    db.session.add(Event(type="form_fill", account_id=a.id, occurred_at=clock() - timedelta(hours=2)))
    db.session.flush()
    enrollment.on_activity({"form_fill": {a.id}}, now=clock())
    db.session.commit()
    sources = sorted(db.session.execute(select(Enrollment.entry_source)).scalars())
    assert sources == ["trigger:activity", "trigger:score_crossed", "trigger:stage_changed"]
    # Crossing again without having gone below is no crossing.
    assert enrollment.on_score_changed({a.id}, now=clock(), previous={a.id: 45.0}) == 0


def test_wait_until_woken_by_engagement_and_when_skipped(app, sent_log, clock, worker):
    a = make_account("Waiter", industry="banking")
    steps = """  - id: until
    wait_until:
      condition: {activity: {type: [email_click], within: 7d}}
      timeout: 14d
  - id: only-fintech
    when: {industry: fintech}
    alert: {to: "x@example.com", message: "fintech"}
  - id: after
    alert: {to: "x@example.com", message: "clicked"}"""
    start(email_playbook("waits", steps=steps), clock())
    dispatcher.dispatch(now=clock())
    e = db.session.execute(select(Enrollment)).scalar_one()
    assert e.state == "waiting" and e.next_run_at == clock() + timedelta(minutes=15)
    clock.advance(timedelta(minutes=5))
    db.session.add(Event(type="email_click", account_id=a.id, occurred_at=clock()))
    assert enrollment.wake({a.id}, now=clock()) == 1
    db.session.commit()
    dispatcher.dispatch(now=clock())
    worker()
    assert [line["payload"]["message"] for line in sent_lines(sent_log)] == ["clicked"]
    assert ("only-fintech", "skipped", "its when condition was false") in touches_by_status()


def test_a_steps_on_cap_overrides_the_playbooks_in_the_engine_and_the_dry_run(app, sent_log, clock, worker):
    make_account("Capped", contacts=[("decision_maker", "CEO")])
    start(email_playbook("high", priority=90), clock())
    start(email_playbook("mid", priority=50), clock())
    email = '''    email: {to: {roles: [decision_maker]}, subject: "S", body: "<p>Hi</p>"}'''
    mixed = email_playbook("mixed", priority=10, extra="on_cap: skip", steps=f"""  - id: inherits
{email}
  - id: waits
    on_cap: defer
    max_delay: 8d
{email}
  - id: too-long
    on_cap: defer
    max_delay: 2d
{email}""")
    planned = {s["id"]: s for s in service.plan(mixed, now=clock())["steps"]}
    start(mixed, clock())
    dispatcher.dispatch(now=clock())
    rows = {r.step_id: r for r in db.session.execute(select(Touch.step_id, Touch.status, Touch.error, Touch.due_at).where(
        Touch.playbook_id == service.get("mixed").id))}
    assert rows["inherits"].status == "suppressed" and rows["inherits"].error.startswith("capped: ")  # on_cap: skip
    assert rows["waits"].status == "scheduled" and rows["waits"].error.startswith("postponed: capped: ")
    assert rows["waits"].due_at == clock() + timedelta(weeks=1)  # within the step's 8d
    assert rows["too-long"].status == "suppressed"  # a week is more than the step's 2d
    # The dry run says the same before activation.
    assert list(planned["waits"]["postponed"]) == [rows["waits"].error]
    assert list(planned["inherits"]["suppressed"]) == [rows["inherits"].error]
    assert list(planned["too-long"]["suppressed"]) == [rows["too-long"].error]
