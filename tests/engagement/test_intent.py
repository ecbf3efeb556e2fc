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


def test_a_file_without_the_needed_columns_is_refused_whole(app):
    with pytest.raises(intent.SurgeFileError, match="topic"):
        intent.import_surge(io.BytesIO(b"Domain,Score,Week\nacme.com,70,2026-11-23\n"))


def test_g2_buyer_intent_signals_arrive_signed_and_become_intent_events(app, client, world):
    connector_service.create({"name": "g2", "type": "g2", "settings": {"secret": "g2-shared-secret-0123"}})
    body = {"data": [
        {"id": "sig-1", "type": "buyer_intent", "attributes": {
            "company_domain": "acme.com", "company_name": "Acme", "category_name": "Zero Trust Networking",
            "activity_type": "pricing", "occurred_at": "2026-12-01T09:00:00Z"}},
        {"id": "sig-2", "type": "buyer_intent", "attributes": {
            "company_domain": "globex.com", "product_name": "OurProduct", "intent_score": 65}},
        {"id": "sig-3", "type": "buyer_intent", "attributes": {"company_name": "No domain"}},
    ]}
    refused = client.post("/hooks/g2", data=json.dumps(body), content_type="application/json")
    assert refused.status_code == 401
    wrong = client.post("/hooks/g2", data=json.dumps(body), content_type="application/json",
                        headers={"Authorization": "Bearer not-the-secret-000000"})
    assert wrong.status_code == 401
    ok = client.post("/hooks/g2", data=json.dumps(body), content_type="application/json",
                     headers={"Authorization": "Bearer g2-shared-secret-0123"})
    assert ok.status_code == 200 and ok.get_json()["received"] == 2
    also_ok = client.post("/hooks/g2?token=g2-shared-secret-0123", data=json.dumps(body),
                          content_type="application/json")
    assert also_ok.status_code == 200
    events.drain()
    stored = {e.account_id: e for e in intents()}
    assert len(intents()) == 2  # the second delivery repeated the same signal ids
    acme = stored[world["acme"].id].properties
    assert (acme["topic"], acme["score"], acme["provider"], acme["activity"]) == (
        "Zero Trust Networking", 90, "g2", "pricing")
    assert stored[world["globex"].id].properties["score"] == 65


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
