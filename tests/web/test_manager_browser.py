"""The ABM manager's journeys in a real headless Chromium: save a segment, write a
playbook that uses it and plan it (the funnel and each step's counts), apply it,
activate one whose audience is empty (asked first), and look at what each step did."""

from __future__ import annotations

import pytest

from abm.db import db
from abm.models import Account, Contact
from abm.services import connectors

pytestmark = pytest.mark.browser

PLAYBOOK = """version: 1
key: browser-pb
name: Browser playbook
audience: {segment: tier-one}
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi</p>"
"""


@pytest.fixture
def world(live_app, make_live_user):
    connectors.ensure_demo_connectors()
    manager = make_live_user("manager", email="mia@example.com", name="Mia Manager")
    accounts = [Account(name="Acme", domain="acme.example", stage="target", tier=1),
                Account(name="Globex", domain="globex.example", stage="target", tier=2)]
    db.session.add_all(accounts)
    db.session.flush()
    db.session.add(Contact(account_id=accounts[0].id, email="cfo@acme.example", first_name="Carla",
                           buying_role="decision_maker"))
    db.session.commit()
    return {"manager": manager}


def test_manager_saves_a_segment_plans_applies_and_activates(live_server, browser_page, world):
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())  # the Activate button's data-confirm
    live_server.login(page, world["manager"])

    page.goto(live_server.url + "/segments/_new")
    page.fill("input[name=name]", "tier-one")
    page.fill("textarea[name=condition]", "tier: [1]\n")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/segments/tier-one")
    assert page.locator("#segment-count").inner_text() == "1"
    assert page.locator("td.reasons").all_inner_texts() == ["tier is one of 1"]

    page.goto(live_server.url + "/playbooks/_new")
    page.fill("textarea[name=source]", PLAYBOOK)
    page.click("button[value=plan]")
    page.wait_for_selector("#plan")
    assert page.locator("#plan-entering").inner_text() == "1"
    assert page.locator("table.plan-funnel td").all_inner_texts()[:4] == [
        "accounts in the workspace", "2", "tier is one of 1", "1"]
    hello = page.locator("table.plan-steps tr[data-step=hello]")
    assert hello.locator("td[data-label=Reached]").inner_text() == "1"

    page.click("button[formaction$='_apply']")
    page.wait_for_url("**/playbooks/browser-pb")
    page.click("form[action$='/activate'] button")
    page.wait_for_load_state()
    assert page.locator("#status").inner_text() == "active"
    assert page.locator("#step-results tr[data-step=hello]").count() == 1

    # A copy whose audience keeps nobody asks before it starts.
    page.fill("input[name=new_key]", "browser-pb-empty")
    page.click("form[action$='/clone'] button")
    page.wait_for_url("**/playbooks/browser-pb-empty")
    page.goto(live_server.url + "/playbooks/browser-pb-empty/edit")
    source = page.locator("textarea[name=source]").input_value()
    page.fill("textarea[name=source]", source.replace("{segment: tier-one}", "{where: {tier: [3]}}"))
    page.click("button[formaction$='_apply']")
    page.wait_for_url("**/playbooks/browser-pb-empty")
    page.click("form[action$='/activate'] button")
    page.wait_for_selector("#confirm-empty")
    assert "none is left after" in page.locator("#confirm-empty h2").inner_text()
    page.click("#confirm-empty button[type=submit]")
    page.wait_for_url("**/playbooks/browser-pb-empty")
    assert page.locator("#status").inner_text() == "active"
    # The confirmation page answers 409 (activation did not happen): the browser logs it.
    assert [e for e in live_server.js_errors if "status of 409" not in e] == []
