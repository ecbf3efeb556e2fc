"""Google Ads Customer Match against a local fake Google Ads REST API."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from connectors.base import ConnectorContext, PermanentError, RetryableError, hash_identifier
from connectors.google_ads import GoogleAdsConnector
from tests.connectors.fakes.google_ads import FakeGoogleAds, parse_strictly
from tests.connectors.fakes.touches import assert_schema_shape, audience_touch, closed_port_url
from tests.connectors.harness import serve

TOKEN, DEV = "ga-token", "dev-token"


def make(server, state=None, **settings):
    base = {"access_token": TOKEN, "developer_token": DEV, "customer_id": "123-456-7890",
            "base_url": server.base_url, "read_timeout": 2, **settings}
    return GoogleAdsConnector("ga", base, ConnectorContext(state=state if state is not None else {}))


def people(n, start=0):
    return [{"email": f"User{i}@Example.org"} for i in range(start, start + n)]


@pytest.fixture
def fake():
    return FakeGoogleAds(token=TOKEN, developer_token=DEV)


def test_settings_schema():
    assert_schema_shape(GoogleAdsConnector, {"access_token": "a", "developer_token": "d",
                                             "customer_id": "1234567890"}, {"access_token", "developer_token"})


def test_job_created_filled_and_run(fake):
    with serve(fake.app) as server:
        connector = make(server)
        results = connector.send([audience_touch(1, contacts=people(2)), audience_touch(2, contacts=people(1, 2))])
        assert all(r.ok for r in results)
        resource = connector.context.state["google_ads"]["user_lists"]["Target accounts"]
        assert fake.members[resource] == {hash_identifier(f"user{i}@example.org") for i in range(3)}
        paths = [r.path.rsplit("/", 1)[-1] for r in server.requests]
        assert paths[-3:] == ["offlineUserDataJobs:create", "701:addOperations", "701:run"]
        sent = json.loads(next(r.body for r in server.requests if r.path.endswith(":addOperations")))
        assert sent["enablePartialFailure"] is True
        assert all(list(op["create"]["userIdentifiers"][0]) == ["hashedEmail"] for op in sent["operations"])
        assert "login-customer-id" not in {k.lower() for k in server.requests[-1].headers}
        # remove goes through a second job, the stored list is reused
        make(server, state=connector.context.state).send([audience_touch(3, action="remove", contacts=people(1))])
        assert hash_identifier("user0@example.org") not in fake.members[resource]
        assert len(fake.user_lists) == 1


def test_existing_list_found_and_manager_header_sent():
    fake = FakeGoogleAds(token=TOKEN, developer_token=DEV, manager_id="9998887777")
    fake.user_lists["customers/1234567890/userLists/42"] = {"name": "Target accounts"}
    fake.members["customers/1234567890/userLists/42"] = set()
    with serve(fake.app) as server:
        connector = make(server, login_customer_id="999-888-7777")
        assert connector.send([audience_touch(1, contacts=people(1))])[0].ok
        assert fake.members["customers/1234567890/userLists/42"] == {hash_identifier("user0@example.org")}
        assert all(r.headers.get("Login-Customer-Id") == "9998887777" for r in server.requests)
        with pytest.raises(PermanentError, match="no access to customer"):
            make(server).test()


def test_partial_failure_maps_to_touches(fake):
    fake.rejected_hashes.add(hash_identifier("user1@example.org"))
    with serve(fake.app) as server:
        results = make(server).send([audience_touch(1, contacts=people(1)), audience_touch(2, contacts=people(1, 1)),
                                     audience_touch(3, contacts=[{"email": "nope"}])])
        assert [r.ok for r in results] == [True, False, False]
        assert "malformed" in results[1].error
        assert "usable email" in results[2].error
        assert sum(len(m) for m in fake.members.values()) == 1


def test_operations_split_at_10000(fake):
    with serve(fake.app) as server:
        # read_timeout: the fake parses the 10,000 operations strictly with the protos first.
        results = make(server, read_timeout=30).send([audience_touch(i, contacts=people(1, i))
                                                      for i in range(10_001)])
        assert all(r.ok for r in results)
        assert fake.operation_counts == [10_000, 1]
        assert len(fake.jobs) == 1


def test_resource_exhausted_is_retryable_with_its_delay(fake):
    quota = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
                       "details": [{"@type": "type.googleapis.com/google.ads.googleads.v20.errors.GoogleAdsFailure",
                                    "errors": [{"errorCode": {"quotaError": "RESOURCE_EXHAUSTED"},
                                                "message": "Too many requests.",
                                                "details": {"quotaErrorDetails": {"retryDelay": "30s"}}}]}]}}
    with serve(fake.app) as server:
        fake.fail(":addOperations", 429, quota)
        with pytest.raises(RetryableError) as caught:
            make(server).send([audience_touch(1, contacts=people(1))])
        assert caught.value.retry_after == 30
        no_delay = {"error": {"code": 429, "message": "exhausted", "status": "RESOURCE_EXHAUSTED"}}
        fake.fail(":addOperations", 429, no_delay, headers={"Retry-After": "12"})
        with pytest.raises(RetryableError) as caught:
            make(server).send([audience_touch(1, contacts=people(1))])
        assert caught.value.retry_after == 12
        fake.fail(":addOperations", 429, no_delay)
        with pytest.raises(RetryableError) as caught:
            make(server).send([audience_touch(1, contacts=people(1))])
        assert caught.value.retry_after is None
        fake.fail(":create", 503, {"error": {"code": 503, "message": "down", "status": "UNAVAILABLE"}})
        with pytest.raises(RetryableError):
            make(server).send([audience_touch(1, contacts=people(1))])


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_429_and_5xx_without_a_google_status_are_retryable_after_retry_after(fake, status):
    """A proxy or Google's front end answers {"error": {"code": 502}}: no status, no details."""
    with serve(fake.app) as server:
        fake.fail(":create", status, {"error": {"code": status}}, headers={"Retry-After": "9"})
        with pytest.raises(RetryableError) as caught:
            make(server).send([audience_touch(1, contacts=people(1))])
    assert caught.value.retry_after == 9
    assert "None" not in str(caught.value)


def test_400_and_401_are_permanent_without_secrets(fake):
    with serve(fake.app) as server:
        fake.fail(":addOperations", 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                    "message": "Request contains an invalid argument."}})
        with pytest.raises(PermanentError, match="invalid argument"):
            make(server).send([audience_touch(1, contacts=people(1))])
        with pytest.raises(PermanentError, match="refused the credentials") as caught:
            make(server, developer_token="secret-dev").send([audience_touch(1, contacts=people(1))])
        assert "secret-dev" not in str(caught.value)


def test_timeout_is_retryable(fake):
    with serve(fake.app) as server:
        fake.slow("googleAds:search", 1.0)
        with pytest.raises(RetryableError, match="timed out"):
            make(server, read_timeout=0.2).send([audience_touch(1, contacts=people(1))])


def test_connection_test(fake):
    with serve(fake.app) as server:
        assert "Fake Advertiser" in make(server).test()
        with pytest.raises(PermanentError, match="access_token"):
            make(server, access_token="bad").test()
        with pytest.raises(PermanentError, match="customer_id"):
            make(server, customer_id="111-111-1111").test()
    connector = GoogleAdsConnector("ga", {"access_token": "a", "developer_token": "d", "customer_id": "1234567890",
                                          "base_url": closed_port_url()})
    with pytest.raises(RetryableError, match="could not connect"):
        connector.test()


# -- the reference: Google's own protos, from the official client (google-ads) -----------------

def test_every_body_parses_strictly_as_googles_request_message_with_consent(fake):
    """The fake parses each body with json_format (unknown fields refused) into the request
    message of the google-ads protos for the version in the URL (fakes/google_ads.py)."""
    with serve(fake.app) as server:
        assert all(r.ok for r in make(server, consent_ad_personalization="DENIED").send(
            [audience_touch(1, contacts=people(2))]))
    names = [type(m).__name__ for m in fake.parsed]
    assert names == ["SearchGoogleAdsRequest", "MutateUserListsRequest", "CreateOfflineUserDataJobRequest",
                     "AddOfflineUserDataJobOperationsRequest", "RunOfflineUserDataJobRequest"]
    consent = fake.parsed[2].job.customer_match_user_list_metadata.consent
    assert (consent.ad_user_data, consent.ad_personalization) == (2, 3)  # ConsentStatus GRANTED, DENIED
    assert fake.parsed[3].enable_partial_failure is True
    assert len(fake.parsed[3].operations[0].create.user_identifiers[0].hashed_email) == 64


def test_a_body_google_would_refuse_is_refused(fake):
    with pytest.raises(json_format.ParseError):
        parse_strictly("v26", "/v26/customers/1/offlineUserDataJobs:create",
                       b'{"job": {"type": "CUSTOMER_MATCH_USER_LIST", "consent": {"adUserData": "GRANTED"}}}')
