"""Intent from third parties: a Bombora Company Surge file and G2's buyer-intent webhook
become intent events of the right accounts, once, with their topic and strength."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Account, Alert, Event
from abm.scoring import decayed, score_at
from abm.services import alert_inbox, events, intent, scores
from abm.services import connectors as connector_service
from abm.services import settings as settings_service

SURGE = """Domain,Company Name,Topic Name,Composite Score,Week
acme.com,Acme,Zero Trust,78,2026-11-23
acme.com,Acme,SASE,55,2026-11-23
newco.example,NewCo,Zero Trust,91,2026-11-23
globex.com,Globex,Zero Trust,150,2026-11-23
,Nobody,Zero Trust,70,2026-11-23
"""


def intents() -> list[Event]:
    db.session.expire_all()
    return list(db.session.execute(select(Event).where(Event.type == "intent").order_by(Event.id)).scalars())


def test_a_surge_file_becomes_intent_events_once_with_bad_rows_located(app, world):
    result = intent.import_surge(io.BytesIO(SURGE.encode()))
    assert (result.rows, result.events, result.unmatched) == (5, 3, 1)
    assert [(e["row"], e["column"]) for e in result.errors] == [(5, "score"), (6, "domain")]
    stored = intents()
    acme = [(e.properties["topic"], e.properties["score"]) for e in stored if e.account_id == world["acme"].id]
    assert acme == [("Zero Trust", 78), ("SASE", 55)]
    assert {e.properties["provider"] for e in stored} == {"bombora"}
    again = intent.import_surge(io.BytesIO(SURGE.encode()))
    assert (again.events, again.duplicates) == (0, 3) and len(intents()) == 3


def test_the_command_line_imports_a_surge_file_with_the_same_rule(app, world, runner, tmp_path):
    path = tmp_path / "surge.csv"
    path.write_text(SURGE)
    result = runner.invoke(args=["intent", "import-surge", str(path), "--provider", "techtarget"])
    assert result.exit_code == 1  # rows were rejected
    assert "5 rows: 3 intent events stored, 0 already known, 1 kept for accounts that do not exist yet" in result.output
    assert "row 5, column score: '150' is not a score from 0 to 100" in result.output
    assert {e.properties["provider"] for e in intents()} == {"techtarget"}
    assert runner.invoke(args=["intent", "import-surge", str(tmp_path / "missing.csv")]).exit_code == 2


def test_a_file_without_the_needed_columns_is_refused_whole(app):
    with pytest.raises(intent.SurgeFileError, match="topic"):
        intent.import_surge(io.BytesIO(b"Domain,Score,Week\nacme.com,70,2026-11-23\n"))


G2_SECRET = {"Authorization": "Bearer g2-shared-secret-0123"}


def _g2(client, body, headers=G2_SECRET, query=""):
    return client.post(f"/hooks/g2{query}", data=body if isinstance(body, bytes) else json.dumps(body),
                       content_type="application/json", headers=headers)


def test_g2_buyer_intent_signals_arrive_signed_and_become_intent_events(app, client, world):
    connector_service.create({"name": "g2", "type": "g2", "settings": {"secret": "g2-shared-secret-0123"}})
    body = {"data": [
        {"id": "sig-1", "type": "buyer_intent", "attributes": {
            "company_domain": "acme.com", "company_name": "Acme", "category_name": "Zero Trust Networking",
            "activity_type": "pricing", "occurred_at": "2026-12-01T09:00:00Z"}},
        {"id": "sig-2", "type": "buyer_intent", "attributes": {
            "company_domain": "globex.com", "product_name": "OurProduct", "intent_score": 65}},
    ]}
    assert _g2(client, body, headers={}).status_code == 401
    assert _g2(client, body, headers={"Authorization": "Bearer not-the-secret-000000"}).status_code == 401
    assert _g2(client, body, headers={}, query="?token=not-the-secret-000000").status_code == 401
    ok = _g2(client, body)
    assert ok.status_code == 200 and ok.get_json()["received"] == 2
    assert _g2(client, body, headers={}, query="?token=g2-shared-secret-0123").status_code == 200
    events.drain()
    stored = {e.account_id: e for e in intents()}
    assert len(intents()) == 2  # the second delivery repeated the same signal ids
    acme = stored[world["acme"].id].properties
    assert (acme["topic"], acme["score"], acme["provider"], acme["activity"]) == (
        "Zero Trust Networking", 90, "g2", "pricing")
    assert stored[world["globex"].id].properties["score"] == 65


def test_g2_event_stream_records_with_their_included_company_become_intent_events(app, client, world):
    """The records of G2's documented buyer-intent event stream (remote-event-streams: tag, time,
    title, url; the company as a relationship) forwarded as a JSON:API document with the companies
    included: the company's domain names the account, the tag gives the strength."""
    connector_service.create({"name": "g2", "type": "g2", "settings": {"secret": "g2-shared-secret-0123"}})
    body = {"data": [
        {"id": "ev-1", "type": "remote_event_streams",
         "attributes": {"tag": "comparisons.show", "time": "2026-12-02T10:00:00Z", "title": "Okta vs Zscaler",
                        "url": "https://www.g2.com/compare/okta-vs-zscaler", "organization": "Acme Inc"},
         "relationships": {"company": {"data": {"type": "companies", "id": "c-1"}}}},
        {"id": "ev-2", "type": "remote_event_streams",
         "attributes": {"tag": "products.competitors", "time": "2026-12-02T11:00:00Z"},
         "relationships": {"company": {"data": {"type": "companies", "id": "c-2"}}}},
    ], "included": [{"id": "c-1", "type": "companies", "attributes": {"name": "Acme", "domain": "acme.com"}},
                    {"id": "c-2", "type": "companies", "attributes": {"name": "Globex", "domain": "globex.com"}}]}
    assert _g2(client, body).get_json() == {"received": 2}
    events.drain()
    stored = {e.account_id: e for e in intents()}
    acme = stored[world["acme"].id]
    assert (acme.properties["activity"], acme.properties["score"], acme.properties["company"]) == (
        "comparisons.show", 80, "Acme Inc")
    assert acme.properties["url"] == "https://www.g2.com/compare/okta-vs-zscaler"
    assert acme.occurred_at.replace(tzinfo=UTC) == datetime(2026, 12, 2, 10, tzinfo=UTC)
    assert stored[world["globex"].id].properties["score"] == 75  # alternatives (competitors) pages


def test_a_malformed_g2_delivery_is_refused_whole_with_each_fault_located(app, client, world):
    connector_service.create({"name": "g2", "type": "g2", "settings": {"secret": "g2-shared-secret-0123"}})
    body = {"data": [
        {"id": "ok", "attributes": {"company_domain": "acme.com", "tag": "products.pricing"}},
        {"id": "no-domain", "attributes": {"company_name": "Nobody"}},
        {"id": "bad", "attributes": {"company_domain": "globex.com", "intent_score": 140, "time": "yesterday"}},
        "not a record",
    ]}
    resp = _g2(client, body)
    assert resp.status_code == 400
    details = resp.get_json()["error"]["details"]
    assert [d["path"] for d in details] == ["data[1].attributes.company_domain", "data[2].attributes.intent_score",
                                            "data[2].attributes.time", "data[3]"]
    assert "not a score from 0 to 100" in details[1]["message"]
    flat = _g2(client, {"company_domain": "not a domain"})
    assert flat.status_code == 400 and flat.get_json()["error"]["details"][0]["path"] == "company_domain"
    for junk, path in ((b"{not json", "(body)"), (b"42", "(body)"), (json.dumps({"data": "x"}).encode(), "data")):
        resp = _g2(client, junk)
        assert resp.status_code == 400 and resp.get_json()["error"]["details"][0]["path"] == path, junk
    events.drain()
    assert intents() == []  # nothing of a refused delivery was taken


def test_intent_counts_by_its_strength_and_its_topics_weight(app, world):
    settings_service.update({"intent": {"topics": {"zero trust": 1.5}, "default_topic_weight": 1.0}})
    intent.import_surge(io.BytesIO(SURGE.encode()))
    db.session.expire_all()
    acme = db.session.get(Account, world["acme"].id)
    week = datetime(2026, 11, 23, tzinfo=UTC)
    at = datetime(2026, 12, 10, tzinfo=UTC)
    weight = settings_service.current()["weights"]["intent"]
    expected = decayed(weight * 0.78 * 1.5 + weight * 0.55 * 1.0, week, at, settings_service.current()["half_life_days"])
    assert abs(score_at(acme.score_ref, at, settings_service.current()["half_life_days"]) - expected) < 1e-6


def test_a_strong_signal_raises_one_alert_per_topic_that_says_what_is_researched(app, world):
    intent.import_surge(io.BytesIO(SURGE.encode()))
    intent.import_surge(io.BytesIO(SURGE.replace("2026-11-23", "2026-11-30").encode()))  # a week later: same reasons
    alerts = list(db.session.execute(select(Alert).where(Alert.kind == "intent")).scalars())
    assert [(a.account_id, a.reason) for a in alerts] == [(world["acme"].id, "intent:zero trust")]  # SASE is 55
    alert = alerts[0]
    assert alert.message == "Acme is researching Zero Trust (score 78, bombora)"
    assert "researching Zero Trust, intent score 78" in alert_inbox.why(alert)
    assert "open with Zero Trust" in alert.suggestion


def test_the_score_breakdown_shows_each_intent_signals_topic_and_strength(app, world, api):
    """Intent in the account's score breakdown: each event with its topic, strength and
    provider, and a total per topic with its strongest signal, over the API too."""
    intent.import_surge(io.BytesIO(SURGE.encode()))
    acme = world["acme"].id
    data = scores.breakdown(acme)
    signals = [e["intent"] for e in data["events"] if e["type"] == "intent"]
    assert sorted((s["topic"], s["strength"], s["provider"]) for s in signals) == [
        ("SASE", 55.0, "bombora"), ("Zero Trust", 78.0, "bombora")]
    assert all(e["intent"] is None for e in data["events"] if e["type"] != "intent")
    topics = {t["topic"]: t for t in data["by_topic"]}
    assert set(topics) == {"Zero Trust", "SASE"}
    assert (topics["Zero Trust"]["strength"], topics["Zero Trust"]["events"]) == (78.0, 1)
    assert topics["Zero Trust"]["last"].startswith("2026-11-23")
    intent_points = next(t["points"] for t in data["by_type"] if t["type"] == "intent")
    assert abs(sum(t["points"] for t in topics.values()) - intent_points) < 0.2  # the topics share the intent points
    answer = api("ae").get(f"/api/v1/accounts/{acme}/engagement")
    assert answer.status_code == 200, answer.json
    assert {t["topic"]: t["strength"] for t in answer.json["by_topic"]} == {"Zero Trust": 78.0, "SASE": 55.0}
