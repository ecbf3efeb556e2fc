"""The ``webhook`` connector: each touch POSTed as signed JSON to a URL of the customer's.

The body is the touch as JSON (``id`` = the touch key, stable across retries, so the
receiver can deduplicate; ``type`` = ``abm.<kind>``, ``account``, ``contact``,
``playbook`` and ``payload``: the step's rendered mapping). Headers::

    X-ABM-Timestamp: <unix seconds>
    X-ABM-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>
    X-ABM-Delivery:  <touch key>

A receiver checks it with :func:`verify_signature` (or the same three lines in its own
language), refusing timestamps more than five minutes off.

Answers: 2xx is success. 400, 409, 413 and 422 fail that touch only; 401, 403, 404,
405 and 410 mean the endpoint itself is wrong and fail the batch permanently; 429,
5xx and timeouts are retryable (see :mod:`connectors.http`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from connectors.base import Connector, ConnectorError, PermanentError, Touch, TouchResult, finish_after_error
from connectors.http import HttpClient, provider_message

PER_TOUCH_STATUSES = (400, 409, 413, 422)


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The ``X-ABM-Signature`` value for ``body`` sent at ``timestamp``."""
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
    #: One POST a call (the touch key in X-ABM-Delivery lets the receiver drop a repeat).
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
                       "description": "Shared secret of the X-ABM-Signature HMAC (at least 16 characters)."},
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
        timestamp = str(int(time.time()))
        headers = {"X-ABM-Timestamp": timestamp, "X-ABM-Signature": sign(self.settings["secret"], timestamp, body),
                   "X-ABM-Delivery": delivery}
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
