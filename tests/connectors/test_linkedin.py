"""LinkedIn Matched Audiences against a local fake that rejects malformed requests.

LinkedIn publishes no SDK or OpenAPI document for these endpoints, so the reference is its
documentation (learn.microsoft.com/linkedin/marketing/matched-audiences/create-and-manage-segments
and .../versioning), whose field names and headers the fake (fakes/linkedin.py) enforces:
``LinkedIn-Version: YYYYMM`` and ``X-Restli-Protocol-Version: 2.0.0`` on every call,
``X-RestLi-Method: BATCH_CREATE`` on streaming, user elements ``{action, userIds: [{idType:
SHA256_EMAIL, idValue}]}``, company elements ``companyName``/``companyWebsiteDomain``/...,
and a created segment's id in the ``x-linkedin-id`` header (Rest.li: ``x-restli-id``,
``Location``).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from connectors.base import ConnectorContext, PermanentError, RetryableError
from connectors.linkedin import LinkedInConnector
from tests.connectors.fakes.linkedin import FakeLinkedIn
from tests.connectors.fakes.touches import assert_schema_shape, audience_touch, closed_port_url
from tests.connectors.harness import serve

TOKEN = "li-token"


def make(server, state=None, **settings):
    base = {"access_token": TOKEN, "ad_account_id": "5150", "linkedin_version": "202607",
            "base_url": server.base_url + "/rest", "read_timeout": 2, **settings}
    return LinkedInConnector("li", base, ConnectorContext(state=state if state is not None else {}))


@pytest.fixture
def fake():
    return FakeLinkedIn(token=TOKEN)


def posts_to(server, suffix):
    return [r for r in server.requests if r.method == "POST" and r.path.endswith(suffix)]


def test_settings_schema():
    assert_schema_shape(LinkedInConnector, {"access_token": "x", "ad_account_id": "1"}, {"access_token"})


def test_company_list_created_once_and_filled(fake):
    with serve(fake.app) as server:
        connector = make(server)
        results = connector.send([audience_touch(1), audience_touch(2)])
        assert [r.ok for r in results] == [True, True]
        segment_id = connector.context.state["linkedin"]["segments"]["COMPANY:Target accounts"]["id"]
        assert fake.members[segment_id] == {"company1.com", "company2.com"}
        assert results[0].provider_id == segment_id
        # a second batch reuses the stored segment, and remove takes a company out
        again = make(server, state=connector.context.state).send([audience_touch(1, action="remove")])
        assert again[0].ok
        assert fake.members[segment_id] == {"company2.com"}
        assert len(posts_to(server, "/rest/dmpSegments")) == 1
        sent = json.loads(posts_to(server, "/companies")[0].body)
        assert sent["elements"][0] == {"action": "ADD", "companyName": "Company 1",
                                       "companyWebsiteDomain": "company1.com", "country": "US"}


def test_existing_segment_is_found_by_name_not_created_twice(fake):
    with serve(fake.app) as server:
        make(server).send([audience_touch(1)])
        fresh_state: dict = {}
        make(server, state=fresh_state).send([audience_touch(2)])
        assert len(posts_to(server, "/rest/dmpSegments")) == 1
        assert fresh_state["linkedin"]["segments"]["COMPANY:Target accounts"]["id"] == "9001"


def test_contact_list_sends_only_hashed_emails(fake):
    contacts = [{"email": "  Ada@Acme.COM ", "first_name": "Ada", "title": "CTO"},
                {"email": "bob@acme.com"}, {"email": "not an email"}]
    with serve(fake.app) as server:
        connector = make(server, list_type="user")
        results = connector.send([audience_touch(1, contacts=contacts)])
        assert results[0].ok, results[0].error
        segment_id = connector.context.state["linkedin"]["segments"]["USER:Target accounts"]["id"]
        expected = {hashlib.sha256(e.encode()).hexdigest() for e in ("ada@acme.com", "bob@acme.com")}
        assert fake.members[segment_id] == expected
        body = posts_to(server, "/users")[0].body
        assert b"@" not in body and b"Ada@" not in body
        elements = json.loads(body)["elements"]
        assert all(set(e) == {"action", "userIds"} for e in elements), "names and titles never leave in clear"
        assert b"Ada" not in body and b"CTO" not in body


@pytest.mark.parametrize("id_in", ["x-restli-id", "x-linkedin-id", "location", "body"])
def test_the_new_segment_id_is_read_wherever_linkedin_puts_it(id_in):
    fake = FakeLinkedIn(token=TOKEN, id_in=id_in)
    with serve(fake.app) as server:
        connector = make(server)
        results = connector.send([audience_touch(1)])
        assert results[0].ok, results[0].error
        assert connector.context.state["linkedin"]["segments"]["COMPANY:Target accounts"]["id"] == "9001"
        assert fake.members["9001"] == {"company1.com"}


def test_both_lists_and_contactless_account(fake):
    with serve(fake.app) as server:
        connector = make(server, list_type="both")
        results = connector.send([audience_touch(1, contacts=[{"email": "a@x.io"}]), audience_touch(2)])
        assert [r.ok for r in results] == [True, True]
        segs = connector.context.state["linkedin"]["segments"]
        assert set(segs) == {"COMPANY:Target accounts", "USER:Target accounts (contacts)"}
        assert len(fake.members[segs["USER:Target accounts (contacts)"]["id"]]) == 1
        only_users = make(server, list_type="user").send([audience_touch(3)])
        assert not only_users[0].ok and "usable email" in only_users[0].error


def test_partial_failure_is_recorded_per_touch(fake):
    with serve(fake.app) as server:
        batch = [audience_touch(1), audience_touch(2, name="Rejected Inc"), audience_touch(3),
                 audience_touch(4, name=None, domain=None),
                 audience_touch(5, list_name="")]
        results = make(server).send(batch)
        assert [r.touch_id for r in results] == [1, 2, 3, 4, 5]
        assert [r.ok for r in results] == [True, False, True, False, False]
        assert "could not be matched" in results[1].error and results[1].permanent
        assert "neither a name nor a domain" in results[3].error
        assert "list" in results[4].error


def test_not_ready_404_after_creation_is_retryable_then_succeeds():
    fake = FakeLinkedIn(token=TOKEN, not_ready_calls=1)
    with serve(fake.app) as server:
        state: dict = {}
        with pytest.raises(RetryableError) as caught:
            make(server, state=state).send([audience_touch(1)])
        assert "not ready" in str(caught.value) and caught.value.retry_after == 5
        assert make(server, state=state).send([audience_touch(1)])[0].ok
        assert len(posts_to(server, "/rest/dmpSegments")) == 1


def test_a_list_found_by_name_just_after_creation_is_not_ready_not_gone():
    fake = FakeLinkedIn(token=TOKEN, not_ready_calls=2)
    with serve(fake.app) as server:
        with pytest.raises(RetryableError, match="not ready"):
            make(server).send([audience_touch(1)])
        lost_state: dict = {}  # the caller did not keep the state of the failed run
        with pytest.raises(RetryableError, match="not ready"):
            make(server, state=lost_state).send([audience_touch(1)])
        assert lost_state["linkedin"]["segments"]["COMPANY:Target accounts"]["id"] == "9001"
        assert make(server, state=lost_state).send([audience_touch(1)])[0].ok
        assert len(posts_to(server, "/rest/dmpSegments")) == 1


def test_404_on_an_old_segment_forgets_it_and_recreates(fake):
    with serve(fake.app) as server:
        state = {"linkedin": {"segments": {"COMPANY:Target accounts": {"id": "777", "created_at": None}}}}
        with pytest.raises(RetryableError, match="no longer exists"):
            make(server, state=state).send([audience_touch(1)])
        assert state["linkedin"]["segments"] == {}
        assert make(server, state=state).send([audience_touch(1)])[0].ok
        assert state["linkedin"]["segments"]["COMPANY:Target accounts"]["id"] == "9001"


def test_batches_split_at_the_provider_limit(fake):
    with serve(fake.app) as server:
        batch = [audience_touch(i) for i in range(1, 5003)]
        results = make(server).send(batch)
        assert all(r.ok for r in results)
        assert fake.element_counts == [5000, 2]


@pytest.mark.parametrize("status,body,kind", [
    (400, {"status": 400, "message": "Invalid field value"}, PermanentError),
    (500, {"status": 500, "message": "Internal"}, RetryableError),
    (503, "", RetryableError),
])
def test_errors_are_classified(fake, status, body, kind):
    with serve(fake.app) as server:
        fake.fail("/companies", status, body)
        with pytest.raises(kind):
            make(server).send([audience_touch(1)])


def test_401_says_token_and_never_shows_it(fake):
    with serve(fake.app) as server:
        connector = make(server, access_token="wrong-token-123")
        with pytest.raises(PermanentError) as caught:
            connector.send([audience_touch(1)])
        assert "401" in str(caught.value) and "wrong-token-123" not in str(caught.value)


def test_429_with_and_without_retry_after(fake):
    with serve(fake.app) as server:
        fake.fail("/companies", 429, {"status": 429, "message": "Too many"}, headers={"Retry-After": "7"})
        with pytest.raises(RetryableError) as with_header:
            make(server).send([audience_touch(1)])
        assert with_header.value.retry_after == 7
        fake.fail("/companies", 429, {"status": 429, "message": "Too many"})
        with pytest.raises(RetryableError) as without:
            make(server).send([audience_touch(1)])
        assert without.value.retry_after is None


def test_timeout_is_retryable(fake):
    with serve(fake.app) as server:
        fake.slow("/companies", 1.0)
        with pytest.raises(RetryableError, match="timed out"):
            make(server, read_timeout=0.2).send([audience_touch(1)])


def test_connection_test_says_what_is_wrong(fake):
    with serve(fake.app) as server:
        assert "Fake Ads Account" in make(server).test()
        with pytest.raises(PermanentError, match="access token"):
            make(server, access_token="nope").test()
        with pytest.raises(PermanentError, match="no ad account 999"):
            make(server, ad_account_id="999").test()
        fake.fail("/adAccounts", 403, {"status": 403, "message": "Not enough permissions"})
        with pytest.raises(PermanentError, match="no access to ad account"):
            make(server).test()
    connector = LinkedInConnector("li", {"access_token": TOKEN, "ad_account_id": "1",
                                         "base_url": closed_port_url(), "connect_timeout": 1})
    with pytest.raises(RetryableError, match="could not connect"):
        connector.test()
