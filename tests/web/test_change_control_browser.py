"""The manager's change control and counts in a real headless Chromium: moving running
enrollments to a new version from the playbook's page (the mapping shown, then planned,
then applied), a test of an email step sent to oneself for a chosen account and contact
(read at a real SMTP server, aiosmtpd), and a step's count clicked through to the
accounts that reached it."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Account, Contact, Enrollment, PlaybookVersion
from abm.services import connectors
from abm.services import playbooks as service
from tests.connectors.fakes.smtp_server import smtp_server
from tests.engine.conftest import run_worker
from tests.web import journeys

pytestmark = pytest.mark.browser

PLAYBOOK = """version: 1
key: journeys
name: Journeys playbook
audience:
  where: {tier: [1]}
holdout: 0%
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p>"
  - id: pause
    wait: 3d
  - id: again
    email:
      to: {roles: [decision_maker]}
      subject: "Again {{ account.name }}"
      body: "<p>Still there, {{ contact.first_name }}?</p>"
"""
#: Version 2: a shorter wait, and "again" gives way to an alert: who waits keeps its step by id.
V2 = PLAYBOOK.replace("  - id: pause\n    wait: 3d\n", "  - id: pause\n    wait: 2d\n").replace(
    PLAYBOOK[PLAYBOOK.index("  - id: again"):], "  - id: nudge\n    alert: {to: owner, message: \"Call {{ account.name }}\"}\n")


def _started(live_server) -> None:
    """The playbook active on Acme, Birch and Cedar (not Other, tier 2), each past hello
    and waiting at pause."""
    journeys.start(live_server, PLAYBOOK, "journeys")


def test_the_manager_moves_running_enrollments_to_the_new_version(live_server, browser_page, make_live_user):
    _started(live_server)
    service.apply(V2)
    page = browser_page
    live_server.login(page, make_live_user("manager"))
    page.goto(live_server.url + "/playbooks/journeys")
    card = page.locator("#change-control")
    assert "3 running enrollment(s) are on older versions" in card.inner_text()
    assert card.locator("ul.migration li").all_inner_texts() == ["3 waiting at v1 pause → pause"]

    card.get_by_role("link", name="Plan the migration first").click()
    page.wait_for_url("**/playbooks/journeys/plan?migrate=1")
    assert page.locator("#plan-moving").inner_text() == "3"
    assert page.locator("ul.plan-migration li").all_inner_texts() == ["3 waiting at v1 pause → pause"]
    assert page.locator("table.plan-steps tr[data-step=nudge] td[data-label=Reached]").inner_text() == "3"
    page.go_back()

    page.get_by_role("button", name="Move them to version 2").click()
    page.wait_for_url("**/playbooks/journeys")
    assert "3 running enrollment(s) moved to version 2." in page.locator("main").inner_text()
    assert page.locator("#change-control ul.migration").count() == 0
    v2 = db.session.execute(select(PlaybookVersion.id).where(PlaybookVersion.version == 2)).scalar_one()
    db.session.rollback()  # read what the server's threads committed
    moved = db.session.execute(select(Enrollment.version_id, Enrollment.step_index, Enrollment.state)).all()
    assert sorted(moved) == [(v2, 1, "waiting")] * 3  # on version 2, at its wait
    assert not live_server.js_errors


def test_the_manager_sends_a_test_of_an_email_step_to_themselves(live_server, browser_page, make_live_user):
    admin = make_live_user("admin")
    manager = make_live_user("manager", email="mia@example.com", name="Mia Manager")
    acme = Account(name="Acme", domain="acme.example", tier=1, stage="target")
    db.session.add(acme)
    db.session.flush()
    db.session.add_all([Contact(account_id=acme.id, email="dee@acme.example", first_name="Dee",
                                buying_role="decision_maker"),
                        Contact(account_id=acme.id, email="carla@acme.example", first_name="Carla",
                                buying_role="decision_maker")])
    db.session.commit()
    with smtp_server() as server:
        connectors.create({"name": "mail", "type": "smtp", "default": ["email"], "settings": {
            "host": server.host, "port": server.port, "security": "none", "from_email": "abm@vendor.example",
            "timeout": 5}}, admin.id)
        service.apply(PLAYBOOK)
        page = browser_page
        live_server.login(page, manager)
        page.goto(live_server.url + "/playbooks/journeys")
        card = page.locator("#change-control")
        card.get_by_label("Test step").select_option("again")
        card.get_by_label("For account").fill("acme.example")
        card.get_by_label("And contact").fill("carla@acme.example")
        card.get_by_role("button", name="Send the test to me").click()
        page.wait_for_url("**/playbooks/journeys")
        assert ("A test of again ([Test] Again Acme), rendered for carla@acme.example at acme.example, is on its way "
                "to mia@example.com.") in page.locator("main").inner_text()
        assert run_worker(live_server.app) == 1
        [received] = server.messages
    mail = message_from_bytes(received.raw, policy=policy.default)
    assert received.rcpt_tos == ["mia@example.com"] and mail["To"].addresses[0].addr_spec == "mia@example.com"
    assert mail["To"].addresses[0].display_name == ""  # addressed to her, not under the contact's name
    assert mail["Subject"] == "[Test] Again Acme"
    assert "Still there, Carla?" in mail.get_body(("html",)).get_content()  # the chosen contact, not Dee
    assert db.session.execute(select(Enrollment)).first() is None  # a draft: nobody enrolled, nothing else sent
    assert not live_server.js_errors


def test_a_steps_count_opens_the_accounts_that_reached_it(live_server, browser_page, make_live_user):
    _started(live_server)
    page = browser_page
    live_server.login(page, make_live_user("ae"))
    page.goto(live_server.url + "/playbooks/journeys")
    assert page.get_by_role("link", name=re.compile(r"reached again")).count() == 0  # nobody yet: no link
    page.get_by_role("link", name="3 accounts reached hello").click()  # the count on the flow graph
    page.wait_for_url("**/playbooks/journeys/enrollments?reached=hello")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Accounts that reached hello")

    def accounts() -> list[str]:
        return page.locator("table.enrollments td[data-label=Account] a").all_inner_texts()

    assert sorted(accounts()) == ["Acme", "Birch", "Cedar"]
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = download.value.path().read_text()
    assert exported.splitlines()[0].startswith("id,account_id,account,domain,state")
    assert sorted(line.split(",")[2] for line in exported.splitlines()[1:]) == ["Acme", "Birch", "Cedar"]

    page.get_by_label("State").select_option("completed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**state=completed**")
    assert accounts() == [] and "No enrollment matches." in page.locator("main").inner_text()
    page.get_by_role("link", name="Back to the playbook").click()
    page.wait_for_url("**/playbooks/journeys")
    page.locator("div.funnel a").first.click()  # the bar of the first step: the same accounts
    page.wait_for_url("**/playbooks/journeys/enrollments?reached=hello")
    assert sorted(accounts()) == ["Acme", "Birch", "Cedar"]
    assert not live_server.js_errors
