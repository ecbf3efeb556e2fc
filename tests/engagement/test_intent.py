"""Intent from third parties: a Bombora Company Surge file and G2's buyer-intent webhook
become intent events of the right accounts, once, with their topic and strength."""

from __future__ import annotations

import io
import json

from sqlalchemy import select

from abm.db import db
from abm.models import Event
from abm.services import connectors as connector_service
from abm.services import events, intent

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
    import pytest

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
