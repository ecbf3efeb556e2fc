"""The alerts inbox page: a seller reads what happened and why, with the account's stage,
open opportunity and a suggested next step; acknowledges, snoozes until a date, marks
not relevant; the count in the navigation; a manager's team view; and in a real browser."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from abm.db import db, utcnow
from abm.models import Account, Alert, Contact, Opportunity
from abm.services import engine_hooks, events
from tests.engagement.test_scores import _line


@pytest.fixture(autouse=True)
def _quiet_engine(monkeypatch):
    monkeypatch.setattr(engine_hooks, "engagement_changed", lambda *args, **kwargs: None)


def seed(seller, other):
    """Acme (the seller's) turns warm from a meeting and a pricing visit by Jane; Hooli
    (the other seller's) turns warm too."""
    now = utcnow()
    acme = Account(name="Acme", domain="acme.com", stage="aware", owner_id=seller.id)
    hooli = Account(name="Hooli", domain="hooli.com", stage="engaged", owner_id=other.id)
    db.session.add_all([acme, hooli])
    db.session.flush()
    db.session.add(Contact(account_id=acme.id, email="jane@acme.com", first_name="Jane", last_name="Doe",
                           buying_role="champion"))
    db.session.add(Opportunity(account_id=hooli.id, name="Hooli renewal", stage="proposal", amount=12000))
    db.session.commit()
    events.store([_line("meeting", "jane@acme.com", now=now),
                  _line("web_visit", "jane@acme.com", url="https://acme.com/pricing", now=now),
                  _line("meeting", domain="hooli.com", now=now)], now=now)
    return {"acme": acme, "hooli": hooli, **{a.account_id: a for a in db.session.query(Alert).all()}}


def _items(html: str) -> list[str]:
    return re.findall(r'<h2><a href="/accounts/\d+">([^<]+)</a></h2>', html)


def test_a_seller_reads_acknowledges_snoozes_and_dismisses(as_role, quick_user):
    client = as_role("ae")
    w = seed(client.user, quick_user("ae", email="other@example.com"))
    html = client.get("/alerts").get_data(as_text=True)
    assert _items(html) == ["Acme"]  # not the other seller's
    assert re.search(r'href="/alerts"[^>]*>Alerts <span class="count" aria-label="1 new">1</span>', html)
    assert "Acme is now warm (score 33, up from 0), a surge" in html
    assert "<strong>Why:</strong> Score 0 before, 33 then (+33). In the 7 days before: 1 meeting (25 points), " \
           "1 website visit (8 points). Most of it from Jane Doe (champion)." in html
    assert '<dt>Stage</dt><dd><span class="pill stage">aware</span>' in html
    assert "<dt>Open opportunity</dt><dd>none</dd>" in html
    assert "Suggested next step:</strong> Call Jane Doe (champion) and qualify an opportunity." in html

    alert = w[w["acme"].id]
    resp = client.post(f"/alerts/{alert.id}/acknowledge", data={"next": "/alerts?state=new"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/alerts?state=new"
    html = client.get("/alerts").get_data(as_text=True)
    assert _items(html) == [] and f"Alert {alert.id} acknowledged." in html
    assert 'class="count"' not in html  # nothing new left in the navigation
    assert _items(client.get("/alerts?state=acknowledged").get_data(as_text=True)) == ["Acme"]

    client.post(f"/alerts/{alert.id}/reopen")
    resp = client.post(f"/alerts/{alert.id}/snooze", data={"until": "not a date"}, follow_redirects=True)
    assert "not changed: snooze until: &#39;not a date&#39; is not a date (YYYY-MM-DD)" in resp.get_data(as_text=True)
    day = (utcnow() + timedelta(days=2)).date().isoformat()
    client.post(f"/alerts/{alert.id}/snooze", data={"until": day})
    html = client.get("/alerts?state=snoozed").get_data(as_text=True)
    assert _items(html) == ["Acme"] and "Snoozed until" in html

    client.post(f"/alerts/{alert.id}/not_relevant", data={"feedback": "Jane is a student."})
    html = client.get("/alerts?state=not_relevant").get_data(as_text=True)
    assert "Marked not relevant: “Jane is a student.”" in html
    db.session.expire_all()
    assert db.session.get(Alert, alert.id).feedback == "Jane is a student."
    settings = as_role("admin").get("/admin/settings").get_data(as_text=True)  # feedback on the rules
    assert re.search(r"<strong>Acme</strong> \(level:warm, \d{4}-\d\d-\d\d\): “Jane is a student.”", settings)


def test_sellers_see_their_own_and_managers_the_team(as_role, quick_user):
    ae = as_role("ae")
    other = quick_user("ae", email="other@example.com")
    w = seed(ae.user, other)
    assert ae.get("/alerts?owner=team").status_code == 403
    assert ae.post(f"/alerts/{w[w['hooli'].id].id}/acknowledge").status_code == 403
    assert ae.post("/alerts/999999/acknowledge").status_code == 404
    assert ae.post(f"/alerts/{w[w['acme'].id].id}/explode").status_code == 302  # flashed: unknown action

    manager = as_role("manager")
    html = manager.get("/alerts").get_data(as_text=True)
    assert _items(html) == ["Hooli", "Acme"] or _items(html) == ["Acme", "Hooli"]
    assert "<h1>Alerts of the team" in html and "Hooli renewal · proposal · 12,000 USD" in html
    assert "Check in on the open opportunity “Hooli renewal”." in html
    assert _items(manager.get(f"/alerts?owner={other.id}").get_data(as_text=True)) == ["Hooli"]
    assert manager.get("/alerts?owner=424242").status_code == 404
    assert manager.get("/alerts?state=bogus&page=x").status_code == 200


@pytest.mark.browser
def test_in_a_browser_a_seller_reads_acknowledges_and_snoozes(live_server, new_page, make_live_user, monkeypatch):
    monkeypatch.setattr(engine_hooks, "engagement_changed", lambda *args, **kwargs: None)
    seller = make_live_user("ae", email="sam@example.com", name="Sam Seller")
    seed(seller, make_live_user("ae"))
    db.session.add(Account(name="Initech", domain="initech.com", stage="target", owner_id=seller.id))
    db.session.commit()
    events.store([_line("form_fill", domain="initech.com"), _line("meeting", domain="initech.com")])

    page = new_page()
    live_server.login(page, seller)
    nav = page.locator("nav.nav")
    assert nav.get_by_role("link", name=re.compile(r"^Alerts 2")).is_visible()
    nav.get_by_role("link", name=re.compile(r"^Alerts")).click()
    page.wait_for_url("**/alerts")
    cards = page.locator("li.alert-item")
    assert cards.count() == 2
    acme = cards.filter(has_text="Acme")
    assert "Why: Score 0 before, 33 then" in acme.inner_text()
    acme.get_by_role("button", name="Acknowledge").click()
    page.wait_for_url("**/alerts**")
    assert "acknowledged." in page.locator(".flash").inner_text()
    assert nav.get_by_role("link", name=re.compile(r"^Alerts 1")).is_visible()

    initech = page.locator("li.alert-item").filter(has_text="Initech")
    day = (utcnow() + timedelta(days=5)).date().isoformat()
    initech.get_by_label("Snooze until").fill(day)
    initech.get_by_role("button", name="Snooze").click()
    page.wait_for_url("**/alerts**")
    assert f"snoozed until {day}" in page.locator(".flash").inner_text()
    assert page.locator("li.alert-item").count() == 0
    page.get_by_role("link", name=re.compile(r"^Snoozed")).click()
    assert page.locator("li.alert-item").all_inner_texts()[0].startswith("Initech")
    page.screenshot(path=live_server.tmp / "alerts-snoozed.png", full_page=True)
    assert not live_server.js_errors
    assert all(url.startswith(live_server.url) for url in live_server.requests)
