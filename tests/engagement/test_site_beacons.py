"""Trusted engagement only: the site snippet's beacon (``POST /t/v``) needs a site's key
from one of its origins, is rate-limited and deduplicated, and what a browser reports is
marked as such and makes no lead."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from abm.db import db
from abm.models import Account, Event
from abm.services import events, site_beacons
from abm.services import settings as settings_service
from tests.engagement.conftest import SITE_ORIGIN, add_site, queued

FORM = {"type": "form_fill", "url": f"{SITE_ORIGIN}/contact-us", "form": "contact"}


def _beacon(client, body: dict, origin: str | None = SITE_ORIGIN, **headers):
    if origin:
        headers["Origin"] = origin
    return client.post("/t/v", data=json.dumps(body), content_type="text/plain", headers=headers)


def test_300_anonymous_form_fills_do_not_make_300_leads_or_4500_points(app, client, world, notified):
    key = add_site()
    before = db.session.get(Account, world["acme"].id).score
    answers = [_beacon(client, {**FORM, "site": key, "email": "jane@acme.com", "visitor_id": f"v{i}"},
                       environ_base={"REMOTE_ADDR": f"10.0.{i // 250}.{i % 250}"}).status_code
               for i in range(300)]
    limit = site_beacons.LIMITS[("form_fill", "contact")][0]
    assert answers.count(204) == limit and answers.count(429) == 300 - limit
    events.drain()
    rows = db.session.execute(select(Event.type, Event.source, Event.properties)).all()
    assert len(rows) == 1  # the accepted ones are one form fill of one person on one day
    assert rows[0].type == "browser_form_fill" and rows[0].source == "snippet"
    assert rows[0].properties["reported_by"] == "browser"
    db.session.expire_all()
    gained = db.session.get(Account, world["acme"].id).score - before
    assert 0 < gained <= settings_service.current()["weights"]["browser_form_fill"]
    leads = db.session.execute(select(func.count()).select_from(Event).where(
        Event.type.in_(settings_service.current()["lead_events"]))).scalar_one()
    assert leads == 0
    assert all("form_fill" not in by_type for _, by_type, _ in notified)  # no form_fill trigger fires


def test_a_beacon_needs_a_known_key_from_one_of_the_sites_origins(app, client, world):
    key = add_site()
    visit = {"type": "web_visit", "url": f"{SITE_ORIGIN}/pricing", "visitor_id": "v1"}
    assert _beacon(client, visit).status_code == 403  # no key
    assert _beacon(client, {**visit, "site": "x" * 32}).status_code == 403  # not a site's key
    other = _beacon(client, {**visit, "site": key}, origin="https://evil.example")
    assert other.status_code == 403 and "Access-Control-Allow-Origin" not in other.headers
    assert _beacon(client, {**visit, "site": key}, origin=None).status_code == 403  # no Origin, no Referer
    outside = _beacon(client, {**visit, "site": key, "url": "https://evil.example/pricing"})
    assert outside.status_code == 403
    assert queued(app) == []
    by_referrer = _beacon(client, {**visit, "site": key}, origin=None, Referer=f"{SITE_ORIGIN}/pricing")
    assert by_referrer.status_code == 204
    assert [e["type"] for e in queued(app)] == ["web_visit"]
    preflight = client.options("/t/v", headers={"Origin": SITE_ORIGIN})
    assert preflight.headers["Access-Control-Allow-Origin"] == SITE_ORIGIN
    assert "Access-Control-Allow-Origin" not in client.options("/t/v", headers={"Origin": "https://evil.example"}).headers


def test_the_same_visit_counts_once_and_a_visitor_is_rate_limited(app, client, world):
    key = add_site()
    visit = {"type": "web_visit", "url": f"{SITE_ORIGIN}/pricing", "visitor_id": "v1", "site": key}
    assert [_beacon(client, visit).status_code for _ in range(3)] == [204, 204, 204]
    assert events.drain().stored == 1
    most = site_beacons.LIMITS[("web_visit", "visitor")][0]
    answers = [_beacon(client, {**visit, "url": f"{SITE_ORIGIN}/p{i}"}).status_code for i in range(most + 5)]
    assert answers.count(429) == 8  # three visits above were counted too


def test_an_admin_may_let_browser_form_fills_count_as_leads(app, client, world):
    key = add_site(browser_leads=True)
    assert _beacon(client, {**FORM, "site": key, "email": "bob@acme.com", "visitor_id": "v1"}).status_code == 204
    events.drain()
    stored = db.session.execute(select(Event)).scalar_one()
    assert stored.type == "form_fill" and stored.properties["reported_by"] == "browser"


def test_a_site_gets_a_key_that_stays_when_its_settings_change(app):
    first = add_site()
    assert len(first) >= 20
    again = settings_service.update({"sites": [{"name": "www", "origins": [SITE_ORIGIN, "https://shop.example"]},
                                               {"name": "blog", "origins": ["https://blog.example"]}]})
    assert again["sites"][0]["key"] == first and again["sites"][1]["key"] not in ("", first)


def test_the_snippet_sends_its_sites_key(client):
    body = client.get("/t/snippet.js").get_data(as_text=True)
    assert 'getAttribute("data-site")' in body and "body.site = site" in body
