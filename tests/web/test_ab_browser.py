"""The manager reads an A/B test in a real headless Chromium: the dry run shows each
variant's expected touches and a rendered sample of each; the playbook page shows each
variant's results under its step and the comparison with its interval; a variant's count
opens exactly the touches behind it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from abm.db import db, utcnow
from abm.models import Account, Contact, Event, Touch
from abm.services import connectors
from abm.services import playbooks as service
from workers import dispatcher

pytestmark = pytest.mark.browser

PLAYBOOK = """version: 1
key: ab-page
name: A/B on the page
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Question for {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p>"
      variants:
        - name: question
        - name: statement
          subject: "News for {{ account.name }}"
"""
N = 30


@pytest.fixture
def world(live_app, make_live_user):
    connectors.ensure_demo_connectors()
    db.session.add_all(Account(name=f"Acct {i:02d}", domain=f"acct{i:02d}.example", tier=1, stage="target")
                       for i in range(N))
    db.session.flush()
    for account in db.session.execute(select(Account)).scalars():
        db.session.add(Contact(account_id=account.id, email=f"dm@{account.domain}", first_name="Dee",
                               buying_role="decision_maker"))
    db.session.commit()
    return {"manager": make_live_user("manager", email="mia@example.com", name="Mia Manager")}


def _send_and_click() -> dict[str, list[int]]:
    """Activate, dispatch, mark every touch sent (as a worker would) and record a click on
    every touch of ``statement`` and on none of ``question``; variant -> touch ids."""
    service.apply(PLAYBOOK)
    service.activate("ab-page")
    dispatcher.dispatch(now=utcnow(), enqueue=False)
    db.session.execute(update(Touch).values(status="sent", sent_at=utcnow()))
    touches = db.session.execute(select(Touch).order_by(Touch.id)).scalars().all()
    for t in touches:
        if t.variant == "statement":
            db.session.add(Event(type="email_click", occurred_at=utcnow(), account_id=t.account_id,
                                 contact_id=t.contact_id, touch_id=t.id, playbook_id=t.playbook_id, properties={}))
    db.session.commit()
    return {name: [t.id for t in touches if t.variant == name] for name in ("question", "statement")}


def test_the_manager_plans_and_reads_an_a_b_test(live_server, browser_page, world):
    page = browser_page
    live_server.login(page, world["manager"])

    page.goto(live_server.url + "/playbooks/_new")
    page.fill("textarea[name=source]", PLAYBOOK)
    page.click("button[value=plan]")
    page.wait_for_selector("#plan")
    planned = {row.get_attribute("data-variant"): int(row.locator("td[data-label=Touches]").inner_text())
               for row in page.locator("table.plan-steps tr.variant").all()}
    assert set(planned) == {"question", "statement"} and sum(planned.values()) == N
    samples = page.locator("#plan .rendered[data-variant]")
    assert samples.count() == 2
    assert "Question for Acct" in samples.nth(0).inner_text() and "News for Acct" in samples.nth(1).inner_text()

    ids = _send_and_click()
    assert {name: len(found) for name, found in ids.items()} == planned  # the plan was what happened

    page.goto(live_server.url + "/playbooks/ab-page")
    rows = page.locator("#step-results tr.variant[data-step=hello]")
    assert [r.get_attribute("data-variant") for r in rows.all()] == ["question", "statement"]
    statement = page.locator("#step-results tr.variant[data-variant=statement]")
    n1, n0 = len(ids["statement"]), len(ids["question"])
    assert statement.locator("td[data-result=sent]").inner_text() == str(n1)
    assert page.locator("#step-results tr.variant[data-variant=question] td[data-result=sent]").inner_text() == str(n0)
    assert statement.locator("td[data-result=clicked]").inner_text() == str(n1)
    assert page.locator("#step-results tr.variant[data-variant=question] td[data-result=clicked]").inner_text() == "0"

    comparison = page.locator("#ab-results table[data-step=hello] tr[data-variant=statement][data-metric=clicked]")
    assert comparison.locator("td[data-field=difference]").inner_text() == "+100.0 pts"
    low, high = re.findall(r"[+-]\d+\.\d", comparison.locator("td[data-field=interval]").inner_text())
    assert 0 < float(low) < 100 and float(high) == 100.0
    assert "statement has the higher click rate" in comparison.inner_text()
    assert "Newcombe" in page.locator("#ab-results").inner_text()

    statement.locator("td[data-result=clicked] a").click()
    page.wait_for_url("**/touches?**")
    listed = sorted(int(t) for t in page.locator("tr[data-touch]").evaluate_all(
        "rows => rows.map(r => r.dataset.touch)"))
    assert listed == sorted(ids["statement"])
    assert page.locator("tr[data-touch] td[data-label=Step]").first.inner_text().endswith("variant statement")
    assert live_server.js_errors == []
