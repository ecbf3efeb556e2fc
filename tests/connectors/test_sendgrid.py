"""SendGrid against a fake v3 API on a real local server, and its signed event webhook."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.base import PermanentError, RetryableError
from connectors.sendgrid import SendGridConnector
from tests.connectors.fakes.sendgrid import sendgrid_app
from tests.connectors.fakes.touches import email_touch
from tests.connectors.harness import serve


@pytest.fixture
def fake():
    with serve(sendgrid_app()) as server:
        yield server


def connector(server, **extra):
    settings = {"api_key": "SG.good", "from_email": "news@vendor.example", "from_name": "Vendor",
                "base_url": server.base_url, "timeout": 2}
    settings.update(extra)
    return SendGridConnector("sg", settings)


def sent_bodies(server):
    return [json.loads(r.body) for r in server.requests if r.path == "/v3/mail/send"]


def test_same_content_goes_in_one_request_with_a_personalization_per_touch(fake):
    touches = [email_touch(f"p{i}@acme.example") for i in range(3)]
    results = connector(fake).send(touches)

    assert [(r.ok, r.provider_id) for r in results] == [(True, "msg1")] * 3
    [body] = sent_bodies(fake)
    assert [p["to"] for p in body["personalizations"]] == [
        [{"email": f"p{i}@acme.example", "name": "Jane Doe"}] for i in range(3)]
    assert [p["custom_args"] for p in body["personalizations"]] == [
        {"abm_touch_id": str(t.id), "abm_touch_key": t.key} for t in touches]
    assert body["personalizations"][0]["headers"] == {
        "List-Unsubscribe": "<https://abm.example/u/TOKEN>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": '"Tier 1" <tier1.abm.vendor.example>'}
    assert body["from"] == {"email": "news@vendor.example", "name": "Vendor"}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert "our guide (https://vendor.example/guide?a=1&b=2)" in body["content"][0]["value"]
    req = fake.requests[0]
    assert req.headers["Authorization"] == "Bearer SG.good"
    assert req.headers["User-Agent"].startswith("abm-orchestrator/")


def test_different_content_goes_in_separate_requests_and_more_than_1000_is_split(fake):
    touches = [email_touch(f"p{i}@acme.example") for i in range(1001)]
    touches.append(email_touch("other@acme.example", html="<p>Different</p>"))
    results = connector(fake).send(touches)
    assert all(r.ok for r in results)
    assert sorted(len(b["personalizations"]) for b in sent_bodies(fake)) == [1, 1, 1000]


def test_tracking_urls_are_applied_and_sendgrids_own_tracking_is_off(fake):
    tracking = {"open_url": "https://abm.example/o.gif", "click_url_template": "https://abm.example/c?u={url}"}
    connector(fake).send([email_touch(tracking=tracking)])
    [body] = sent_bodies(fake)
    html = body["content"][1]["value"]
    assert 'src="https://abm.example/o.gif"' in html and "https://abm.example/c?u=https%3A%2F%2Fvendor" in html
    assert body["tracking_settings"]["open_tracking"] == {"enable": False}


def test_partial_failure_fails_only_the_rejected_request(fake):
    fake.app.config["REJECT"] = {"bad@acme.example"}
    good = email_touch("good@acme.example")
    bad = email_touch("bad@acme.example", html="<p>other content</p>")
    results = connector(fake).send([bad, good])
    assert results[0].ok is False and results[0].permanent
    assert "personalizations.0.to.0.email: Does not contain a valid address." in results[0].error
    assert results[1].ok


def test_a_touch_without_unsubscribe_url_is_never_sent(fake):
    results = connector(fake).send([email_touch(unsubscribe_url=None)])
    assert not results[0].ok and "unsubscribe" in results[0].error
    assert sent_bodies(fake) == []


def test_a_list_unsubscribe_header_from_the_engine_is_enough(fake):
    touch = email_touch(unsubscribe_url=None, headers={"List-Unsubscribe": "<mailto:u@vendor.example>",
                                                       "X-Campaign": "tier1", "From": "spoof@evil.example"})
    [result] = connector(fake).send([touch])
    assert result.ok
    [body] = sent_bodies(fake)
    assert body["personalizations"][0]["headers"] == {
        "X-Campaign": "tier1", "List-Unsubscribe": "<mailto:u@vendor.example>",
        "List-Id": '"Tier 1" <tier1.abm.vendor.example>'}  # no One-Click without an https URI (RFC 8058)


def test_401_is_permanent(fake):
    with pytest.raises(PermanentError, match="credentials.*authorization grant is invalid"):
        connector(fake, api_key="SG.wrong").send([email_touch()])
    with pytest.raises(PermanentError, match="credentials"):
        connector(fake, api_key="SG.wrong").test()


def test_429_waits_until_the_reset_header(fake):
    reset = int(time.time()) + 40
    fake.app.config["SCRIPT"] = [(429, {"errors": [{"message": "too many requests"}]},
                                  {"X-RateLimit-Reset": str(reset)})]
    with pytest.raises(RetryableError) as err:
        connector(fake).send([email_touch()])
    assert 35 <= err.value.retry_after <= 41


def test_429_without_a_reset_header_is_retryable_later(fake):
    fake.app.config["SCRIPT"] = [(429, {"errors": [{"message": "too many requests"}]}, {})]
    with pytest.raises(RetryableError) as err:
        connector(fake).send([email_touch()])
    assert err.value.retry_after is None


def test_5xx_is_retryable(fake):
    fake.app.config["SCRIPT"] = [(503, "upstream down", {})]
    with pytest.raises(RetryableError, match="HTTP 503"):
        connector(fake).send([email_touch()])


def test_429_after_a_request_went_through_returns_the_rest_as_retryable_failures(fake):
    first, second = email_touch("a@acme.example"), email_touch("b@acme.example", html="<p>other</p>")
    fake.app.config["SCRIPT"] = [(202, "", {"X-Message-Id": "m-first"}), (429, "", {})]
    results = connector(fake).send([first, second])
    assert results[0].ok and results[0].provider_id == "m-first"
    assert not results[1].ok and not results[1].permanent and "rate limited" in results[1].error


def test_timeout_is_retryable(fake):
    fake.app.config["DELAY"] = 1.0
    with pytest.raises(RetryableError, match="timed out"):
        connector(fake, timeout=0.2).send([email_touch()])


def test_test_checks_the_mail_send_scope():
    with serve(sendgrid_app()) as server:
        assert "mail.send" in connector(server).test()
        assert server.requests[0].path == "/v3/scopes"
    with serve(sendgrid_app(scopes=("user.profile.read",))) as server, \
            pytest.raises(PermanentError, match="lacks the mail.send scope"):
        connector(server).test()


# -- signed event webhook ---------------------------------------------------------------

@pytest.fixture(scope="module")
def signing_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_key_text(key, pem=False):
    if pem:
        return key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signed(key, body: bytes, timestamp: int | None = None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}


EVENTS = json.dumps([
    {"email": "Jane@Acme.example", "timestamp": 1700000000, "event": "processed", "sg_event_id": "e0"},
    {"email": "jane@acme.example", "timestamp": 1700000001, "event": "delivered", "sg_event_id": "e1",
     "sg_message_id": "msg1.filter", "abm_touch_id": "1234", "abm_touch_key": "9:step-1:5"},
    {"email": "jane@acme.example", "timestamp": 1700000002, "event": "open", "sg_event_id": "e2",
     "abm_touch_id": "1234"},
    {"email": "jane@acme.example", "timestamp": 1700000003, "event": "click", "sg_event_id": "e3",
     "url": "https://vendor.example/guide", "abm_touch_id": "1234"},
    {"email": "x@acme.example", "timestamp": 1700000004, "event": "bounce", "sg_event_id": "e4",
     "reason": "550 no such user", "type": "bounce"},
    {"email": "y@acme.example", "timestamp": 1700000005, "event": "dropped", "sg_event_id": "e5"},
    {"email": "z@acme.example", "timestamp": 1700000006, "event": "unsubscribe", "sg_event_id": "e6"},
    {"email": "z@acme.example", "timestamp": 1700000007, "event": "group_unsubscribe", "sg_event_id": "e7"},
    {"email": "w@acme.example", "timestamp": 1700000008, "event": "spamreport", "sg_event_id": "e8"},
    {"email": "w@acme.example", "timestamp": 1700000009, "event": "deferred", "sg_event_id": "e9"},
]).encode()


@pytest.mark.parametrize("pem", [False, True])
def test_a_valid_signature_is_accepted_with_base64_or_pem_keys(signing_key, pem):
    conn = SendGridConnector("sg", {"api_key": "k", "from_email": "a@b.example",
                                    "verification_key": public_key_text(signing_key, pem)})
    conn.verify_webhook("POST", "https://abm.example/hooks/sg", signed(signing_key, EVENTS), EVENTS)


def test_forged_or_altered_signatures_are_refused(signing_key):
    conn = SendGridConnector("sg", {"api_key": "k", "from_email": "a@b.example",
                                    "verification_key": public_key_text(signing_key)})
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PermanentError, match="does not match"):
        conn.verify_webhook("POST", "/", signed(other, EVENTS), EVENTS)
    with pytest.raises(PermanentError, match="does not match"):
        conn.verify_webhook("POST", "/", signed(signing_key, EVENTS), EVENTS.replace(b"open", b"OPEN"))
    with pytest.raises(PermanentError, match="missing"):
        conn.verify_webhook("POST", "/", {}, EVENTS)


def test_stale_signatures_are_refused(signing_key):
    conn = SendGridConnector("sg", {"api_key": "k", "from_email": "a@b.example",
                                    "verification_key": public_key_text(signing_key)})
    old = int(time.time()) - 11 * 60
    with pytest.raises(PermanentError, match="stale"):
        conn.verify_webhook("POST", "/", signed(signing_key, EVENTS, old), EVENTS)
    nine_minutes_ago = int(time.time()) - 9 * 60
    conn.verify_webhook("POST", "/", {k.lower(): v for k, v in signed(signing_key, EVENTS, nine_minutes_ago).items()},
                        EVENTS)


def test_without_a_verification_key_nothing_is_accepted(signing_key):
    conn = SendGridConnector("sg", {"api_key": "k", "from_email": "a@b.example"})
    with pytest.raises(PermanentError, match="set verification_key"):
        conn.verify_webhook("POST", "/", signed(signing_key, EVENTS), EVENTS)
    bad = SendGridConnector("sg", {"api_key": "k", "from_email": "a@b.example", "verification_key": "not a key!"})
    with pytest.raises(PermanentError, match="not a public key"):
        bad.verify_webhook("POST", "/", signed(signing_key, EVENTS), EVENTS)


def test_events_are_parsed_into_engagement_events():
    conn = SendGridConnector("sg", {"api_key": "k", "from_email": "a@b.example"})
    events = conn.parse_webhook({}, EVENTS)
    assert [(e.type, e.dedup_key) for e in events] == [
        ("email_delivered", "e1"), ("email_open", "e2"), ("email_click", "e3"), ("email_bounce", "e4"),
        ("email_bounce", "e5"), ("unsubscribe", "e6"), ("unsubscribe", "e7"), ("spam_report", "e8")]
    delivered, opened, click, bounce = events[:4]
    assert delivered.touch_id == 1234 and delivered.email == "jane@acme.example"
    assert delivered.occurred_at == "2023-11-14T22:13:21+00:00"
    assert delivered.properties["abm_touch_key"] == "9:step-1:5"
    assert click.url == "https://vendor.example/guide" and opened.url is None
    assert bounce.touch_id is None and bounce.properties["reason"] == "550 no such user"


@pytest.mark.parametrize("body", [b"not json", b'{"event": "open"}', b'[1, 2]', b'[{"event": "open"}]'])
def test_malformed_webhook_bodies_are_refused(body):
    conn = SendGridConnector("sg", {"api_key": "k", "from_email": "a@b.example"})
    with pytest.raises(PermanentError):
        conn.parse_webhook({}, body)


@pytest.mark.parametrize("body, field", [
    ({"personalizations": [{"to": [{"email": "a@b.example"}], "custom_args": {"touch_id": 5}}],
      "from": {"email": "n@v.example"}, "subject": "s", "content": [{"type": "text/plain", "value": "x"}]},
     "personalizations.0.custom_args"),
    ({"personalizations": [{"to": [{"email": "a@b.example"}]}] * 1001,
      "from": {"email": "n@v.example"}, "subject": "s", "content": [{"type": "text/plain", "value": "x"}]},
     "personalizations"),
    ({"personalizations": [{"to": [{"email": "a@b.example"}]}], "from": {"email": "n@v.example"}, "subject": "s",
      "content": [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]},
     "content"),
])
def test_the_fake_rejects_what_sendgrid_rejects(fake, body, field):
    response = requests.post(fake.base_url + "/v3/mail/send", json=body,
                             headers={"Authorization": "Bearer SG.good"}, timeout=5)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
