"""Account identification of anonymous web visits, and visitor stitching, end to end:
the snippet's beacon at /t/v from a client address, the drain, the stored event, the score."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from abm import tracking
from abm.db import db, utcnow
from abm.models import Account, Event, Visitor
from abm.services import events, identification, networks
from abm.services import settings as settings_service
from connectors.email_message import add_tracking
from tests.engagement.conftest import add_site

SITE = "https://www.ourco.example"


@pytest.fixture(autouse=True)
def site_key(app):
    """The website set up for the snippet (beacons need its key and origin)."""
    return add_site([SITE])


def beacon(client, body: dict, ip: str | None = None):
    return client.post("/t/v", data=json.dumps({**body, "site": settings_service.current()["sites"][0]["key"]}),
                       content_type="application/json", headers={"Origin": SITE},
                       environ_base={"REMOTE_ADDR": ip} if ip else {})


def visit(client, ip: str, *, visitor: str = "v-1", path: str = "/pricing", **extra):
    body = {"type": "web_visit", "url": SITE + path, "visitor_id": visitor, **extra}
    resp = beacon(client, body, ip)
    assert resp.status_code == 204, resp.data
    events.drain()


def stored(**where) -> list[Event]:
    db.session.expire_all()
    q = select(Event).order_by(Event.id)
    for key, value in where.items():
        q = q.where(getattr(Event, key) == value)
    return list(db.session.execute(q).scalars())


def test_a_visit_from_a_network_attached_to_an_account_counts_for_that_account_only(app, client, world):
    acme, globex = world["acme"], world["globex"]
    networks.add_networks(acme.id, ["203.0.113.0/24"])
    networks.add_networks(globex.id, ["203.0.113.128/25"])  # more specific: wins inside acme's /24
    score_before = db.session.get(Account, acme.id).score

    visit(client, "203.0.113.7", visitor="a")
    visit(client, "203.0.113.200", visitor="b")
    visit(client, "198.51.100.9", visitor="c")

    by_visitor = {e.visitor_id: e for e in stored(type="web_visit")}
    assert by_visitor["a"].account_id == acme.id and by_visitor["a"].contact_id is None
    assert by_visitor["b"].account_id == globex.id
    assert by_visitor["c"].account_id is None
    match = by_visitor["a"].properties["ip_match"]
    assert match == {"source": "network", "confidence": 0.95, "network": "203.0.113.0/24"}
    assert "ip" not in by_visitor["a"].properties  # matched: only the truncated network is kept
    assert by_visitor["c"].properties["ip"] == "198.51.100.9"  # kept for a later match, for a while
    assert db.session.get(Account, acme.id).score > score_before


def test_ip2asn_ranges_identify_accounts_by_as_number_and_by_organisation_name(app, client, world):
    acme, globex = world["acme"], world["globex"]
    report = networks.load_ip2asn([
        "192.0.2.0\t192.0.2.255\t64500\tUS\tACME-NET - Acme Inc\n",
        "2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64501\tDE\tGLOBEX-AS Globex Corporation\n",
        "0.0.0.0\t0.255.255.255\t0\tNone\tNot routed\n",
        "not an address\t1.2.3.4\t5\tUS\tbroken\n",
    ])
    assert report.written == 2 and [e["line"] for e in report.errors] == [4]
    suggestions = {(s["domain"], s["asn"]) for s in networks.suggest_asn_matches()}
    assert ("acme.com", 64500) in suggestions and ("globex.com", 64501) in suggestions

    networks.map_asn(acme.id, asn=64500)
    networks.map_asn(globex.id, org_name="GLOBEX-AS Globex Corporation")
    visit(client, "192.0.2.44", visitor="a")
    visit(client, "2001:db8::1:2", visitor="b")

    by_visitor = {e.visitor_id: e for e in stored(type="web_visit")}
    assert (by_visitor["a"].account_id, by_visitor["a"].properties["ip_match"]["source"]) == (acme.id, "asn")
    assert (by_visitor["b"].account_id, by_visitor["b"].properties["ip_match"]["source"]) == (globex.id, "asn_name")
    assert by_visitor["b"].properties["ip_match"]["network"] == "2001:db8::/48"


def test_a_network_attached_later_matches_kept_visits_and_old_addresses_are_purged(app, client, world):
    acme = world["acme"]
    visit(client, "203.0.113.7", visitor="a")
    assert stored(type="web_visit")[0].account_id is None

    networks.add_networks(acme.id, ["203.0.113.0/24"])
    assert identification.match_pending() == {acme.id}
    db.session.commit()
    event = stored(type="web_visit")[0]
    assert event.account_id == acme.id and "ip" not in event.properties

    visit(client, "198.51.100.9", visitor="b")
    assert identification.purge_raw_addresses(now=utcnow() + timedelta(days=8)) == 1
    db.session.commit()
    assert "ip" not in stored(visitor_id="b")[0].properties


def test_a_workspace_can_turn_identification_off(app, client, world):
    """Off: no visit is matched by address, on arrival or later; no address is kept, or sent to a
    look-up provider; the next purge drops the addresses kept while it was on, however recent."""
    visit(client, "203.0.113.7", visitor="before")  # while on: unmatched, its address kept
    assert stored(visitor_id="before")[0].properties["ip"] == "203.0.113.7"
    assert identification.addresses_to_look_up() == ["203.0.113.7"]
    settings_service.update({"identification": {**settings_service.current()["identification"], "enabled": False}})
    networks.add_networks(world["acme"].id, ["203.0.113.0/24"])
    assert identification.match_pending() == set() and identification.addresses_to_look_up() == []
    visit(client, "203.0.113.8", visitor="after")
    event = stored(visitor_id="after")[0]
    assert event.account_id is None and "ip" not in event.properties and "ip_match" not in event.properties
    assert identification.purge_raw_addresses() == 1
    db.session.commit()
    before = stored(visitor_id="before")[0]
    assert before.account_id is None and "ip" not in before.properties


@pytest.mark.parametrize("order", ["visits first", "form first"])
def test_a_visitor_who_fills_a_form_takes_their_visits_with_them(app, client, world, order):
    acme, jane = world["acme"], world["jane"]
    form = {"type": "form_fill", "url": SITE + "/demo", "visitor_id": "v-9", "email": "jane@acme.com"}

    def fill_form():
        resp = beacon(client, form, "198.51.100.9")
        assert resp.status_code == 204
        events.drain()

    if order == "form first":
        fill_form()
    score_before = db.session.get(Account, acme.id).score
    visit(client, "198.51.100.9", visitor="v-9", path="/pricing")
    visit(client, "198.51.100.9", visitor="v-9", path="/features")
    if order == "visits first":
        score_before = db.session.get(Account, acme.id).score
        fill_form()

    visits = stored(type="web_visit")
    assert [(v.contact_id, v.account_id) for v in visits] == [(jane.id, acme.id)] * 2
    assert all("ip" not in v.properties for v in visits)
    db.session.expire_all()
    assert db.session.get(Account, acme.id).score > score_before + 2  # the visits now count for acme


def test_erasing_a_person_removes_their_visits_link(app, client, world, api):
    """Erasure unlinks the person's visits (those before the form, stitched, and after) and forgets
    their visitor id; the visits stay as the account's."""
    jane, acme = world["jane"], world["acme"]
    visit(client, "198.51.100.9", visitor="v-9", path="/pricing")  # anonymous, then stitched
    assert beacon(client, {"type": "form_fill", "url": SITE + "/demo", "visitor_id": "v-9",
                           "email": "jane@acme.com"}).status_code == 204
    visit(client, "198.51.100.9", visitor="v-9", path="/features")
    assert [(v.contact_id, v.account_id) for v in stored(type="web_visit")] == [(jane.id, acme.id)] * 2
    assert api("admin").delete(f"/api/v1/contacts/{jane.id}").status_code == 204
    assert [(v.contact_id, v.visitor_id, v.account_id) for v in stored(type="web_visit")] == [
        (None, None, acme.id)] * 2
    assert db.session.execute(select(Visitor)).first() is None
    visit(client, "198.51.100.9", visitor="v-9", path="/docs")  # the visitor id is no longer known
    assert stored(type="web_visit")[-1].contact_id is None


def test_networks_over_the_api_and_from_a_csv_say_which_entry_is_wrong(app, api, world):
    admin = api("admin")
    acme = world["acme"]
    resp = admin.post(f"/api/v1/accounts/{acme.id}/networks", json={"networks": ["203.0.113.0/24", "300.1.1.1/8"]})
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"][0]["path"] == "networks[1]"
    resp = admin.post(f"/api/v1/accounts/{acme.id}/networks", json={"networks": ["203.0.113.0/24", "2001:db8::/32"]})
    assert resp.status_code == 201
    listed = admin.get(f"/api/v1/accounts/{acme.id}/networks").get_json()
    assert [n["network"] for n in listed] == ["203.0.113.0/24", "2001:db8::/32"]
    assert api("ae").post(f"/api/v1/accounts/{acme.id}/networks", json={"networks": ["10.0.0.0/8"]}).status_code == 403

    report = networks.import_networks_csv("domain,network\nacme.com,198.51.100.0/24\nnope.example,1.2.3.0/24\n"
                                          "globex.com,not-a-net\n")
    assert report.written == 1
    assert [(e["line"], e["field"]) for e in report.errors] == [(3, "domain"), (4, "network")]



@pytest.mark.parametrize("before", [True, False], ids=["an anonymous visit before the click", "click first"])
def test_a_tracked_click_makes_the_browsers_visits_the_contacts_on_the_account_timeline(app, client, world, api,
                                                                                         before):
    """The tracked email link carries the signed contact parameter (``abm_c``); the snippet on
    the landing page sends it with the browser's visitor id. The visitor becomes the contact:
    the landing visit, the browser's earlier anonymous visits and its later visits (which no
    longer carry the parameter) are the contact's, on the account's timeline, and count."""
    acme, jane = world["acme"], world["jane"]
    if before:
        visit(client, "198.51.100.9", visitor="v-7", path="/features")  # anonymous: no account yet
        assert stored(visitor_id="v-7")[0].account_id is None
    score_before = db.session.get(Account, acme.id).score

    html = f'<p><a href="{SITE}/pricing">Pricing</a></p>'
    info = tracking.tracking_for_email(world["touch"].id, jane.id, acme.id, html)
    href = re.search(r'href="([^"]+)"', add_tracking(html, info["open_url"], info["click_url_template"])).group(1)
    click = client.get(href.replace("&amp;", "&").replace("http://abm.test", ""))
    assert click.status_code == 302
    landing = urlsplit(click.headers["Location"])
    token = parse_qs(landing.query)["abm_c"][0]
    # the snippet on the landing page: the contact parameter, the page's address without it
    visit(client, "198.51.100.9", visitor="v-7", path="/pricing", contact=token)
    visit(client, "198.51.100.9", visitor="v-7", path="/docs")  # a later page, the same browser

    visits = stored(type="web_visit", visitor_id="v-7")
    paths = [urlsplit(v.url).path for v in visits]
    assert paths == (["/features"] if before else []) + ["/pricing", "/docs"]
    assert [(v.contact_id, v.account_id) for v in visits] == [(jane.id, acme.id)] * len(visits)
    assert all("ip" not in (v.properties or {}) for v in visits)  # a known visitor's address is not kept

    timeline = api("manager").get(f"/api/v1/accounts/{acme.id}/timeline").json["items"]
    on_timeline = {(i["type"], urlsplit(i["url"] or "").path, i["contact_id"]) for i in timeline if i["kind"] == "event"}
    assert {("web_visit", p, jane.id) for p in paths} <= on_timeline
    assert ("email_click", "/pricing", jane.id) in on_timeline
    db.session.expire_all()
    assert db.session.get(Account, acme.id).score > score_before
