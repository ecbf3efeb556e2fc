"""Salesforce against a local fake REST API: SOQL polling, tasks, score write-back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceError

from connectors.base import PermanentError, RetryableError
from connectors.salesforce import SalesforceConnector, soql_string
from tests.connectors.fakes.salesforce import FakeSalesforce
from tests.connectors.fakes.touches import closed_port_url, schema_errors, task_touch
from tests.connectors.harness import serve

TOKEN = "sf-token"
STAGES = {"Prospect": "prospect", "Customer - Direct": "customer", "Closed Won": "customer"}


def make(server, **settings):
    base = {"access_token": TOKEN, "base_url": server.base_url, "stage_map": STAGES, "read_timeout": 2,
            **settings}
    return SalesforceConnector("sf", base)


@pytest.fixture
def fake():
    return FakeSalesforce(token=TOKEN)


def test_settings_schema():
    Draft202012Validator.check_schema(SalesforceConnector.settings_schema)
    assert SalesforceConnector.secret_fields() == ["access_token"]
    assert schema_errors(SalesforceConnector, {"access_token": "t", "domain": "acme"}) == []
    assert schema_errors(SalesforceConnector, {"access_token": "t"}), "domain or base_url is required"
    assert schema_errors(SalesforceConnector, {"access_token": "t", "domain": "acme", "extra": 1})
    assert schema_errors(SalesforceConnector, {"access_token": "t", "domain": "acme", "stage_field": "Type; DROP"})
    connector = SalesforceConnector("sf", {"access_token": "t", "domain": "acme"})
    assert connector.root == "https://acme.my.salesforce.com"


def test_poll_accounts_and_opportunities(fake):
    fake.put("Account", "001A", Name="Acme", Website="https://www.acme.com", Type="Customer - Direct")
    fake.put("Account", "001B", Name="No type", Website="b.io")
    fake.put("Opportunity", "006A", Name="Acme expansion", Amount=50000.0, StageName="Closed Won",
             CloseDate="2026-03-31", CreatedDate="2025-11-02T08:00:00.000+0000", IsClosed=True, IsWon=True,
             AccountId="001A")
    with serve(fake.app) as server:
        events, cursor = make(server).poll(None)
        assert cursor["more"] is False
        query = server.requests[0].query["q"][0]
        assert query.startswith("SELECT Id, Name, Website, OwnerId, Type, LastModifiedDate, SystemModstamp FROM Account")
    stage, opp = events
    assert (stage.type, stage.crm_id, stage.account_domain) == ("stage_changed", "001A", "acme.com")
    assert stage.properties["stage"] == "customer" and stage.properties["crm_stage"] == "Customer - Direct"
    assert (opp.type, opp.crm_id, opp.account_domain) == ("opportunity", "006A", "acme.com")
    assert opp.properties["amount"] == 50000.0 and opp.properties["is_won"] is True
    assert opp.properties["account_crm_id"] == "001A" and opp.properties["stage"] == "customer"
    assert opp.occurred_at.startswith("2026-01-01T00:00:03")
    assert opp.properties["created_at"] == "2025-11-02T08:00:00+00:00"


def _drain(connector, cursor, seen, max_pages=1):
    while True:
        events, cursor = connector.poll(cursor, max_pages=max_pages)
        seen.extend((e.crm_id, e.properties["crm_stage"]) for e in events)
        if not cursor["more"]:
            return cursor


def test_poll_resumes_without_loss_or_doubles(fake):
    same_second = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    for i in range(450):
        fake.put("Account", f"001{i:04d}", at=same_second if i < 250 else None, Name=f"A{i}", Type="Prospect")
    with serve(fake.app) as server:
        connector = make(server, batch_size=200)
        seen: list = []
        events, cursor = connector.poll(None, max_pages=1)
        seen.extend((e.crm_id, "Prospect") for e in events)
        assert cursor["more"] is True and len(events) == 200 and cursor["accounts"]["token"]
        # an error half-way: the caller keeps the cursor it had
        fake.fail("/query/", 503, [{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}])
        with pytest.raises(RetryableError):
            connector.poll(cursor, max_pages=1)
        # a record already read changes, and the stored query locator expires
        fake.put("Account", "0010000", Type="Customer - Direct")
        fake.expire_locators()
        cursor = _drain(connector, cursor, seen)
        ids = [crm_id for crm_id, _ in seen]
        assert len(set(ids)) == 450
        assert ids.count("0010000") == 2 and ("0010000", "Customer - Direct") in seen
        assert len(ids) == 451
        assert connector.poll(cursor)[0] == []


def test_poll_errors_are_classified(fake):
    with serve(fake.app) as server:
        with pytest.raises(PermanentError, match="bad or expired token") as caught:
            make(server, access_token="old-session-id").poll(None)
        assert "old-session-id" not in str(caught.value)
        fake.fail("/query", 403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
        with pytest.raises(RetryableError, match="REQUEST_LIMIT_EXCEEDED"):
            make(server).poll(None)
        with pytest.raises(PermanentError, match="No such column 'Tier_X__c'"):
            make(server, stage_field="Tier_X__c").poll(None)
        fake.fail("/query", 429, [{"message": "slow", "errorCode": "X"}], headers={"Retry-After": "9"})
        with pytest.raises(RetryableError) as caught:
            make(server).poll(None)
        assert caught.value.retry_after == 9
        fake.fail("/query", 500, [{"message": "boom", "errorCode": "UNKNOWN_EXCEPTION"}])
        with pytest.raises(RetryableError):
            make(server).poll(None)
        fake.slow("/query", 1.0)
        with pytest.raises(RetryableError, match="timed out"):
            make(server, read_timeout=0.2).poll(None)


def test_tasks_for_the_right_owner(fake):
    fake.put("Account", "001A", Name="Acme", OwnerId="005OWNER")
    with serve(fake.app) as server:
        results = make(server).send([
            task_touch(1, "001A", to="ae@vendor.com", title="Call O'Brien"),
            task_touch(2, "001A", to="owner", due=None),
            task_touch(3, "001Z"),
            task_touch(4, ""),
            task_touch(5, "", to=None, crm_ids={"sf": "001A"}, owner="ae@vendor.com"),
        ])
    assert [r.ok for r in results] == [True, True, False, False, True]
    assert results[0].provider_id == "00T00001"
    assert "no Account 001Z" in results[2].error and "crm_id" in results[3].error
    assert [t["OwnerId"] for t in fake.tasks] == ["005AE", "005OWNER", "005AE"]
    assert fake.tasks[0]["ActivityDate"] == "2026-12-01" and "ActivityDate" not in fake.tasks[1]
    assert fake.tasks[0]["WhatId"] == "001A" and fake.tasks[0]["Subject"] == "Call O'Brien"


def test_a_retryable_error_mid_batch_keeps_created_tasks(fake):
    fake.put("Account", "001A", OwnerId="005OWNER")
    with serve(fake.app) as server:
        fake.fail("/sobjects/Task", 503, "", skip=1)
        results = make(server).send([task_touch(i, "001A") for i in range(1, 4)])
    assert [r.ok for r in results] == [True, False, False]
    assert [r.permanent for r in results[1:]] == [False, False]
    assert len(fake.tasks) == 1


def test_write_scores_patches_accounts(fake):
    for i in range(250):
        fake.put("Account", f"001{i:04d}")
    updates = [{"crm_id": f"001{i:04d}", "score": i, "level": "warm"} for i in range(250)]
    updates.insert(3, {"crm_id": "001GONE", "score": 5, "level": "cold"})
    with serve(fake.app) as server:
        results = make(server, score_field="Score__c", level_field="Level__c").write_scores(updates)
        sizes = [len(json.loads(r.body)["records"]) for r in server.requests if r.method == "PATCH"]
    assert sizes == [200, 51]
    assert [r.ok for r in results].count(False) == 1 and not results[3].ok
    assert "ENTITY_IS_DELETED" in results[3].error
    assert fake.records["Account"]["0010249"]["Score__c"] == 249
    assert fake.records["Account"]["0010249"]["Level__c"] == "warm"


def test_connection_test(fake):
    with serve(fake.app) as server:
        assert "14990 of 15000" in make(server).test()
        with pytest.raises(PermanentError, match="bad or expired token"):
            make(server, access_token="nope").test()
        with pytest.raises(PermanentError, match="api_version"):
            make(server, api_version="50.0").test()
    with pytest.raises(RetryableError, match="could not connect"):
        SalesforceConnector("sf", {"access_token": "t", "base_url": closed_port_url()}).test()


# -- changes within a minute, within the org's daily API limit ------------------------------------

def test_a_change_only_systemmodstamp_sees_is_polled(fake):
    """A stage set by a flow or an integration user moves SystemModstamp; the cursor follows it."""
    fake.put("Account", "001A", Name="Acme", Website="acme.com", Type="Prospect")
    with serve(fake.app) as server:
        connector = make(server)
        _, cursor = connector.poll(None)
        fake.put("Account", "001A", Type="Customer - Direct")
        fake.records["Account"]["001A"]["LastModifiedDate"] = "2025-12-31T00:00:00.000+0000"  # system change
        events, cursor = connector.poll(cursor)
    assert [(e.crm_id, e.properties["stage"]) for e in events] == [("001A", "customer")]
    assert cursor["accounts"]["since"] == fake.records["Account"]["001A"]["SystemModstamp"]


def test_polls_count_their_calls_and_back_off_when_the_org_nears_its_limit(fake, monkeypatch):
    fake.put("Account", "001A", Name="Acme", Website="acme.com", Type="Prospect")
    clock = [1_000_000.0]
    monkeypatch.setattr(SalesforceConnector, "now", staticmethod(lambda: clock[0]))
    with serve(fake.app) as server:
        connector = make(server, api_ceiling_percent=80, backoff_seconds=900)
        _, cursor = connector.poll(None)
        assert cursor["api"]["calls"] == 2 and cursor["api"]["used"] == 2 and cursor["api"]["max"] == 15_000
        assert cursor["api"]["backoff_until"] == 0

        fake.api_used = 12_500  # another integration used most of the org's day
        _, cursor = connector.poll(cursor)
        assert cursor["api"]["used"] >= 12_000 and cursor["api"]["backoff_until"] == clock[0] + 900
        calls = len(server.requests)
        fake.put("Account", "001A", Type="Customer - Direct")
        clock[0] += 60
        events, held = connector.poll(cursor)
        assert events == [] and len(server.requests) == calls, "no call while backing off"
        assert held["accounts"] == cursor["accounts"], "the watermark waits"

        fake.api_used = 1_000  # the rolling day moved on
        clock[0] += 900
        events, cursor = connector.poll(held)
        assert [e.properties["stage"] for e in events] == ["customer"] and cursor["api"]["backoff_until"] == 0
    assert cursor["api"]["calls"] == 6



def test_timeline_entries_become_completed_tasks_on_the_account(fake):
    fake.put("Account", "001A", Name="Acme")
    entries = [{"crm_id": "001A", "key": "k1", "subject": "ABM week 48: 3 touches, 5 events",
                "body": "Marketing: 2 emails\nAccount: 4 email clicks", "occurred_at": "2026-11-30T00:00:00+00:00"},
               {"crm_id": "001Z", "key": "k2", "subject": "ABM week 48", "body": "x",
                "occurred_at": "2026-11-30T00:00:00+00:00"}]
    with serve(fake.app) as server:
        results = make(server).write_timeline(entries)
    assert [r.ok for r in results] == [True, False] and "INVALID_CROSS_REFERENCE_KEY" in results[1].error
    [task] = fake.tasks
    assert (task["WhatId"], task["Status"], task["ActivityDate"]) == ("001A", "Completed", "2026-11-30")
    assert task["Description"].splitlines() == ["Marketing: 2 emails", "Account: 4 email clicks"]


# -- the reference: simple-salesforce, the Salesforce REST client on PyPI -----------------------

@pytest.mark.parametrize("value", ["o'brien@acme.com", "back\\slash@acme.com", 'quo"te@acme.com',
                                   "line\nbreak\t@acme.com"])
def test_soql_strings_are_quoted_as_simple_salesforce_quotes_them(value):
    assert soql_string(value) == format_soql("{}", value)


def test_our_calls_are_the_ones_simple_salesforce_makes(fake):
    """Task creation, a query and a collection update, made by us and by simple-salesforce
    against the same server: same method, path (its trailing slash aside), token and body."""
    fake.put("Account", "001A", Name="Acme", OwnerId="005OWNER")
    with serve(fake.app) as server:
        connector = make(server)
        assert connector.send([task_touch(1, "001A", to="ae@vendor.com")])[0].ok
        assert connector.write_scores([{"crm_id": "001A", "score": 42, "level": "hot"}])[0].ok
        ours = [r for r in server.requests]
        sdk = Salesforce(instance_url=server.base_url, session_id=TOKEN, version=fake.version)
        # simple-salesforce always speaks https; the test server is plain http on loopback.
        sdk.base_url = f"{server.base_url}/services/data/v{fake.version}/"
        task = sdk.Task
        task.base_url = f"{sdk.base_url}sobjects/Task/"
        calls = [lambda: sdk.query(ours[0].query["q"][0]), lambda: task.create(json.loads(ours[1].body)),
                 lambda: sdk.restful("composite/sobjects", method="PATCH", json=json.loads(ours[2].body))]
        for call in calls:
            try:
                call()
            except SalesforceError:
                pass  # recorded; the fake then refuses the SDK's own User-Agent (and trailing slash)
        theirs = server.requests[len(ours):]
    assert [(r.method, r.path.rstrip("/")) for r in ours] == [(r.method, r.path.rstrip("/")) for r in theirs]
    for us, them in zip(ours, theirs, strict=True):
        assert us.headers["Authorization"] == them.headers["Authorization"] == f"Bearer {TOKEN}"
        assert us.query == them.query
        if us.body:
            assert json.loads(us.body) == json.loads(them.body)


def test_with_an_external_id_field_a_repeated_call_updates_the_same_task(fake):
    fake.put("Account", "001A", Name="Acme", OwnerId="005OWNER")
    with serve(fake.app) as server:
        connector = make(server, task_external_id_field="ABM_Touch_Key__c")
        first = connector.send([task_touch(1, "001A"), task_touch(2, "001A")])
        again = connector.send([task_touch(1, "001A", title="Call them again")])  # the call a crash repeats
        refused = make(server, task_external_id_field="Nope__c").send([task_touch(3, "001A")])
    assert [r.ok for r in first] == [True, True] and again[0].ok
    assert again[0].provider_id == first[0].provider_id == "00T00001"
    assert [(t["ABM_Touch_Key__c"], t["Subject"]) for t in fake.tasks] == [
        ("e1:s2:", "Call them again"), ("e2:s2:", "Call them")]
    assert not refused[0].ok and "Nope__c" in refused[0].error
