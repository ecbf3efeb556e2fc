"""A real headless Chromium: log in, filter the accounts, open one, change its stage,
and look at the pages at laptop and phone size (screenshots in the test's tmp dir)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from abm.db import db
from abm.models import Account, Contact

pytestmark = pytest.mark.browser


@pytest.fixture
def world(live_app, make_live_user):
    ae = make_live_user("ae", email="sam@example.com", name="Sam Seller")
    accounts = [
        Account(name="Acme Payments", domain="acme.example", stage="aware", tier=1, score=42.5, engagement="warm",
                industry="fintech", owner_id=ae.id, employees=1200, country="US"),
        Account(name="Globex", domain="globex.example", stage="engaged", tier=2, score=71, engagement="hot"),
        Account(name="Initech", domain="initech.example", stage="aware", tier=2, score=5),
        Account(name="Umbrella Health", domain="umbrella.example", stage="target", tier=1, score=12),
    ]
    db.session.add_all(accounts)
    db.session.flush()
    db.session.add_all([
        Contact(account_id=accounts[0].id, email="cfo@acme.example", first_name="Carla", last_name="Fox",
                title="CFO", buying_role="decision_maker"),
        Contact(account_id=accounts[0].id, email="dev@acme.example", first_name="Dev", last_name="Ops",
                title="Platform lead", buying_role="champion"),
    ])
    db.session.commit()
    return {"ae": ae, "acme": accounts[0]}


def _no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_ae_logs_in_filters_opens_an_account_and_moves_its_stage(live_server, browser_page, world):
    page = browser_page
    page.goto(live_server.url + "/accounts")
    assert "/login" in page.url  # the pages are behind the login
    page.fill("input[name=email]", "sam@example.com")
    page.fill("input[name=password]", "wrong password")
    page.click("form button[type=submit]")
    assert page.get_by_role("alert").inner_text().startswith("That email and password do not match")

    page.fill("input[name=password]", "password123")  # the form kept the email and where to go next
    page.click("form button[type=submit]")
    page.wait_for_url("**/accounts")  # back where the login interrupted
    nav = page.locator("nav.nav a").all_inner_texts()
    assert "Accounts" in nav and "My accounts" in nav and "Users" not in nav and "Settings" not in nav
    rows = page.locator("table.accounts tbody tr")
    assert rows.count() == 4
    assert rows.first.locator("td.primary a").inner_text() == "Acme Payments"  # own accounts first

    page.select_option("select[name=stage]", "aware")  # submits by itself (data-autosubmit)
    page.wait_for_url("**/accounts?*stage=aware*")
    names = page.locator("table.accounts td.primary a").all_inner_texts()
    assert names == ["Acme Payments", "Initech"]
    assert page.locator('.chips a.active').inner_text().startswith("aware")
    page.screenshot(path=live_server.tmp / "accounts-laptop.png", full_page=True)

    page.click("text=Acme Payments")
    page.wait_for_url("**/accounts/*")
    assert page.locator("h1").inner_text().startswith("Acme Payments")
    assert page.locator('.role-group[data-role="decision_maker"]').inner_text().count("Carla Fox") == 1
    page.select_option(".stage-form select[name=stage]", "engaged")
    page.click(".stage-form button[type=submit]")
    page.wait_for_load_state()
    assert "moved from aware to engaged" in page.locator(".flashes").inner_text()
    assert "ui:sam@example.com" in page.locator(".stage-history").inner_text()
    page.screenshot(path=live_server.tmp / "account-laptop.png", full_page=True)
    assert _no_sideways_scroll(page)

    page.click("a.brand")
    page.wait_for_url(live_server.url + "/")
    assert page.locator(".stat-label", has_text="Your accounts").is_visible()
    page.screenshot(path=live_server.tmp / "home-laptop.png", full_page=True)

    hosts = {urlsplit(u).netloc for u in live_server.requests}
    assert hosts == {urlsplit(live_server.url).netloc}, hosts  # nothing from a CDN or elsewhere
    assert [e for e in live_server.js_errors if "401" not in e] == []  # the failed login's 401 is logged


def test_pages_fit_a_phone(live_server, new_page, make_live_user, world):
    admin = make_live_user("admin", name="Ada Admin")
    page = new_page(390, 844, mobile=True)
    live_server.login(page, admin)
    for path, name in (("/", "home"), ("/accounts", "accounts"), (f"/accounts/{world['acme'].id}", "account"),
                       ("/admin/settings", "settings"), ("/admin/users", "users")):
        page.goto(live_server.url + path)
        assert page.locator("h1").first.is_visible(), path
        assert _no_sideways_scroll(page), f"{path} scrolls sideways on a phone"
        page.screenshot(path=live_server.tmp / f"{name}-phone.png", full_page=True)
    # The nav is one scrolling row under the brand; the last entries can be reached.
    page.goto(live_server.url + "/accounts")
    page.locator("nav.nav a", has_text="Settings").scroll_into_view_if_needed()
    page.locator("nav.nav a", has_text="Settings").click()
    page.wait_for_url("**/admin/settings")
    assert live_server.js_errors == []
