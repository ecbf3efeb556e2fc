"""Every count of a playbook's page opens the rows behind it, and as many rows as it says:
the accounts per step (the bars and the flow graph) open the enrollments that reached
that step, the enrollments by state theirs, and each per-step result (by status, by
engagement, by reason, by variant) its touches. On both backends, with enrollments on
two versions, a held-out account and one that left before the second step."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Enrollment, Event, Touch
from abm.services import clock
from abm.services import connectors as connector_service
from abm.services import playbooks as playbook_service
from tests.engine.conftest import make_account, run_worker
from workers import dispatcher

V1 = """version: 1
key: counted
name: Counted playbook
audience:
  where: {tier: [1]}
holdout: 0%
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi</p>"
      variants:
        - name: plain
        - name: bold
          subject: "News for {{ account.name }}"
  - id: pause
    wait: 3d
  - id: tell-ae
    alert:
      to: owner
      message: "{{ account.name }} got the intro"
"""
#: Version 2 puts a step before the wait: v1 enrollments never reached it.
V2 = V1.replace("  - id: pause\n", "  - id: ask\n    alert: {to: owner, message: \"Ask {{ account.name }}\"}\n"
                                   "  - id: pause\n")


@pytest.fixture
def world(app):
    connector_service.ensure_demo_connectors()
    db.session.commit()
    for name in ("Alpha", "Beta", "Gamma"):
        make_account(name)
    make_account("Aleph", contacts=(("decision_maker", "CEO"), ("decision_maker", "CFO")))
    playbook_service.apply(V1)
    playbook_service.activate("counted")
    now = clock.now()
    dispatcher.dispatch(now=now)  # hello for all four (five emails), then the wait
    run_worker(app)
    row = playbook_service.get("counted")
    by_name = {e.account_id: e for e in db.session.execute(select(Enrollment)).scalars()}
    first = min(by_name)
    left = by_name[first]  # one leaves at its first step
    left.state, left.step_index, left.exit_reason, left.left_at = "exited", 0, "exit_condition", now
    held = make_account("Held")
    db.session.add(Enrollment(playbook_id=row.id, version_id=left.version_id, account_id=held.id, state="held_out",
                              step_index=0))
    touches = db.session.execute(select(Touch).where(Touch.step_id == "hello").order_by(Touch.id)).scalars().all()
    for kind in ("email_open", "email_click"):
        db.session.add(Event(type=kind, occurred_at=now, account_id=touches[0].account_id, touch_id=touches[0].id,
                             playbook_id=row.id, properties={}))
    touches[-1].status, touches[-1].error = "failed", "smtp said 550: mailbox unavailable"
    db.session.commit()
    playbook_service.apply(V2)  # new enrollments would take v2; the running ones stay on v1
    dispatcher.dispatch(now=now + timedelta(days=4))  # the waiting ones reach tell-ae (no owner: suppressed)
    run_worker(app)
    return row


def _rows(client, href: str, marker: str) -> set[str]:
    html = client.get(href.replace("&amp;", "&")).get_data(as_text=True)
    return set(re.findall(rf'<tr data-{marker}="(\d+)"', html))


def test_accounts_per_step_and_per_state_open_the_enrollments_they_count(as_role, world, api):
    client = as_role("ae")
    page = client.get("/playbooks/counted").get_data(as_text=True)
    bars = re.search(r'<div class="funnel">(.*?)</svg>', page, re.S).group(1)
    funnel = re.findall(r'<a href="([^"]+)">\s*<g class="bar-row">\s*<title>([\w-]+): (\d+)</title>', bars)
    # held out aside; the one that left at hello reached nothing after it; v1 never had "ask"
    assert [(step, int(n)) for _, step, n in funnel] == [("hello", 4), ("pause", 3), ("tell-ae", 3)]
    assert "<title>ask: 0</title>" in bars  # a zero links nowhere
    flow = re.findall(r'<a class="flow-count" href="([^"]+)" aria-label="(\d+) accounts reached ([\w-]+)">', page)
    assert [(step, int(n)) for _, n, step in flow] == [(step, int(n)) for _, step, n in funnel]
    states = re.search(r'<div class="enrollment-states">(.*?)</svg>', page, re.S).group(1)
    by_state = re.findall(r'<a href="([^"]+)">\s*<g class="bar-row">\s*<title>([\w ]+): (\d+)</title>', states)
    assert sorted((s, int(n)) for _, s, n in by_state) == [("completed", 3), ("exited", 1), ("held out", 1)]

    for href, label, n in [*funnel, *[(h, s, n) for h, n, s in flow], *by_state]:
        rows = _rows(client, href, "enrollment")
        assert len(rows) == int(n), (label, href)
        exported = list(csv.DictReader(io.StringIO(client.get(href.replace("&amp;", "&") + "&format=csv")
                                                   .get_data(as_text=True))))
        assert {r["id"] for r in exported} == rows
    reached = set(db.session.execute(select(Enrollment.id).where(Enrollment.state == "completed")).scalars())
    assert _rows(client, "/playbooks/counted/enrollments?reached=tell-ae", "enrollment") == {str(i) for i in reached}
    served = api("manager").get("/api/v1/playbooks/counted/enrollments?reached=tell-ae").get_json()
    assert {e["id"] for e in served["items"]} == reached  # the API lists them by the same rule
    held = client.get("/playbooks/counted/enrollments?reached=hello").get_data(as_text=True)
    assert "Held<" not in held and "Accounts that reached hello" in held


def test_every_step_result_opens_as_many_touches_as_it_counts(as_role, world):
    client = as_role("ae")
    page = client.get("/playbooks/counted").get_data(as_text=True)
    table = re.search(r'<table class="step-results">(.*?)</table>', page, re.S).group(1)
    cells = re.findall(r'<a href="(/touches\?[^"]+)">([\d,]+)[ <]', table)
    assert len(cells) >= 10  # sent, opened, clicked, failed and suppressed with their reason, per variant
    hrefs = [h for h, _ in cells]
    assert any("result=opened" in h and "variant=" in h for h in hrefs)
    assert any("status=sent" in h and "variant=" in h for h in hrefs)
    assert any("reason=smtp" in h for h in hrefs) and any("step=tell-ae" in h for h in hrefs)
    for href, n in cells:
        assert len(_rows(client, href, "touch")) == int(n.replace(",", "")), href
    tests = re.search(r'<section class="card" aria-labelledby="ab-title".*?</section>', page, re.S).group(0)
    for href, n in re.findall(r'<a href="(/touches\?[^"]+)">([\d,]+)</a>', tests):
        assert len(_rows(client, href, "touch")) == int(n.replace(",", "")), href


def test_a_step_the_playbook_never_had_is_a_located_422(as_role, world):
    client = as_role("ae")
    bad = client.get("/playbooks/counted/enrollments?reached=nope")
    assert bad.status_code == 422 and "Reached: counted has no step &#39;nope&#39;" in bad.get_data(as_text=True)
    assert client.get("/playbooks/counted/enrollments?reached=nope&format=csv").status_code == 422
    assert client.get("/playbooks/unknown/enrollments").status_code == 404
    assert client.get("/playbooks/counted/enrollments?state=bogus").status_code == 200  # an unknown state: all
