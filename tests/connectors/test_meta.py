"""Meta Custom Audiences against a local fake Graph API."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from facebook_business.adobjects.customaudience import CustomAudience
from facebook_business.api import FacebookAdsApi
from facebook_business.session import FacebookSession

from connectors.base import ConnectorContext, PermanentError, RetryableError, hash_identifier
from connectors.meta import MetaConnector
from tests.connectors.fakes.meta import FakeMeta
from tests.connectors.fakes.touches import assert_schema_shape, audience_touch, closed_port_url
from tests.connectors.harness import serve

TOKEN = "meta-token"


def make(server, state=None, **settings):
    base = {"access_token": TOKEN, "ad_account_id": "777", "base_url": server.base_url,
            "read_timeout": 2, **settings}
    return MetaConnector("meta", base, ConnectorContext(state=state if state is not None else {}))


def people(n, start=0):
    return [{"email": f"Person{i}@Example.com "} for i in range(start, start + n)]


@pytest.fixture
def fake():
    return FakeMeta(token=TOKEN)


def test_settings_schema():
    assert_schema_shape(MetaConnector, {"access_token": "x", "ad_account_id": "act_1"}, {"access_token"})


def test_audience_created_and_filled_with_hashes_only(fake):
    with serve(fake.app) as server:
        connector = make(server)
        erased = {"email": "gone@example.com", "erased_at": "2026-01-01T00:00:00+00:00"}
        results = connector.send([audience_touch(1, contacts=people(2) + [erased]),
                                  audience_touch(2, contacts=people(1, 5))])
        assert all(r.ok for r in results)
        audience = connector.context.state["meta"]["audiences"]["Target accounts"]
        assert fake.members[audience] == {hash_identifier(f"person{i}@example.com") for i in (0, 1, 5)}
        uploads = [r for r in server.requests if r.path.endswith("/users")]
        assert len(uploads) == 1 and b"example.com" not in uploads[0].body.lower()
        report = connector.last_report[0]
        assert report["num_received"] == 3 and report["num_invalid_entries"] == 0
        make(server, state=connector.context.state).send([audience_touch(3, action="remove",
                                                                         contacts=people(1))])
        assert hash_identifier("person0@example.com") not in fake.members[audience]
        assert len([r for r in server.requests if r.path.endswith("/customaudiences")
                    and r.method == "POST"]) == 1


def test_existing_audience_found_across_pages(fake):
    for name in ("a", "b", "c", "Target accounts"):
        fake.audiences[name + "-id"] = {"id": name + "-id", "name": name}
        fake.members[name + "-id"] = set()
    with serve(fake.app) as server:
        connector = make(server)
        assert connector.send([audience_touch(1, contacts=people(1))])[0].ok
        assert connector.context.state["meta"]["audiences"]["Target accounts"] == "Target accounts-id"
        assert len(fake.audiences) == 4


def test_sessions_split_at_10000_with_sequence_and_last_flag(fake):
    with serve(fake.app) as server:
        batch = [audience_touch(i, contacts=people(1, i)) for i in range(10_003)]
        results = make(server).send(batch)
        assert all(r.ok for r in results)
        assert fake.batch_sizes == [10_000, 3]
        sessions = [json.loads(dict(_form(r))["session"]) for r in server.requests if r.path.endswith("/users")]
        assert [s["batch_seq"] for s in sessions] == [1, 2]
        assert [s["last_batch_flag"] for s in sessions] == [False, True]
        assert sessions[0]["session_id"] == sessions[1]["session_id"]
        assert sessions[0]["estimated_num_total"] == 10_003


def _form(recorded):
    return parse_qsl(recorded.body.decode())


def test_invalid_entries_reported_and_mapped_to_touches(fake, caplog):
    fake.invalid_hashes.add(hash_identifier("person1@example.com"))
    caplog.set_level("INFO", logger="connectors.meta")
    with serve(fake.app) as server:
        connector = make(server)
        results = connector.send([audience_touch(1, contacts=people(1)), audience_touch(2, contacts=people(1, 1)),
                                  audience_touch(3)])
        assert [r.ok for r in results] == [True, False, False]
        assert "invalid" in results[1].error
        assert "usable email" in results[2].error
        assert connector.last_report[0]["num_invalid_entries"] == 1
    ours = " ".join(r.getMessage() for r in caplog.records if r.name == "connectors.meta")
    assert "1 invalid" in ours and TOKEN not in ours and "@" not in ours


@pytest.mark.parametrize("code", [4, 17, 613])
def test_throttling_codes_are_retryable(fake, code):
    with serve(fake.app) as server:
        fake.fail("/users", 400, {"error": {"message": "User request limit reached", "code": code}})
        with pytest.raises(RetryableError) as caught:
            make(server).send([audience_touch(1, contacts=people(1))])
        assert caught.value.retry_after is None


def test_throttling_honours_the_usage_header(fake):
    usage = json.dumps({"123": [{"type": "ads_management", "call_count": 100,
                                 "estimated_time_to_regain_access": 3}]})
    with serve(fake.app) as server:
        fake.fail("/users", 400, {"error": {"message": "limit", "code": 17}},
                  headers={"X-Business-Use-Case-Usage": usage})
        with pytest.raises(RetryableError) as caught:
            make(server).send([audience_touch(1, contacts=people(1))])
        assert caught.value.retry_after == 180


def test_429_with_retry_after_and_5xx(fake):
    with serve(fake.app) as server:
        fake.fail("/users", 429, {"error": {"message": "slow down", "code": 99}}, headers={"Retry-After": "4"})
        with pytest.raises(RetryableError) as caught:
            make(server).send([audience_touch(1, contacts=people(1))])
        assert caught.value.retry_after == 4
        fake.fail("/users", 502, "<html>bad gateway</html>")
        with pytest.raises(RetryableError):
            make(server).send([audience_touch(1, contacts=people(1))])


def test_400_is_permanent_and_401_names_the_token(fake):
    with serve(fake.app) as server:
        fake.fail("/users", 400, {"error": {"message": "Invalid parameter", "code": 100}})
        with pytest.raises(PermanentError, match="Invalid parameter"):
            make(server).send([audience_touch(1, contacts=people(1))])
        with pytest.raises(PermanentError, match="access token") as caught:
            make(server, access_token="expired-secret").send([audience_touch(1, contacts=people(1))])
        assert "expired-secret" not in str(caught.value)


def test_deleted_audience_is_forgotten_and_recreated(fake):
    with serve(fake.app) as server:
        state = {"meta": {"audiences": {"Target accounts": "999"}}}
        with pytest.raises(RetryableError, match="no longer exists"):
            make(server, state=state).send([audience_touch(1, contacts=people(1))])
        assert make(server, state=state).send([audience_touch(1, contacts=people(1))])[0].ok
        assert state["meta"]["audiences"]["Target accounts"] != "999"


def test_timeout_is_retryable(fake):
    with serve(fake.app) as server:
        fake.slow("/users", 1.0)
        with pytest.raises(RetryableError, match="timed out"):
            make(server, read_timeout=0.2).send([audience_touch(1, contacts=people(1))])


def test_connection_test(fake):
    with serve(fake.app) as server:
        assert "Fake Meta Ads" in make(server).test()
        with pytest.raises(PermanentError, match="access token"):
            make(server, access_token="bad").test()
        with pytest.raises(PermanentError, match="no ad account act_5"):
            make(server, ad_account_id="5").test()
    with pytest.raises(RetryableError, match="could not connect"):
        MetaConnector("m", {"access_token": "t", "ad_account_id": "1", "base_url": closed_port_url()}).test()


# -- the reference: Meta's own Business SDK (facebook-business) ------------------------------

TRICKY = ["Ada.Lovelace@Example.COM.", " bob@example.org\t", "carol@example.net..", "\x0bdan@example.com "]


def sdk_hashes(emails):
    """What facebook_business.CustomAudience would send for these raw emails."""
    return CustomAudience.format_params(CustomAudience.Schema.email_hash, emails)["payload"]["data"]


def test_emails_are_normalised_and_hashed_as_the_sdk_does(fake):
    with serve(fake.app) as server:
        connector = make(server)
        results = connector.send([audience_touch(1, contacts=[{"email": e} for e in TRICKY])])
        assert results[0].ok, results[0].error
        audience = connector.context.state["meta"]["audiences"]["Target accounts"]
    assert fake.members[audience] == set(sdk_hashes(TRICKY))


def test_removal_is_a_delete_with_the_payload_in_the_query_as_the_sdk_sends_it(fake):
    emails = ["person0@example.com", "person1@example.com"]
    with serve(fake.app) as server:
        connector = make(server)
        connector.send([audience_touch(1, contacts=[{"email": e} for e in emails])])
        audience = connector.context.state["meta"]["audiences"]["Target accounts"]
        connector.send([audience_touch(2, action="remove", contacts=[{"email": emails[0]}])])
        ours = server.requests[-1]

        session = FacebookSession(access_token=TOKEN)
        session.GRAPH = server.base_url
        api = FacebookAdsApi(session, api_version="v26.0")
        CustomAudience(audience, api=api).remove_users(
            CustomAudience.Schema.email_hash, [emails[1]],
            session={"session_id": 9, "batch_seq": 1, "last_batch_flag": True, "estimated_num_total": 1})
        sdk = server.requests[-1]  # recorded (the fake then refuses the SDK's own User-Agent)
    assert fake.members[audience] == set(sdk_hashes([emails[1]]))
    assert (ours.method, sdk.method) == ("DELETE", "DELETE")
    assert ours.body == b"" and sdk.body == b""
    assert set(ours.query) == {"payload", "session", "access_token"} <= set(sdk.query) | {"access_token"}
    assert json.loads(ours.query["payload"][0])["data"] == sdk_hashes([emails[0]])
    assert json.loads(ours.query["payload"][0])["schema"] == json.loads(sdk.query["payload"][0])["schema"]
