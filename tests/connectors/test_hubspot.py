"""HubSpot against a local fake CRM API: signatures, polling, tasks, scores."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from hubspot.crm.companies.models import BatchReadInputSimplePublicObjectId, PublicObjectSearchRequest

from connectors.base import PermanentError, RetryableError
from connectors.hubspot import HubSpotConnector
from tests.connectors.fakes.hubspot import FakeHubSpot
from tests.connectors.fakes.touches import assert_schema_shape, closed_port_url, task_touch
from tests.connectors.harness import serve
from tests.connectors.hubspot_spec import MODELS, SEARCH_REQUIRED, violations

TOKEN, SECRET = "hs-token", "client-secret-xyz"
STAGES = {"lead": "prospect", "opportunity": "opportunity", "customer": "customer", "closedwon": "customer"}
URL = "https://abm.example.com/hooks/hubspot?portal=1%3A2"


def make(server=None, **settings):
    base = {"access_token": TOKEN, "client_secret": SECRET, "stage_map": STAGES, "searches_per_second": 100,
            "base_url": server.base_url if server else "https://api.hubapi.com", "read_timeout": 2, **settings}
    return HubSpotConnector("hs", base)


def sign(body: bytes, ts: int, secret=SECRET, method="POST", uri="https://abm.example.com/hooks/hubspot?portal=1:2"):
    raw = method.encode() + uri.encode() + body + str(ts).encode()
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


@pytest.fixture
def fake():
    return FakeHubSpot(token=TOKEN)


def test_settings_schema():
    assert_schema_shape(HubSpotConnector, {"access_token": "t", "stage_map": {"lead": "prospect"}},
                        {"access_token", "client_secret"})


# -- webhooks ---------------------------------------------------------------------------
EVENTS = [
    {"eventId": 1, "subscriptionType": "company.propertyChange", "objectId": 11, "propertyName": "lifecyclestage",
     "propertyValue": "customer", "occurredAt": 1_700_000_000_000},
    {"eventId": 2, "subscriptionType": "deal.propertyChange", "objectId": 21, "propertyName": "dealstage",
     "propertyValue": "closedwon", "occurredAt": 1_700_000_001_000},
    {"eventId": 3, "subscriptionType": "company.propertyChange", "objectId": 11, "propertyName": "phone",
     "propertyValue": "555", "occurredAt": 1_700_000_002_000},
]


def test_valid_signature_is_accepted_and_events_parsed():
    body = json.dumps(EVENTS).encode()
    now = int(time.time() * 1000)
    headers = {"x-hubspot-signature-v3": sign(body, now), "X-HubSpot-Request-Timestamp": str(now)}
    connector = make()
    connector.verify_webhook("POST", URL, headers, body)
    events = connector.parse_webhook(headers, body)
    assert [e.type for e in events] == ["stage_changed", "opportunity"]
    company, deal = events
    assert company.crm_id == "11" and company.properties["crm_stage"] == "customer"
    assert company.properties["stage"] == "customer" and company.dedup_key == "hubspot:1"
    assert company.occurred_at.startswith("2023-11-14T22:13:20")
    assert deal.crm_id == "21" and deal.properties["stage"] == "customer"


@pytest.mark.parametrize("tamper", ["secret", "body", "uri", "method"])
def test_forged_signatures_are_refused(tamper):
    body = json.dumps(EVENTS).encode()
    now = int(time.time() * 1000)
    signature = sign(body, now, secret="not-the-secret" if tamper == "secret" else SECRET)
    sent_body = body.replace(b"customer", b"lead") if tamper == "body" else body
    url = URL.replace("portal=1", "portal=9") if tamper == "uri" else URL
    method = "PUT" if tamper == "method" else "POST"
    with pytest.raises(PermanentError, match="does not match"):
        make().verify_webhook(method, url, {"X-HubSpot-Signature-v3": signature,
                                            "X-HubSpot-Request-Timestamp": str(now)}, sent_body)


def test_stale_missing_and_unconfigured_signatures_are_refused():
    body = b"[]"
    old = int(time.time() * 1000) - 6 * 60 * 1000
    with pytest.raises(PermanentError, match="stale"):
        make().verify_webhook("POST", URL, {"X-HubSpot-Signature-v3": sign(body, old),
                                            "X-HubSpot-Request-Timestamp": str(old)}, body)
    with pytest.raises(PermanentError, match="without"):
        make().verify_webhook("POST", URL, {}, body)
    now = int(time.time() * 1000)
    with pytest.raises(PermanentError, match="client_secret"):
        make(client_secret=None).verify_webhook("POST", URL, {"X-HubSpot-Signature-v3": sign(body, now),
                                                              "X-HubSpot-Request-Timestamp": str(now)}, body)


def test_malformed_webhook_bodies():
    with pytest.raises(PermanentError, match="array"):
        make().parse_webhook({}, b'{"a": 1}')
    with pytest.raises(PermanentError, match="#0"):
        make().parse_webhook({}, b'[{"eventId": 1}]')


# -- polling ----------------------------------------------------------------------------
def test_poll_returns_stages_and_opportunities(fake):
    fake.put("companies", "11", name="Acme", domain="https://www.Acme.com/", lifecyclestage="opportunity")
    fake.put("companies", "12", name="No stage", domain="nostage.io")
    fake.put("deals", "21", dealname="Acme renewal", amount="12500.5", dealstage="closedwon", deal_currency_code="EUR",
             closedate="2026-12-31T00:00:00Z", pipeline="default", hs_is_closed="true", hs_is_closed_won="true")
    fake.deal_company["21"] = "11"
    with serve(fake.app) as server:
        events, cursor = make(server).poll(None)
    assert cursor["more"] is False
    by_type = {e.type: e for e in events}
    assert len(events) == 2
    stage = by_type["stage_changed"]
    assert (stage.crm_id, stage.account_domain, stage.properties["stage"]) == ("11", "acme.com", "opportunity")
    opp = by_type["opportunity"]
    assert opp.crm_id == "21" and opp.account_domain == "acme.com"
    assert opp.properties["amount"] == 12500.5 and opp.properties["stage"] == "customer"
    assert opp.properties["is_won"] is True and opp.properties["account_crm_id"] == "11"
    assert opp.properties["currency"] == "EUR" and opp.properties["close_date"] == "2026-12-31T00:00:00Z"


def _drain(connector, cursor, seen, max_pages=1):
    while True:
        events, cursor = connector.poll(cursor, max_pages=max_pages)
        seen.extend((e.crm_id, e.properties["crm_stage"]) for e in events)
        if not cursor["more"]:
            return cursor


def test_poll_resumes_from_its_cursor_without_loss_or_doubles(fake):
    # 30 companies, many sharing a timestamp (ties across page boundaries)
    for i in range(30):
        fake.put("companies", str(100 + i), at=1_700_000_000_000 + (i // 7) * 1000,
                 name=f"C{i}", domain=f"c{i}.com", lifecyclestage="lead")
    with serve(fake.app) as server:
        connector = make(server, page_size=4)
        seen: list = []
        events, cursor = connector.poll(None, max_pages=2)
        assert cursor["more"] is True and len(events) == 8
        seen.extend((e.crm_id, "lead") for e in events)
        # a record already read changes, one not yet read changes, a new one appears, mid-way
        fake.put("companies", "100", lifecyclestage="customer")
        fake.put("companies", "129", lifecyclestage="opportunity")
        fake.put("companies", "200", name="New", domain="new.com", lifecyclestage="lead")
        # the next poll fails half-way: the caller keeps the old cursor
        fake.fail("/companies/search", 503, {"status": "error", "message": "down"})
        with pytest.raises(RetryableError):
            connector.poll(cursor, max_pages=2)
        cursor = _drain(connector, cursor, seen)
        ids = [crm_id for crm_id, _ in seen]
        assert sorted(set(ids)) == sorted([str(100 + i) for i in range(30)] + ["200"])
        assert ids.count("100") == 2 and ("100", "customer") in seen
        assert ids.count("129") == 1 and ("129", "opportunity") in seen
        assert len(ids) == 32
        # nothing new: nothing returned
        again, _ = connector.poll(cursor)
        assert again == []


def test_poll_pages_through_a_long_run_of_equal_timestamps(fake):
    for i in range(11):
        fake.put("companies", str(300 + i), at=1_700_000_000_000, name=f"T{i}", lifecyclestage="lead")
    with serve(fake.app) as server:
        seen: list = []
        _drain(make(server, page_size=3), None, seen)
    assert sorted(crm_id for crm_id, _ in seen) == [str(300 + i) for i in range(11)]


def test_poll_paces_its_searches(fake):
    for i in range(3):
        fake.put("companies", str(i + 1), lifecyclestage="lead")
    with serve(fake.app) as server:
        started = time.monotonic()
        make(server, page_size=1, searches_per_second=10).poll(None)
        elapsed = time.monotonic() - started
    assert elapsed >= 0.3  # 3 company pages + 1 deal search at 10/s


@pytest.mark.parametrize("headers,body,wait", [
    ({"Retry-After": "3"}, {"status": "error", "errorType": "RATE_LIMIT", "message": "limit"}, 3),
    ({}, {"status": "error", "errorType": "RATE_LIMIT", "message": "limit", "policyName": "TEN_SECONDLY_ROLLING"}, 10),
    ({}, {"status": "error", "errorType": "RATE_LIMIT", "message": "limit"}, None),
])
def test_poll_rate_limits_are_retryable(fake, headers, body, wait):
    with serve(fake.app) as server:
        fake.fail("/search", 429, body, headers=headers)
        with pytest.raises(RetryableError) as caught:
            make(server).poll(None)
        assert caught.value.retry_after == wait


def test_poll_errors(fake):
    with serve(fake.app) as server:
        with pytest.raises(PermanentError, match="access token") as caught:
            make(server, access_token="leaked-token").poll(None)
        assert "leaked-token" not in str(caught.value)
        fake.fail("/search", 400, {"status": "error", "message": "bad filter", "category": "VALIDATION_ERROR"})
        with pytest.raises(PermanentError, match="bad filter"):
            make(server).poll(None)
        fake.slow("/search", 1.0)
        with pytest.raises(RetryableError, match="timed out"):
            make(server, read_timeout=0.2).poll(None)


# -- tasks and scores ---------------------------------------------------------------------
def test_tasks_are_created_for_the_right_owner(fake):
    fake.put("companies", "11", name="Acme", hubspot_owner_id="777")
    with serve(fake.app) as server:
        results = make(server).send([
            task_touch(1, "11", to="ae@vendor.com"),
            task_touch(2, "11", to="owner"),
            task_touch(3, "", title="no id"),
            task_touch(4, "99"),
            task_touch(5, "", to="owner", crm_ids={"hs": "11"}, owner="AE@vendor.com"),
        ])
    assert [r.ok for r in results] == [True, True, False, False, True]
    assert "crm_id" in results[2].error and "no company 99" in results[3].error
    owners = [t["properties"].get("hubspot_owner_id") for t in fake.tasks]
    assert owners == ["501", "777", "501"]
    assert fake.tasks[0]["properties"]["hs_task_subject"] == "Call them"
    assert fake.tasks[0]["properties"]["hs_timestamp"] == "2026-12-01T09:00:00Z"


def test_a_retryable_error_mid_batch_keeps_created_tasks(fake):
    fake.put("companies", "11", hubspot_owner_id="777")
    with serve(fake.app) as server:
        fake.fail("/crm/v3/objects/tasks", 503, "", method="POST")
        with pytest.raises(RetryableError):
            make(server).send([task_touch(1, "11")])
        assert fake.tasks == []
        results = make(server).send([task_touch(1, "11"), task_touch(2, "11"), task_touch(3, "11")])
        assert results[0].ok
        fake.fail("/crm/v3/objects/tasks", 503, "", method="POST", skip=1)
        results = make(server).send([task_touch(4, "11"), task_touch(5, "11"), task_touch(6, "11")])
    assert [r.ok for r in results] == [True, False, False]
    assert all(not r.permanent for r in results[1:])
    assert len(fake.tasks) == 4


@pytest.mark.parametrize("with_400", [False, True])
def test_write_scores_in_batches_of_100(fake, with_400):
    fake.batch_update_refuses_with_400 = with_400
    for i in range(150):
        fake.put("companies", str(i))
    updates = [{"crm_id": str(i), "score": i * 1.5, "level": "hot" if i > 100 else "warm"} for i in range(150)]
    updates.append({"crm_id": "gone", "score": 1, "level": "cold"})
    with serve(fake.app) as server:
        results = make(server, score_property="abm_score", level_property="abm_level").write_scores(updates)
        sizes = [len(json.loads(r.body)["inputs"]) for r in server.requests if r.path.endswith("batch/update")]
    assert [r.ok for r in results] == [True] * 150 + [False]
    assert results[-1].crm_id == "gone" and results[-1].error
    assert fake.objects["companies"]["120"]["abm_score"] == "180.0"
    assert fake.objects["companies"]["120"]["abm_level"] == "hot"
    assert sizes == ([100, 51, 50] if with_400 else [100, 51])


def test_write_scores_rejects_malformed_input():
    with pytest.raises(PermanentError, match="#1"):
        make().write_scores([{"crm_id": "1", "score": 2}, {"crm_id": "2", "score": "high"}])


def test_connection_test(fake):
    fake.put("companies", "1")
    with serve(fake.app) as server:
        assert "reachable" in make(server).test()
        with pytest.raises(PermanentError, match="access token"):
            make(server, access_token="bad").test()
    with pytest.raises(RetryableError, match="could not connect"):
        HubSpotConnector("hs", {"access_token": "t", "base_url": closed_port_url()}).test()


# -- the reference: HubSpot's published models, from its official SDK (hubspot-api-client) ------

def test_every_request_matches_hubspots_published_models(fake):
    """Search, association and batch reads, task creation and batch updates, each checked by the
    fake against the SDK model of that endpoint (tests/connectors/hubspot_spec.py)."""
    fake.put("companies", "11", name="Acme", domain="acme.com", lifecyclestage="customer")
    fake.put("deals", "21", dealname="Renewal", dealstage="closedwon")
    fake.deal_company["21"] = "11"
    with serve(fake.app) as server:
        connector = make(server)
        events, _ = connector.poll(None)
        results = connector.send([task_touch(1, "11", to="ae@vendor.com")])
        upserted = make(server, task_id_property="abm_touch_key").send([task_touch(2, "11")])
        written = connector.write_scores([{"crm_id": "11", "score": 42, "level": "hot"}])
        noted = connector.write_timeline([{"crm_id": "11", "key": "k", "subject": "ABM week", "body": "x",
                                           "occurred_at": "2026-11-30T00:00:00Z"}])
    assert len(events) == 2 and results[0].ok and upserted[0].ok and written[0].ok and noted[0].ok
    refused = [r for r in server.requests if r.method == "POST" and r.path not in {c.split(" ", 1)[1]
                                                                                    for c in fake.checked}]
    assert not refused, [r.path for r in refused]
    covered = {pattern.pattern for method, pattern, _, _ in MODELS
               if any(pattern.match(c.split(" ", 1)[1]) for c in fake.checked)}
    assert covered == {pattern.pattern for _, pattern, _, _ in MODELS}


def test_the_shapes_hubspot_refuses_are_caught():
    old_search = {"filterGroups": [], "properties": ["name"], "limit": 100,
                  "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
    problems = violations(old_search, PublicObjectSearchRequest, SEARCH_REQUIRED)
    assert any("sorts[0]: expected str" in p for p in problems) and any("after" in p for p in problems)
    old_read = {"properties": ["domain"], "inputs": [{"id": "11"}]}
    assert any("properties_with_history" in p for p in violations(old_read, BatchReadInputSimplePublicObjectId))


def test_timeline_entries_become_notes_on_the_company(fake):
    fake.put("companies", "11", name="Acme")
    entries = [{"crm_id": "11", "key": "abm:11:2026-W48", "subject": "ABM week 48: 3 touches, 5 events",
                "body": "Marketing: 2 emails <Tier 1>\nAccount: 4 email clicks", "occurred_at": "2026-11-30T00:00:00Z"},
               {"crm_id": "99", "key": "abm:99:2026-W48", "subject": "ABM week 48", "body": "x",
                "occurred_at": "2026-11-30T00:00:00Z"}]
    with serve(fake.app) as server:
        results = make(server).write_timeline(entries)
    assert [r.ok for r in results] == [True, False] and "99 does not exist" in results[1].error
    [note] = fake.notes
    assert note["objectWriteTraceId"] == "abm:11:2026-W48"
    body = note["properties"]["hs_note_body"]
    assert body.startswith("<strong>ABM week 48: 3 touches, 5 events</strong>") and "&lt;Tier 1&gt;" in body
    assert "POST /crm/v3/objects/notes/batch/create" in fake.checked  # matched the SDK's model


def test_with_a_unique_task_property_a_repeated_call_updates_the_same_task(fake):
    fake.put("companies", "11", name="Acme", hubspot_owner_id="777")
    with serve(fake.app) as server:
        connector = make(server, task_id_property="abm_touch_key")
        first = connector.send([task_touch(1, "11"), task_touch(2, "11")])
        again = connector.send([task_touch(1, "11")])  # the call a crash repeats
        refused = make(server, task_id_property="no_such_property").send([task_touch(3, "11")])
    assert [r.ok for r in first] == [True, True] and again[0].ok
    assert again[0].provider_id == first[0].provider_id
    assert [t["properties"]["abm_touch_key"] for t in fake.tasks] == ["e1:s2:", "e2:s2:"]
    assert fake.task_companies == {(first[0].provider_id, "11"), (first[1].provider_id, "11")}
    assert not refused[0].ok and "no_such_property" in refused[0].error
    assert "POST /crm/v3/objects/tasks/batch/upsert" in fake.checked  # the SDK's model of the request
