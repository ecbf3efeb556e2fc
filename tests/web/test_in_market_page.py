"""The account page's "In market" card, as a seller reads it: fit and why, the intent
topics researched, and the visits identified from the account's network."""

from __future__ import annotations

import io
import re

from sqlalchemy import insert

from abm.db import db, utcnow
from abm.models import Account
from abm.services import connectors as connector_service
from abm.services import events, fit, intent, networks
from abm.services import settings as settings_service
from tests.engagement.conftest import add_site
from tests.engagement.test_identification import SITE, beacon
from tests.fit.test_fit import generate


def test_a_seller_sees_why_an_account_is_in_market(pages, as_role):
    acme = Account(name="Acme", domain="acme.com", stage="target", tier=1, employees=900)
    db.session.add(acme)
    db.session.commit()
    networks.add_networks(acme.id, ["203.0.113.0/24"])
    add_site([SITE])
    seller = as_role("ae")
    for i, path in enumerate(["/pricing", "/pricing?plan=pro", "/docs"]):
        assert beacon(seller, {"type": "web_visit", "url": SITE + path, "visitor_id": f"v{i}"},
                      f"203.0.113.{i + 1}").status_code == 204
    events.drain()
    intent.import_surge(io.BytesIO(f"Domain,Topic,Composite Score,Week\nacme.com,Zero Trust,78,"
                                   f"{utcnow().date().isoformat()}\n".encode()))
    fit.refresh()
    db.session.expire_all()  # the test shares one session with the app; a request starts afresh

    page = seller.get(f"/accounts/{acme.id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "3 visits from the account&#39;s network, 2 pages on pricing" in text
    assert "Zero Trust" in text and "score 78" in text
    assert "Fit 70" in text and "Tier 1" in text and "200 employees or more" in text
    # the score breakdown: the intent signal with its topic and strength, and the total by topic
    breakdown = text[text.index('class="card score-breakdown"'):]
    assert ('intent: <span class="intent-topic">Zero Trust</span>, strength <span class="intent-strength">78</span>/100'
            in breakdown) and "(bombora)" in breakdown
    by_topic = breakdown[breakdown.index('class="breakdown-intent'):]
    by_topic = by_topic[:by_topic.index("</table>")]
    assert "Zero Trust" in by_topic and '<td class="num strength">78</td>' in by_topic


def test_the_fit_by_engagement_matrix_counts_and_opens_its_accounts(pages, as_role):
    rows = [("a", 85, "cold"), ("b", 72, "cold"), ("c", 70, "hot"), ("d", 55, "warm"), ("e", 12, "hot"),
            ("f", None, "cold")]
    db.session.execute(insert(Account), [{"name": n, "domain": f"{n}.example", "stage": "target", "fit_score": f,
                                          "engagement": lv} for n, f, lv in rows])
    db.session.commit()
    manager = as_role("manager")
    page = manager.get("/engagement?owner=all").get_data(as_text=True)
    table = page[page.index('id="fit-matrix-title"'):]

    def cell(band, level):
        found = re.search(rf'<tr data-fit="{band}">.*?data-level="{level}">\s*<a href="([^"]+)"[^>]*>([\d,]+)</a>',
                          table, re.S)
        return found.group(1).replace("&amp;", "&"), int(found.group(2))

    assert cell("high", "cold")[1] == 2 and cell("high", "hot")[1] == 1
    assert cell("medium", "warm")[1] == 1 and cell("low", "hot")[1] == 1 and cell("none", "cold")[1] == 1
    listed = manager.get(cell("high", "cold")[0]).get_data(as_text=True)
    assert "a.example" in listed and "b.example" in listed and "c.example" not in listed
    assert "d.example" not in listed
    assert 'data-label="Fit">85</td>' in listed  # the list shows each account's fit


def test_the_admin_reads_the_model_and_edits_fit_rules_with_located_errors(pages, as_role):
    generate(400)
    fit.refresh(retrain=True)
    admin = as_role("admin")
    page = admin.get("/admin/in-market").get_data(as_text=True)
    assert "Cross-validated AUC" in page and "Calibration bins" in page
    bad = admin.post("/admin/in-market", data={"fit": '{"rules": [{"when": {"industri": "x"}, "points": 5}], '
                                                      '"model": {"enabled": true, "min_outcomes": 40, "l2": 1.0}}'})
    assert bad.status_code == 422
    assert "fit.rules[0].when.industri" in bad.get_data(as_text=True)
    good = admin.post("/admin/in-market", data={"fit": '{"rules": [{"label": "Banks", "when": {"industry": "banking"}, '
                                                       '"points": 50}], "model": {"enabled": false, '
                                                       '"min_outcomes": 40, "l2": 1.0}}'})
    assert good.status_code == 302

    assert settings_service.current()["fit"]["rules"][0]["label"] == "Banks"
    manager = as_role("manager")
    assert manager.get("/admin/in-market").status_code == 200
    assert manager.post("/admin/in-market", data={"fit": "{}"}).status_code == 403


def test_an_intent_signal_reaches_the_owners_alerts_inbox_and_the_account_page(pages, as_role):
    """End to end: G2 posts a buyer-intent signal for Acme; the drain stores it; Acme's owner
    reads in the alerts inbox what Acme researches and how strongly, and finds it on the
    account page the alert links to."""
    seller = as_role("ae")
    acme = Account(name="Acme", domain="acme.com", stage="target", owner_id=seller.user.id)
    db.session.add(acme)
    db.session.commit()
    connector_service.create({"name": "g2", "type": "g2", "settings": {"secret": "g2-shared-secret-0123"}})
    signal = {"data": [{"id": "sig-78", "type": "buyer_intent", "attributes": {
        "company_domain": "acme.com", "category_name": "Zero Trust", "intent_score": 78,
        "tag": "comparisons.show", "time": utcnow().isoformat()}}]}
    resp = pages.test_client().post("/hooks/g2", json=signal,
                                    headers={"Authorization": "Bearer g2-shared-secret-0123"})
    assert resp.status_code == 200, resp.get_json()
    events.drain()
    db.session.expire_all()

    inbox = seller.get("/alerts").get_data(as_text=True)
    assert "Acme is researching Zero Trust (score 78, g2)" in inbox
    assert "researching Zero Trust, intent score 78" in inbox
    assert f'<a href="/accounts/{acme.id}">Acme</a>' in inbox
    page = seller.get(f"/accounts/{acme.id}").get_data(as_text=True)
    in_market = page[page.index("In market"):]
    assert "Zero Trust" in in_market and "score 78" in in_market
