"""A CRM round trip: a poll links the account, a signed HubSpot webhook moves it to
``opportunity``, the drain applies it: the nurture playbook's enrollment exits on its
``exit_when``, the move is recorded with source ``crm:hs``, and the playbook triggered
``on: stage_changed`` starts and sends its alert."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Account, Enrollment, Opportunity, StageChange
from abm.services import connectors
from abm.services import playbooks as playbook_service
from connectors.hubspot import signature_v3
from tests.engine.conftest import make_account, sent_lines
from tests.integration.conftest import hubspot_connector
from workers import crm_jobs, dispatcher, engagement_jobs

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

SECRET = "hs-client-secret-0123"
NURTURE = """
version: 1
key: nurture
name: Nurture
audience:
  where: {tier: [1]}
exit_when:
  stage: [opportunity]
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi</p>"
  - wait: 7d
  - id: again
    email:
      to: {roles: [decision_maker]}
      subject: "Again"
      body: "<p>Again</p>"
"""
FOLLOW_UP = """
version: 1
key: opp-follow-up
name: Opportunity follow-up
trigger: {on: stage_changed, to: [opportunity]}
steps:
  - id: tell-ae
    alert:
      to: owner
      message: "{{ account.name }} is an opportunity in HubSpot"
"""


def signed_post(client, app, events: list[dict]):
    body = json.dumps(events).encode()
    stamp = str(int(time.time() * 1000))
    url = app.config["BASE_URL"] + "/hooks/hs"
    return client.post("/hooks/hs", data=body, headers={
        "X-HubSpot-Signature-v3": signature_v3(SECRET, "POST", url, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"})


def test_hubspot_webhook_moves_the_stage_ends_the_enrollment_and_starts_the_triggered_playbook(
        app, client, hubspot, clock, worker, make_user, tmp_path):
    fake, server = hubspot
    log_path = tmp_path / "sent.jsonl"
    connectors.create({"type": "log", "name": "log", "settings": {"path": str(log_path)},
                       "default": ["email", "alert"]})
    hubspot_connector(server, stage_map={"salesqualifiedlead": "mqa", "opportunity": "opportunity"})
    owner = make_user("ae", email="ae@vendor.com")
    acme = make_account("Acme", domain="acme.example", owner=owner)
    fake.put("companies", "101", name="Acme", domain="acme.example", lifecyclestage="salesqualifiedlead")
    fake.put("deals", "501", dealname="Acme pilot", amount="9000", dealstage="appointmentscheduled")
    fake.deal_company["501"] = "101"

    playbook_service.apply(NURTURE, "nurture.yaml")
    playbook_service.activate("nurture", now=clock())
    playbook_service.apply(FOLLOW_UP, "follow-up.yaml")
    playbook_service.activate("opp-follow-up", now=clock())
    dispatcher.dispatch(now=clock())
    worker()
    assert [line["payload"]["subject"] for line in sent_lines(log_path)] == ["Hello Acme"]

    # The poll links the account to company 101 and moves it to mqa: nothing exits yet.
    assert crm_jobs.poll_crms()["hs"]["stages"] == 1
    db.session.expire_all()
    assert db.session.get(Account, acme.id).crm_ids == {"hs": "101"}
    nurture = db.session.execute(select(Enrollment).where(Enrollment.account_id == acme.id)).scalar_one()
    assert nurture.state in ("active", "waiting")

    answer = signed_post(client, app, [
        {"eventId": 1, "subscriptionType": "company.propertyChange", "objectId": 101,
         "propertyName": "lifecyclestage", "propertyValue": "opportunity", "occurredAt": int(clock().timestamp() * 1000)},
        {"eventId": 2, "subscriptionType": "deal.propertyChange", "objectId": 501,
         "propertyName": "dealstage", "propertyValue": "closedwon", "occurredAt": int(clock().timestamp() * 1000)}])
    assert answer.status_code == 200 and answer.get_json() == {"received": 2}
    forged = {"X-HubSpot-Signature-v3": "AAAA", "X-HubSpot-Request-Timestamp": str(int(time.time() * 1000)),
              "Content-Type": "application/json"}
    assert client.post("/hooks/hs", data=b"[]", headers=forged).status_code == 401

    engagement_jobs.drain_events()
    db.session.expire_all()
    moves = db.session.execute(select(StageChange.from_stage, StageChange.to_stage, StageChange.source).where(
        StageChange.account_id == acme.id).order_by(StageChange.id)).all()
    assert moves == [("target", "mqa", "crm:hs"), ("mqa", "opportunity", "crm:hs")]
    enrollments = {row.playbook_id: row for row in db.session.execute(
        select(Enrollment).where(Enrollment.account_id == acme.id)).scalars()}
    nurture_row = playbook_service.get("nurture")
    follow_row = playbook_service.get("opp-follow-up")
    assert (enrollments[nurture_row.id].state, enrollments[nurture_row.id].exit_reason) == ("exited", "exit_condition")
    assert enrollments[follow_row.id].entry_source == "trigger:stage_changed"
    opp = db.session.execute(select(Opportunity)).scalar_one()
    assert (opp.crm_id, opp.stage, opp.name) == ("hs:501", "closedwon", "Acme pilot")

    dispatcher.dispatch(now=clock())
    worker()
    alerts = [line for line in sent_lines(log_path) if line["kind"] == "alert"]
    assert [(a["to"], a["payload"]["message"]) for a in alerts] == [
        ("ae@vendor.com", "Acme is an opportunity in HubSpot")]

    # The same webhook delivered again (HubSpot retries) changes nothing more.
    assert signed_post(client, app, [
        {"eventId": 1, "subscriptionType": "company.propertyChange", "objectId": 101,
         "propertyName": "lifecyclestage", "propertyValue": "opportunity",
         "occurredAt": int(clock().timestamp() * 1000)}]).status_code == 200
    engagement_jobs.drain_events()
    assert len(db.session.execute(select(StageChange.id).where(StageChange.account_id == acme.id)).all()) == 2
