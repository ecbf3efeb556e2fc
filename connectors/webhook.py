"""The ``webhook`` connector: each touch POSTed as signed JSON to a URL of the customer's.

The body is the touch as JSON (``id`` = the touch key, stable across retries, so the
receiver can deduplicate; ``type`` = ``abm.<kind>``, ``account``, ``contact``,
``playbook`` and ``payload``: the step's rendered mapping).

Signed the Standard Webhooks way (standardwebhooks.com), so that a receiver checks it
with that project's libraries in any language::

    webhook-id:        <touch key>              (the same on every retry)
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + raw body)>

The key is the ``secret`` setting: a ``whsec_<base64>`` secret (as Standard Webhooks
generates them) is its decoded bytes, and is given to receivers as it is
(``Webhook("whsec_...")``); any other secret is used as its UTF-8 bytes
(``Webhook(secret.encode())``). Receivers refuse timestamps more than five minutes off.

``signature_scheme: x-abm-signature`` keeps the product's former scheme for receivers
written against it: ``X-ABM-Timestamp``, ``X-ABM-Signature: sha256=<hex HMAC-SHA256
(secret, timestamp + "." + raw body)>`` and ``X-ABM-Delivery`` (checked by
:func:`verify_signature`).

Answers: 2xx is success. 400, 409, 413 and 422 fail that touch only; 401, 403, 404,
405 and 410 mean the endpoint itself is wrong and fail the batch permanently; 429,
5xx and timeouts are retryable (see :mod:`connectors.http`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from connectors.base import Connector, ConnectorError, PermanentError, Touch, TouchResult, finish_after_error
from connectors.http import HttpClient, provider_message

PER_TOUCH_STATUSES = (400, 409, 413, 422)
STANDARD, LEGACY = "standard-webhooks", "x-abm-signature"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: a ``whsec_`` secret's base64 bytes, else the text's UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):] + "==", validate=False)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8")


def standard_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{digest}"}


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The former scheme's ``X-ABM-Signature`` value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_signature(secret: str, timestamp: str | int | None, body: bytes, signature: str | None,
                     tolerance: int = 300, now: float | None = None) -> bool:
    """True when ``signature`` is ours for ``body`` and ``timestamp`` is within ``tolerance`` seconds."""
    if not secret or not signature or timestamp is None:
        return False
    try:
        sent = int(str(timestamp))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, str(timestamp), body), signature.strip())


class WebhookConnector(Connector):
    type = "webhook"
    channels = ("webhook", "alert")
    #: One POST a call (the touch key in webhook-id lets the receiver drop a repeat).
    max_batch = 1
    rate_limit = (10, 1)
    settings_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Webhook (signed JSON POST)",
        "properties": {
            "url": {"type": "string", "format": "uri", "pattern": "^https?://",
                    "description": "Where to POST each touch."},
            "secret": {"type": "string", "minLength": 16, "writeOnly": True,
                       "description": "The signing secret (at least 16 characters; a whsec_... secret as "
                                      "Standard Webhooks makes them is used as its base64 key)."},
            "signature_scheme": {
                "enum": [STANDARD, LEGACY], "default": STANDARD,
                "description": "standard-webhooks (webhook-id, webhook-timestamp, webhook-signature), or the "
                               "former X-ABM-Signature scheme for receivers written against it."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": 10},
        },
        "required": ["url", "secret"],
        "additionalProperties": False,
    }

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"url": base_url.rstrip("/") + "/hooks/abm", "secret": "example-secret-0123456789"}

    def client(self) -> HttpClient:
        timeout = float(self.settings.get("timeout", 10))
        return HttpClient("webhook", self.settings["url"], secrets=[self.settings.get("secret")],
                          headers={"Content-Type": "application/json"}, timeout=(min(5.0, timeout), timeout))

    @staticmethod
    def document(touch: Touch) -> dict[str, Any]:
        payload = touch.payload.get("payload") if touch.kind == "webhook" else dict(touch.payload)
        return {
            "id": touch.key,
            "type": f"abm.{touch.kind}",
            "touch_id": touch.id,
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "account": dict(touch.account or {}),
            "contact": dict(touch.contact) if touch.contact else None,
            "playbook": dict(touch.playbook or {}),
            "payload": payload,
        }

    def _post(self, client: HttpClient, document: dict[str, Any], delivery: str) -> Any:
        body = json.dumps(document, default=str, separators=(",", ":")).encode("utf-8")
        timestamp = int(time.time())
        secret = self.settings["secret"]
        if self.settings.get("signature_scheme") == LEGACY:
            headers = {"X-ABM-Timestamp": str(timestamp), "X-ABM-Signature": sign(secret, timestamp, body),
                       "X-ABM-Delivery": delivery}
        else:
            headers = standard_headers(secret, delivery, timestamp, body)
        ok = range(200, 300)
        return client.post("", data=body, headers=headers, expect=(*ok, *PER_TOUCH_STATUSES))

    def send(self, batch: list[Touch]) -> list[TouchResult]:
        results: list[TouchResult] = []
        with self.client() as client:
            for index, touch in enumerate(batch):
                try:
                    response = self._post(client, self.document(touch), touch.key)
                except ConnectorError as exc:
                    return finish_after_error(results, batch[index:], exc)
                if response.status_code in PER_TOUCH_STATUSES:
                    results.append(TouchResult.failure(
                        touch, f"the webhook refused the touch (HTTP {response.status_code}): "
                        f"{provider_message(response)}"))
                else:
                    results.append(TouchResult.success(touch, provider_id=response.headers.get("X-Request-Id")))
        return results

    def test(self) -> str:
        document = {"id": f"test:{int(time.time())}", "type": "abm.test", "connector": self.name,
                    "sent_at": datetime.now(UTC).isoformat(timespec="seconds")}
        with self.client() as client:
            response = self._post(client, document, document["id"])
        if response.status_code in PER_TOUCH_STATUSES:
            raise PermanentError(f"the webhook refused the test event (HTTP {response.status_code}): "
                                 f"{provider_message(response)}")
        return f"the webhook answered HTTP {response.status_code} to a signed test event"
