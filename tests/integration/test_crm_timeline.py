"""Engagement digests on the CRM timeline: HubSpot notes and Salesforce completed Tasks,
written at the admin's cadence, each account's period once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from abm.db import db
from abm.models import Account, Enrollment, Event, Playbook, PlaybookVersion, Touch
from abm.services import connectors, crm_timeline
from tests.integration.conftest import hubspot_connector, salesforce_connector

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def activity(crm: dict) -> Account:
    """An account in the CRM with two emails sent and three clicks and a visit this week."""
    account = Account(name="Acme", domain="acme.example", stage="target", score=41.0, engagement="warm",
                      score_updated_at=NOW, crm_ids=crm)
    playbook = Playbook(key="tier1", name="Tier 1")
    db.session.add_all([account, playbook])
    db.session.flush()
    version = PlaybookVersion(playbook_id=playbook.id, version=1, source="", compiled={})
    db.session.add(version)
    db.session.flush()
    enrollment = Enrollment(playbook_id=playbook.id, version_id=version.id, account_id=account.id)
    db.session.add(enrollment)
    db.session.flush()
    for step in ("a", "b"):
        db.session.add(Touch(enrollment_id=enrollment.id, playbook_id=playbook.id, account_id=account.id,
                             step_id=step, kind="email", channel="email", status="sent",
                             sent_at=NOW - timedelta(days=2)))
    db.session.add(Touch(enrollment_id=enrollment.id, playbook_id=playbook.id, account_id=account.id,
                         step_id="c", kind="email", channel="email", status="failed", sent_at=None))
    for kind, days in (("email_click", 1), ("email_click", 1), ("email_click", 2), ("page_view", 3),
                       ("page_view", 30)):  # the last one is older than the week
        db.session.add(Event(type=kind, occurred_at=NOW - timedelta(days=days), account_id=account.id))
    quiet = Account(name="Quiet", domain="quiet.example", stage="target", crm_ids=crm and {k: "q" for k in crm})
    db.session.add(quiet)
    db.session.commit()
    return account


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_weekly_digest_is_a_note_on_the_hubspot_company_written_once(app, hubspot):
    fake, server = hubspot
    fake.put("companies", "101", name="Acme")
    hubspot_connector(server, timeline_cadence="weekly")
    activity({"hs": "101"})

    result = crm_timeline.write_all(now=NOW)["hs"]
    assert (result["periods"], result["written"], result["failed"]) == (1, 1, 0)
    [note] = fake.notes
    assert note["associations"][0]["to"]["id"] == "101"
    body = note["properties"]["hs_note_body"]
    assert "ABM weekly digest: 2 touches, 4 engagement events; score 41 (warm)" in body
    assert "2 email touches (playbook Tier 1)" in body and "3 email click" in body and "1 page view" in body
    assert "by activity:" in body

    # The same week is never written again; the next one once it has ended.
    assert crm_timeline.write_all(now=NOW + timedelta(days=3))["hs"]["periods"] == 0
    assert crm_timeline.write_all(now=NOW + timedelta(days=7))["hs"]["written"] == 0  # a quiet week
    assert len(fake.notes) == 1


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_daily_digest_is_a_completed_task_on_the_salesforce_account(app, salesforce):
    fake, server = salesforce
    fake.put("Account", "001A", Name="Acme")
    salesforce_connector(server, timeline_cadence="daily")
    activity({"sf": "001A"})
    crm_timeline.write_all(now=NOW - timedelta(days=3))  # the first run starts the days
    result = crm_timeline.write_all(now=NOW)["sf"]
    assert result["periods"] == 3 and result["written"] == 3  # three days, one Task each
    assert [t["Status"] for t in fake.tasks] == ["Completed"] * 3
    assert all(t["WhatId"] == "001A" for t in fake.tasks)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_off_by_default_and_a_crm_error_resumes_without_doubles(app, hubspot):
    fake, server = hubspot
    fake.put("companies", "101", name="Acme")
    hubspot_connector(server)
    activity({"hs": "101"})
    assert crm_timeline.write_all(now=NOW) == {}

    connectors.update("hs", {"settings": {"timeline_cadence": "weekly"}})
    fake.fail("/notes/batch/create", 503, {"message": "down"})
    failed = crm_timeline.write_all(now=NOW)["hs"]
    assert failed["periods"] == 0 and "error" in failed and fake.notes == []
    again = crm_timeline.write_all(now=NOW)["hs"]
    assert (again["periods"], again["written"]) == (1, 1) and len(fake.notes) == 1
