"""Score write-back to HubSpot and Salesforce: only what changed, failures retried."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from abm.db import db
from abm.models import Account
from abm.services import connectors
from tests.integration.conftest import hubspot_connector, salesforce_connector
from workers import crm_jobs

T = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def scored(domain: str, score: float, level: str, crm: dict | None, at: datetime = T) -> Account:
    account = Account(name=domain, domain=domain, stage="target", score=score, engagement=level,
                      score_updated_at=at, crm_ids=crm or {})
    db.session.add(account)
    db.session.commit()
    return account


def updates(server) -> list[dict]:
    return [item for r in server.requests if r.path.endswith("/batch/update")
            for item in json.loads(r.body)["inputs"]]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_hubspot_gets_changed_scores_only_in_batches_and_refusals_are_retried(app, hubspot):
    fake, server = hubspot
    hubspot_connector(server, score_property="abm_score")
    for company in ("c1", "c2", "c3"):
        fake.put("companies", company, name=company)
    a1 = scored("a1.example", 12.4, "cold", {"hs": "c1"})
    a2 = scored("a2.example", 55.6, "hot", {"hs": "c2"})
    scored("a3.example", 30, "warm", {"other": "x"})  # not in this CRM
    gone = scored("a4.example", 25, "warm", {"hs": "deleted"})

    result = crm_jobs.write_back_scores()["hs"]
    assert (result["written"], result["failed"]) == (2, 1)
    assert fake.objects["companies"]["c1"]["abm_score"] == "12"
    assert fake.objects["companies"]["c2"]["abm_engagement_level"] == "hot"
    assert sorted(i["id"] for i in updates(server)) == ["c1", "c2", "deleted"]

    # Decay moved score_updated_at, but the written value is the same: nothing is sent
    # except the refused account, tried again.
    for account in (a1, a2):
        db.session.get(Account, account.id).score_updated_at = T + timedelta(minutes=15)
    db.session.get(Account, a1.id).score = 12.2
    db.session.commit()
    before = len(updates(server))
    again = crm_jobs.write_back_scores()["hs"]
    assert (again["written"], again["failed"], again["unchanged"]) == (0, 1, 2)
    assert [i["id"] for i in updates(server)[before:]] == ["deleted"]

    # The company exists now; a1's level changed: both go, once.
    fake.put("companies", "deleted", name="back")
    row = db.session.get(Account, a1.id)
    row.score, row.engagement, row.score_updated_at = 22.0, "warm", T + timedelta(minutes=30)
    db.session.commit()
    before = len(updates(server))
    third = crm_jobs.write_back_scores()["hs"]
    assert (third["written"], third["failed"]) == (2, 0)
    assert sorted(i["id"] for i in updates(server)[before:]) == ["c1", "deleted"]
    assert fake.objects["companies"]["deleted"]["abm_score"] == "25" and gone.id
    assert crm_jobs.write_back_scores()["hs"]["written"] == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_salesforce_write_back_resumes_after_an_outage_and_needs_configuring(app, salesforce):
    fake, server = salesforce
    salesforce_connector(server)
    fake.put("Account", "001A", Name="Acme")
    scored("acme.example", 40, "warm", {"sf": "001A"})
    assert crm_jobs.write_back_scores() == {}  # no score field named: write-back is off
    connectors.update("sf", {"settings": {"score_field": "Engagement__c"}})

    fake.fail("/composite/sobjects", 503, [{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}])
    down = crm_jobs.write_back_scores()["sf"]
    assert down["written"] == 0 and "SERVER_UNAVAILABLE" in down["error"]
    back = crm_jobs.write_back_scores()["sf"]
    assert back["written"] == 1 and "error" not in back
    assert fake.records["Account"]["001A"]["Engagement__c"] == 40
    assert fake.records["Account"]["001A"]["ABM_Engagement_Level__c"] == "warm"
