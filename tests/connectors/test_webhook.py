"""The generic webhook against a receiver that verifies the signature, and the verifier."""

from __future__ import annotations

import base64
import os
import time

import pytest
from standardwebhooks.webhooks import Webhook

from connectors.base import PermanentError, RetryableError
from connectors.webhook import WebhookConnector, sign, verify_signature
from tests.connectors.fakes.generic import generic_app
from tests.connectors.fakes.touches import alert_touch, webhook_touch
from tests.connectors.fakes.webhook_receiver import receiver_app
from tests.connectors.harness import serve

SECRET = "a-very-long-shared-secret"


@pytest.fixture
def receiver():
    with serve(receiver_app(SECRET)) as server:
        yield server


def connector(server, secret=SECRET, path="/hooks/abm", **extra):
    return WebhookConnector("crm-hook", {"url": server.base_url + path, "secret": secret, "timeout": 2, **extra})


def test_posts_signed_json_that_the_receiver_verifies(receiver):
    touches = [webhook_touch({"event": "hot_account", "score": 87}), alert_touch("Acme is hot")]
    results = connector(receiver).send(touches)

    assert [(r.ok, r.provider_id) for r in results] == [(True, "r1"), (True, "r2")]
    first, second = receiver.app.config["RECEIVED"]
    assert first["id"] == touches[0].key and first["type"] == "abm.webhook"
    assert first["payload"] == {"event": "hot_account", "score": 87}
    assert first["account"]["domain"] == "acme.example"
    assert second["type"] == "abm.alert" and second["payload"]["message"] == "Acme is hot"
    req = receiver.requests[0]
    assert req.headers["Webhook-Id"] == touches[0].key
    assert req.headers["Webhook-Signature"].startswith("v1,") and "X-Abm-Signature" not in req.headers


def test_wrong_secret_is_refused_by_the_receiver_and_is_permanent(receiver):
    with pytest.raises(PermanentError, match="HTTP 401") as err:
        connector(receiver, secret="another-secret-entirely").send([webhook_touch()])
    assert "another-secret-entirely" not in str(err.value)


def test_422_fails_that_touch_only(receiver):
    touches = [webhook_touch(), webhook_touch(), webhook_touch()]
    receiver.app.config["REFUSE"] = {touches[1].id}
    results = connector(receiver).send(touches)
    assert [r.ok for r in results] == [True, False, True]
    assert "HTTP 422" in results[1].error and "is not wanted" in results[1].error


def test_404_means_the_endpoint_is_wrong(receiver):
    with pytest.raises(PermanentError, match="HTTP 404"):
        connector(receiver, path="/nowhere").send([webhook_touch()])


def test_any_2xx_is_success(receiver):
    receiver.app.config["STATUS"] = 204
    [result] = connector(receiver).send([webhook_touch()])
    assert result.ok


@pytest.mark.parametrize("status, headers, retry_after", [
    (429, {"Retry-After": "12"}, 12), (429, {}, None), (503, {}, None)])
def test_429_and_5xx_are_retryable(status, headers, retry_after):
    with serve(generic_app(status, '{"error": "busy"}', headers)) as server, pytest.raises(RetryableError) as err:
        connector(server).send([webhook_touch()])
    assert err.value.retry_after == retry_after


def test_failure_after_some_went_out_returns_results():
    app = generic_app(200)
    app.config["SCRIPT"] = [(200, "{}", {}), (503, "down", {})]
    with serve(app) as server:
        results = connector(server).send([webhook_touch(), webhook_touch(), webhook_touch()])
    assert [(r.ok, r.permanent) for r in results] == [(True, True), (False, False), (False, False)]


def test_timeout_is_retryable():
    with serve(generic_app(200, delay=1.0)) as server, pytest.raises(RetryableError, match="timed out"):
        connector(server, timeout=0.2).send([webhook_touch()])


def test_test_sends_a_signed_test_event(receiver):
    assert "HTTP 200" in connector(receiver).test()
    assert receiver.app.config["RECEIVED"][0]["type"] == "abm.test"


def test_verify_signature_valid_forged_stale():
    body, now = b'{"a":1}', time.time()
    ts = str(int(now))
    good = sign(SECRET, ts, body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert verify_signature(SECRET, ts, body, good)
    assert not verify_signature(SECRET, ts, body + b" ", good)
    assert not verify_signature("another-secret-entirely", ts, body, good)
    assert not verify_signature(SECRET, str(int(now) + 1), body, good)
    assert not verify_signature(SECRET, ts, body, None)
    old = str(int(now) - 301)
    assert not verify_signature(SECRET, old, body, sign(SECRET, old, body))
    assert verify_signature(SECRET, old, body, sign(SECRET, old, body), tolerance=600)
    assert not verify_signature(SECRET, "yesterday", body, good)


# -- the reference: the Standard Webhooks library (standardwebhooks) ------------------------------

def test_a_whsec_secret_is_verified_by_the_reference_library_as_generated_by_it():
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    with serve(receiver_app(secret)) as server:
        touch = webhook_touch({"event": "hot_account"})
        assert connector(server, secret=secret).send([touch])[0].ok
        req = server.requests[0]
    document = Webhook(secret).verify(req.body, req.headers)
    assert document["id"] == touch.key and req.headers["Webhook-Id"] == touch.key
    tampered = dict(req.headers, **{"Webhook-Id": "another-id"})
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(secret).verify(req.body, tampered)


def test_a_retry_keeps_its_webhook_id_so_receivers_deduplicate(receiver):
    touch = webhook_touch()
    connector(receiver).send([touch])
    connector(receiver).send([touch])
    assert [r.headers["Webhook-Id"] for r in receiver.requests] == [touch.key, touch.key]


def test_the_former_scheme_only_when_asked():
    with serve(receiver_app(SECRET, scheme="x-abm-signature")) as server:
        assert connector(server, signature_scheme="x-abm-signature").send([webhook_touch()])[0].ok
        with pytest.raises(PermanentError, match="HTTP 401"):
            connector(server).send([webhook_touch()])  # the standard headers: not what it checks
        req = server.requests[0]
    assert req.headers["X-Abm-Signature"] == sign(SECRET, req.headers["X-Abm-Timestamp"], req.body)
    assert "Webhook-Signature" not in req.headers
