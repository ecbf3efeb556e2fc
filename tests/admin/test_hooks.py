"""``POST /hooks/{connector}``: signed provider webhooks in, events queued on Redis."""

from __future__ import annotations

import base64
import json
import time

import pytest
import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from abm.services import connectors as service
from abm.services.events import QUEUE_KEY
from connectors.hubspot import signature_v3

EVENTS = json.dumps([
    {"email": "Jane@Acme.example", "timestamp": 1700000001, "event": "open", "sg_event_id": "e1",
     "abm_touch_id": "77"},
    {"email": "jane@acme.example", "timestamp": 1700000002, "event": "click", "sg_event_id": "e2",
     "url": "https://vendor.example/guide"},
    {"email": "jane@acme.example", "timestamp": 1700000003, "event": "processed", "sg_event_id": "e3"},
]).encode()


@pytest.fixture(scope="module")
def signing_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_key(key) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signed(key, body: bytes, timestamp: int | None = None) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp, "Content-Type": "application/json"}


@pytest.fixture
def sendgrid(app, signing_key):
    service.create({"type": "sendgrid", "name": "sg", "settings": {
        "api_key": "SG.secret-api-key-0123456789", "from_email": "news@vendor.example",
        "verification_key": public_key(signing_key)}})
    return redis.Redis.from_url(app.config["REDIS_URL"])


def queued(r) -> list[dict]:
    return [json.loads(x) for x in r.lrange(QUEUE_KEY, 0, -1)]


def test_a_signed_webhook_is_queued_for_the_drain(client, sendgrid, signing_key):
    answer = client.post("/hooks/sg", data=EVENTS, headers=signed(signing_key, EVENTS))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"received": 2}
    events = queued(sendgrid)
    assert [e["type"] for e in events] == ["email_open", "email_click"]
    first = events[0]
    assert first["email"] == "jane@acme.example" and first["touch_id"] == 77
    assert first["source"] == "sg" and first["dedup_key"] == "sg:e1"
    assert first["occurred_at"].startswith("2023-11-14T22:13:21")
    assert events[1]["url"] == "https://vendor.example/guide"


def test_forged_stale_or_unsigned_webhooks_are_refused(client, sendgrid, signing_key):
    forger = ec.generate_private_key(ec.SECP256R1())
    for headers in (signed(forger, EVENTS), signed(signing_key, EVENTS, int(time.time()) - 3600),
                    {"Content-Type": "application/json"}):
        answer = client.post("/hooks/sg", data=EVENTS, headers=headers)
        assert answer.status_code == 401
        assert answer.get_json()["error"]["code"] == "unauthorized"
        assert answer.get_json()["error"]["message"].startswith("webhook refused: ")
    altered = EVENTS.replace(b"open", b"click")
    assert client.post("/hooks/sg", data=altered, headers=signed(signing_key, EVENTS)).status_code == 401
    assert queued(sendgrid) == []


def test_unknown_disabled_or_non_webhook_connectors_are_404(client, sendgrid, signing_key):
    service.ensure_demo_connectors()
    assert client.post("/hooks/nope", data=EVENTS, headers=signed(signing_key, EVENTS)).status_code == 404
    log_answer = client.post("/hooks/log", data=b"[]")
    assert log_answer.status_code == 404 and "does not accept webhooks" in log_answer.get_json()["error"]["message"]
    service.set_enabled("sg", False)
    assert client.post("/hooks/sg", data=EVENTS, headers=signed(signing_key, EVENTS)).status_code == 404
    assert client.get("/hooks/sg").status_code == 405
    assert queued(sendgrid) == []


def test_webhooks_need_no_csrf_token(app, client, sendgrid, signing_key):
    app.config["WTF_CSRF_ENABLED"] = True
    assert client.post("/hooks/sg", data=EVENTS, headers=signed(signing_key, EVENTS)).status_code == 200


def test_hubspot_signatures_cover_the_public_url(app, client):
    service.create({"type": "hubspot", "name": "hs", "settings": {
        "access_token": "pat-secret-0123456789", "client_secret": "hubspot-client-secret-42",
        "stage_map": {"customer": "closed_won"}}})
    body = json.dumps([{"eventId": 9, "subscriptionType": "company.propertyChange", "objectId": 123,
                        "propertyName": "lifecyclestage", "propertyValue": "customer",
                        "occurredAt": int(time.time() * 1000)}]).encode()
    stamp = str(int(time.time() * 1000))

    def headers(url, secret="hubspot-client-secret-42"):
        return {"X-HubSpot-Signature-v3": signature_v3(secret, "POST", url, body, stamp),
                "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"}

    public = app.config["BASE_URL"] + "/hooks/hs"
    assert client.post("/hooks/hs", data=body, headers=headers(public, "a-forged-secret")).status_code == 401
    answer = client.post("/hooks/hs", data=body, headers=headers(public))
    assert answer.status_code == 200 and answer.get_json() == {"received": 1}
    (event,) = queued(redis.Redis.from_url(app.config["REDIS_URL"]))
    assert event["type"] == "stage_changed" and event["crm_id"] == "123" and event["source"] == "hs"
    assert event["dedup_key"] == "hs:hubspot:9"
