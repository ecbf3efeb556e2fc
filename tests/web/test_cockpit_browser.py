"""The manager's cockpit and the sales side in a real headless Chromium, each test
asserting what the user sees: a playbook's diff between two versions, the Outbox searched
and paged, My accounts filtered with a saved default view, the team's alerts by seller,
and the connector form keeping what was typed when it shows a located error."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import ConnectorConfig
from abm.services import connectors, engine_hooks
from abm.services import playbooks as service
from abm.web import outbox as outbox_page
from tests.web import journeys
from tests.web import test_alerts_page as alerts_page
from tests.web import test_engagement_pages as engagement_pages

pytestmark = pytest.mark.browser

PLAYBOOK = """version: 1
key: cockpit
name: Cockpit playbook
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p>"
  - id: again
    email:
      to: {roles: [decision_maker]}
      subject: "Again {{ account.name }}"
      body: "<p>Still there?</p>"
"""


@pytest.fixture
def quiet_engine(monkeypatch):
    monkeypatch.setattr(engine_hooks, "engagement_changed", lambda *args, **kwargs: None)


def test_the_manager_reads_what_changed_from_one_version_to_the_next(live_server, browser_page, make_live_user):
    connectors.ensure_demo_connectors()
    service.apply(PLAYBOOK)
    service.apply(PLAYBOOK.replace('subject: "Hello {{ account.name }}"', 'subject: "A question for {{ account.name }}"')
                  + "  - wait: 2d\n  - id: nudge\n    alert:\n      to: owner\n      message: \"Call {{ account.name }}\"\n")
    page = browser_page
    live_server.login(page, make_live_user("manager"))
    page.goto(live_server.url + "/playbooks/cockpit")
    page.get_by_role("link", name="what changed since").click()
    page.wait_for_url("**/playbooks/cockpit/diff?from=1")
    assert page.get_by_role("heading", level=1).inner_text().endswith("version 1 → 2")
    assert page.locator("#diff-changed").inner_text().startswith("hello: ")
    assert "subject" in page.locator("#diff-changed").inner_text()
    assert "nudge" in page.locator("#diff-added").inner_text().split()
    assert page.locator("#diff-removed").inner_text() == "none"
    added = page.locator("pre.pb-diff span.add").all_inner_texts()
    removed = page.locator("pre.pb-diff span.del").all_inner_texts()
    assert any('A question for {{ account.name }}' in line for line in added)
    assert any('"Hello {{ account.name }}"' in line for line in removed)
    assert any("id: nudge" in line for line in added)
    page.get_by_role("link", name="Back to the playbook").click()
    page.wait_for_url("**/playbooks/cockpit")
    assert not live_server.js_errors


def test_the_outbox_is_searched_and_paged(live_server, browser_page, make_live_user, monkeypatch):
    journeys.start(live_server, PLAYBOOK, "cockpit")
    assert len(list((live_server.tmp / "outbox").glob("*.eml"))) == 6  # two emails to each of three accounts

    page = browser_page
    live_server.login(page, make_live_user("manager"))
    page.goto(live_server.url + "/outbox")
    assert "(6 in all)" in page.locator("main p.muted").first.inner_text()
    page.get_by_role("searchbox", name="Search").fill("birc")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/outbox?q=birc**")
    subjects = page.locator("table.outbox td[data-label=Subject]").all_inner_texts()
    assert sorted(subjects) == ["Again Birch", "Hello Birch"]
    page.get_by_role("link", name="Hello Birch").click()
    page.wait_for_url("**/outbox/*/*.eml")
    assert "Hello Birch" in page.locator("main").inner_text()

    monkeypatch.setattr(outbox_page, "PAGE_SIZE", 4)
    page.goto(live_server.url + "/outbox")
    page.get_by_label("Playbook").select_option("cockpit")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/outbox?**playbook=cockpit**")
    first = page.locator("table.outbox td[data-label=Subject]").all_inner_texts()
    assert len(first) == 4 and page.get_by_role("link", name="Newest").count() == 0
    page.get_by_role("link", name="Older").click()
    page.wait_for_url("**cursor=**")
    second = page.locator("table.outbox td[data-label=Subject]").all_inner_texts()
    assert len(second) == 2 and sorted(first + second) == sorted(
        f"{step} {name}" for step in ("Again", "Hello") for name in ("Acme", "Birch", "Cedar"))
    assert page.get_by_role("link", name="Older").count() == 0
    page.get_by_role("link", name="Newest").click()
    assert page.locator("table.outbox td[data-label=Subject]").all_inner_texts() == first
    assert page.get_by_label("Playbook").input_value() == "cockpit"  # the filter stays while paging
    # the one console error is the email's tracking pixel, refused by the sandbox as it should be
    assert [e for e in live_server.js_errors if "/t/o/" not in e or "Content Security Policy" not in e] == []


def test_my_accounts_filters_and_the_saved_default_view(live_server, browser_page, make_live_user, quiet_engine):
    seller = make_live_user("ae", name="Sam Seller")
    engagement_pages.seed(seller, make_live_user("ae"))
    page = browser_page
    live_server.login(page, seller)
    page.locator("nav.nav").get_by_role("link", name="My accounts").click()
    page.wait_for_url("**/engagement/mine")

    def rows() -> list[str]:
        return page.locator("table.my-accounts td[data-label=Account] a").all_inner_texts()

    summary = page.locator("p.result-summary")
    assert rows() == ["Acme", "Globex", "Umbrella", "Initech"] and summary.inner_text().startswith("4 accounts,")
    page.get_by_label("Search").fill("glob")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**q=glob**")
    assert rows() == ["Globex"] and summary.inner_text().startswith("1 account matching the filters")
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Level").select_option("hot")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**level=hot**")
    assert rows() == ["Acme"]

    page.get_by_role("button", name="Save as my default").click()
    page.wait_for_load_state()
    page.goto(live_server.url + "/")
    page.locator("nav.nav").get_by_role("link", name="My accounts").click()
    page.wait_for_url("**/engagement/mine**")
    assert rows() == ["Acme"] and "(your saved default)" in summary.inner_text()
    assert page.get_by_label("Level").input_value() == "hot"
    page.get_by_role("link", name="Clear").click()  # asking for something else sets the default aside
    assert rows() == ["Acme", "Globex", "Umbrella", "Initech"] and "saved default" not in summary.inner_text()
    assert not live_server.js_errors


def test_the_manager_reads_the_teams_alerts_by_seller(live_server, browser_page, make_live_user, quiet_engine):
    sam = make_live_user("ae", name="Sam Seller")
    kim = make_live_user("ae", name="Kim Closer")
    alerts_page.seed(sam, kim)  # an alert on Acme (Sam's) and one on Hooli (Kim's)
    page = browser_page
    live_server.login(page, make_live_user("manager", name="Mia Manager"))
    page.locator("nav.nav").get_by_role("link", name=re.compile(r"^Alerts")).click()
    page.wait_for_url("**/alerts")

    def accounts() -> list[str]:
        return page.locator("li.alert-item h2").all_inner_texts()

    assert sorted(accounts()) == ["Acme", "Hooli"]
    assert page.get_by_label("Seller").input_value() == "team"
    page.get_by_label("Seller").select_option(label="Sam Seller")  # the form sends itself
    page.wait_for_url(f"**owner={sam.id}**")
    assert accounts() == ["Acme"]
    page.get_by_label("Seller").select_option(label="Kim Closer")
    page.wait_for_url(f"**owner={kim.id}**")
    assert accounts() == ["Hooli"]
    assert "Hooli renewal" in page.locator("li.alert-item").inner_text()  # the open opportunity
    page.get_by_label("Seller").select_option("team")
    page.wait_for_url("**owner=team**")
    assert sorted(accounts()) == ["Acme", "Hooli"]
    assert not live_server.js_errors


def test_a_bad_connector_form_shows_located_errors_and_keeps_what_was_typed(live_server, browser_page,
                                                                           make_live_user):
    page = browser_page
    live_server.login(page, make_live_user("admin"))
    page.goto(live_server.url + "/connectors/new?type=smtp")
    page.get_by_role("textbox", name=re.compile(r"^Name")).fill("mail-relay")
    page.fill("input[name='s.host']", "smtp.ourco.example")
    page.fill("input[name='s.port']", "2525")
    page.fill("input[name='s.from_email']", "not an email")
    page.fill("input[name='rate_limit']", "often")
    page.locator("#connector-form button[type=submit]").first.click()
    page.wait_for_load_state()

    assert page.locator(".flash-error").inner_text().startswith("2 fields need attention.")
    for name in ("s.from_email", "rate_limit"):
        field = page.locator("label.field", has=page.locator(f"input[name='{name}']"))
        assert field.locator("ul.field-errors").is_visible(), name
        assert page.locator(f"input[name='{name}']").get_attribute("aria-invalid") == "true", name
    assert page.locator("label.field", has=page.locator("input[name='s.host']")).locator("ul.field-errors").count() == 0
    # nothing typed is lost
    assert page.get_by_role("textbox", name=re.compile(r"^Name")).input_value() == "mail-relay"
    assert page.locator("input[name='s.host']").input_value() == "smtp.ourco.example"
    assert page.locator("input[name='s.port']").input_value() == "2525"
    assert page.locator("input[name='s.from_email']").input_value() == "not an email"
    assert page.locator("input[name='rate_limit']").input_value() == "often"
    assert db.session.execute(select(ConnectorConfig).where(ConnectorConfig.name == "mail-relay")).first() is None

    page.fill("input[name='s.from_email']", "news@ourco.example")
    page.fill("input[name='rate_limit']", "10/1")
    page.locator("#connector-form button[type=submit]").first.click()
    page.wait_for_load_state()
    assert page.locator(".flash-error").count() == 0
    assert "mail-relay" in page.locator("main").inner_text()
    db.session.expire_all()
    saved = db.session.execute(select(ConnectorConfig).where(ConnectorConfig.name == "mail-relay")).scalar_one()
    assert saved.settings["host"] == "smtp.ourco.example" and saved.settings["port"] == 2525
    assert [e for e in live_server.js_errors if "status of 422" not in e] == []  # the refused form's own answer
