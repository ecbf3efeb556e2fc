"""Company look-ups by IP (IPinfo's ``GET /{ip}`` and its ``company`` object) for visits
that no network matched: a real local server speaking IPinfo's documented answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask, jsonify, request
from sqlalchemy import select

from abm.db import db, utcnow
from abm.errors import ValidationError
from abm.models import Event, IpLookup
from abm.services import connectors as connector_service
from abm.services import identification
from abm.services import settings as settings_service
from tests.connectors.harness import serve
from tests.engagement.conftest import add_site
from tests.engagement.test_identification import SITE, visit
from workers import engagement_jobs, identify_jobs, scheduler

TOKEN = "ipinfo-test-token-0123"
COMPANIES = {"198.51.100.9": {"name": "Acme Inc", "domain": "acme.com", "type": "business"}}


def fake_ipinfo() -> Flask:
    app = Flask("fake-ipinfo")

    @app.get("/<ip>")
    def lookup(ip):
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return jsonify(error={"title": "Unknown token", "message": "Please ensure you've entered your token correctly."}), 403
        answer = {"ip": ip, "hostname": "host.example", "city": "Paris", "country": "FR", "org": "AS64500 Example"}
        if ip in COMPANIES:
            answer["company"] = COMPANIES[ip]
        return jsonify(answer)

    return app


def test_an_unmatched_visit_is_matched_by_the_providers_company_domain_once(app, client, world):
    add_site([SITE])
    for ip in ("198.51.100.9", "192.0.2.77"):
        visit(client, ip, visitor=f"v-{ip}")
    with serve(fake_ipinfo()) as server:
        connector_service.create({"name": "ipinfo", "type": "ipinfo",
                                  "settings": {"token": TOKEN, "base_url": server.base_url}})
        first = identify_jobs.look_up_addresses()
        second = identify_jobs.look_up_addresses()
    assert first == {"looked_up": 2, "matched_accounts": 1}
    assert second["looked_up"] == 0  # answers are cached per address
    assert sorted(r.path for r in server.requests) == ["/192.0.2.77", "/198.51.100.9"]
    db.session.expire_all()
    by_visitor = {e.visitor_id: e for e in db.session.execute(select(Event)).scalars()}
    matched = by_visitor["v-198.51.100.9"]
    assert matched.account_id == world["acme"].id and matched.contact_id is None
    assert matched.properties["ip_match"] == {"source": "lookup", "confidence": 0.6, "network": "198.51.100.0/24"}
    assert by_visitor["v-192.0.2.77"].account_id is None


def test_look_ups_keep_a_full_address_no_longer_than_the_retention_setting(app, world):
    """The hourly job replaces the address of a look-up older than ``lookup_ip_days`` (7 by
    default) by its truncated network; the company found, and so the account, is kept."""
    assert ("workers.engagement_jobs.purge_lookup_addresses", "default", 3600) in scheduler.ENGAGEMENT
    now = utcnow()
    acme = {"company_name": "Acme Inc", "company_domain": "acme.com", "company_type": "business"}
    db.session.add_all([
        IpLookup(ip="203.0.113.7", fetched_at=now - timedelta(days=40), **acme),
        IpLookup(ip="203.0.113.9", fetched_at=now - timedelta(days=31), **{**acme, "company_name": "Acme Corp"}),
        IpLookup(ip="2001:db8:0:1::5", fetched_at=now - timedelta(days=45), company_name="Globex",
                 company_domain="globex.com", company_type="business"),
        IpLookup(ip="198.51.100.9", fetched_at=now - timedelta(days=2), **acme),
    ])
    db.session.commit()

    assert engagement_jobs.purge_lookup_addresses() == 3
    db.session.expire_all()
    rows = {r.ip: r for r in db.session.execute(select(IpLookup)).scalars()}
    assert sorted(rows) == ["198.51.100.9", "2001:db8::/48", "203.0.113.0/24"]
    network = rows["203.0.113.0/24"]  # two look-ups of one /24: one row, the newest answer
    assert (network.company_name, network.company_domain) == ("Acme Corp", "acme.com")
    assert abs(network.fetched_at - (now - timedelta(days=31))) < timedelta(seconds=1)
    assert rows["2001:db8::/48"].company_domain == "globex.com"
    # the recent look-up still matches a visit from its address; a truncated row matches none
    assert identification._lookups({"198.51.100.9", "203.0.113.7"}, timedelta(days=30), now) == {
        "198.51.100.9": world["acme"].id}
    assert engagement_jobs.purge_lookup_addresses() == 0  # nothing more to drop, run after run

    ident = {**settings_service.current()["identification"], "lookup_ip_days": 1}
    settings_service.update({"identification": ident})
    db.session.commit()
    assert engagement_jobs.purge_lookup_addresses() == 1
    assert not [ip for ip in db.session.execute(select(IpLookup.ip)).scalars() if "/" not in ip]
    with pytest.raises(ValidationError):
        settings_service.update({"identification": {**ident, "lookup_ip_days": 0}})


def test_a_look_up_no_longer_used_keeps_no_full_address(app, world):
    """``lookup_cache_days`` shorter than ``lookup_ip_days``: the address goes when the
    look-up is no longer used."""
    ident = {**settings_service.current()["identification"], "lookup_cache_days": 5, "lookup_ip_days": 30}
    settings_service.update({"identification": ident})
    db.session.add(IpLookup(ip="203.0.113.7", fetched_at=utcnow() - timedelta(days=6), company_domain="acme.com"))
    db.session.commit()
    assert identification.purge_lookup_addresses() == 1
    assert db.session.execute(select(IpLookup.ip)).scalars().all() == ["203.0.113.0/24"]
