"""Company look-ups by IP (IPinfo's ``GET /{ip}`` and its ``company`` object) for visits
that no network matched: a real local server speaking IPinfo's documented answer."""

from __future__ import annotations

from flask import Flask, jsonify, request
from sqlalchemy import select

from abm.db import db
from abm.models import Event
from abm.services import connectors as connector_service
from tests.connectors.harness import serve
from tests.engagement.conftest import add_site
from tests.engagement.test_identification import SITE, visit
from workers import identify_jobs

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
