"""The ``sendgrid`` connector: email over SendGrid's v3 Mail Send API, events back by webhook.

Sending: ``POST {base_url}/v3/mail/send``. Touches whose content is the same (same
sender, HTML and text) share one request, one personalization per touch (at most
1,000 a request), each with its own ``to``, ``subject``, ``List-Unsubscribe`` headers
and ``custom_args`` ``{"abm_touch_id": "<id>", "abm_touch_key": "<key>"}`` (strings,
as SendGrid requires), which SendGrid echoes in every event. A 202 is success; its
``X-Message-Id`` is the touches' provider id. A 400 or 413 fails the touches of that
request only, with SendGrid's own message; 401/403 and 429/5xx/timeouts fail the batch
(``PermanentError``/``RetryableError``; a 429 waits until ``X-RateLimit-Reset``),
unless some requests already went through, in which case the rest are returned as
failures so nothing is sent twice.

Tracking: as for SMTP, the engine's ``tracking`` URLs in the payload (pixel and
rewritten links, see :mod:`connectors.email_message`) are applied when the
``tracking`` setting is on, and SendGrid's own open and click tracking is switched off
for these messages, so opens and clicks are counted once, by the product.

Inbound: ``verify_webhook`` checks SendGrid's signed event webhook (ECDSA P-256 with
SHA-256 over timestamp + raw body; the ``verification_key`` setting is the public key
SendGrid shows, base64 DER or PEM) and rejects timestamps more than 10 minutes off;
``parse_webhook`` turns delivered, open, click, bounce, dropped, unsubscribe,
group_unsubscribe and spamreport events into :class:`InboundEvent` (``processed`` and
``deferred`` are not engagement and are skipped), deduplicated by ``sg_event_id``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.base import (
    Connector,
    ConnectorError,
    InboundEvent,
    PermanentError,
    Touch,
    TouchResult,
    finish_after_error,
    get_header,
    normalize_email,
)
from connectors.email_message import MessageError, add_tracking, list_id, recipient_of, unsubscribe_headers_of
from connectors.email_text import html_to_text
from connectors.http import HttpClient, provider_message

DEFAULT_BASE_URL = "https://api.sendgrid.com"
MAX_PERSONALIZATIONS = 1000
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: Webhook timestamps further than this from now are refused (replays).
WEBHOOK_TOLERANCE = 600

#: SendGrid event -> engagement event type; events not listed are skipped.
EVENT_TYPES = {
    "delivered": "email_delivered",
    "open": "email_open",
    "click": "email_click",
    "bounce": "email_bounce",
    "dropped": "email_bounce",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    "spamreport": "spam_report",
}
#: Headers SendGrid or this module set; a payload's ``headers`` cannot replace them.
_OWN_HEADERS = {"list-unsubscribe", "list-unsubscribe-post", "list-id", "from", "to", "subject", "reply-to", "cc", "bcc",
                "date", "message-id", "content-type", "content-transfer-encoding", "mime-version"}
_KEPT_PROPERTIES = ("sg_message_id", "reason", "status", "type", "bounce_classification",
                    "useragent", "ip", "asm_group_id", "abm_touch_key")


def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key from PEM or base64 DER; PermanentError when it is neither."""
    text = (value or "").strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise PermanentError(
            "sendgrid: verification_key is not a public key; paste the key SendGrid shows "
            "under Mail Settings > Signed Event Webhook"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PermanentError("sendgrid: verification_key is not an elliptic-curve (P-256) public key")
    return key


class SendGridConnector(Connector):
    type = "sendgrid"
    channels = ("email",)
    #: Personalizations a request: mail/send takes no idempotency key, so a crash can repeat
    #: one request; kept small so that this bound means something.
    max_batch = 50
    rate_limit = (10, 1)
    accepts_webhooks = True
    settings_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "SendGrid",
        "properties": {
            "api_key": {"type": "string", "minLength": 1, "writeOnly": True,
                        "description": "An API key with the mail.send scope."},
            "from_email": {"type": "string", "format": "email"},
            "from_name": {"type": "string"},
            "reply_to": {"type": "string", "format": "email"},
            "verification_key": {"type": "string",
                                 "description": "The Signed Event Webhook's public key (base64 or PEM)."},
            "tracking": {"type": "boolean", "default": True},
            "categories": {"type": "array", "items": {"type": "string", "maxLength": 255}, "maxItems": 10},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30},
            "base_url": {"type": "string", "format": "uri", "default": DEFAULT_BASE_URL},
        },
        "required": ["api_key", "from_email"],
        "additionalProperties": False,
    }

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"api_key": "SG.example-key", "from_email": "news@vendor.example", "base_url": base_url}

    def client(self) -> HttpClient:
        timeout = float(self.settings.get("timeout", 30))
        key = self.settings.get("api_key", "")
        return HttpClient(
            "SendGrid", self.settings.get("base_url") or DEFAULT_BASE_URL,
            headers={"Authorization": f"Bearer {key}"}, secrets=[key],
            timeout=(min(5.0, timeout), timeout), reset_header="X-RateLimit-Reset",
        )

    # -- sending -------------------------------------------------------------------
    def _sender(self, touch: Touch) -> dict[str, str]:
        value = touch.payload.get("from")
        if isinstance(value, Mapping) and value.get("email"):
            email, name = str(value["email"]), value.get("name")
        elif isinstance(value, str) and "@" in value:
            name, email = parseaddr(value)
        else:
            email, name = self.settings["from_email"], self.settings.get("from_name")
        return {"email": email, "name": name} if name else {"email": email}

    def _personalization(self, touch: Touch) -> tuple[dict[str, Any], tuple[Any, ...]]:
        """(personalization, content key): touches with equal content keys share a request."""
        payload = touch.payload
        email, name = recipient_of(touch)
        subject = str(payload.get("subject") or "").strip()
        if not subject:
            raise MessageError(f"touch {touch.key}: the email has no subject")
        given = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
        unsubscribe_url = payload.get("unsubscribe_url")
        unsubscribe = unsubscribe_headers_of(touch)
        html = str(payload.get("html") or "")
        text = str(payload.get("text") or (html_to_text(html) if html else ""))
        if not (html or text):
            raise MessageError(f"touch {touch.key}: the email has no body")
        tracking = payload.get("tracking") or {}
        if html and tracking and self.settings.get("tracking", True):
            html = add_tracking(html, tracking.get("open_url"), tracking.get("click_url_template"),
                                keep=(unsubscribe_url,) if unsubscribe_url else ())
        headers = {k: v for k, v in given.items() if k.lower() not in _OWN_HEADERS}
        headers.update(unsubscribe)
        headers["List-Id"] = list_id(touch, self._sender(touch)["email"].rpartition("@")[2])
        to = {"email": email, "name": name} if name else {"email": email}
        personalization = {
            "to": [to],
            "subject": subject,
            "custom_args": {"abm_touch_id": str(touch.id), "abm_touch_key": str(touch.key)},
            "headers": headers,
        }
        sender = self._sender(touch)
        inline = tuple((str(i.get("cid")), str(i.get("content_type")), str(i.get("filename") or "image"),
                        str(i.get("data_base64"))) for i in payload.get("inline_images") or ())
        return personalization, (tuple(sorted(sender.items())), html, text, inline)

    def _body(self, personalizations: list[dict[str, Any]], content_key: tuple[Any, ...]) -> dict[str, Any]:
        sender, html, text, inline = content_key
        content = []
        if text:
            content.append({"type": "text/plain", "value": text})
        if html:
            content.append({"type": "text/html", "value": html})
        body: dict[str, Any] = {
            "personalizations": personalizations,
            "from": dict(sender),
            "subject": personalizations[0]["subject"],
            "content": content,
            "tracking_settings": {"click_tracking": {"enable": False, "enable_text": False},
                                  "open_tracking": {"enable": False}},
        }
        if inline:  # pictures the HTML shows by Content-ID (the weekly KPI report's charts)
            body["attachments"] = [{"content": data, "type": kind, "filename": name, "disposition": "inline",
                                    "content_id": cid} for cid, kind, name, data in inline]
        if self.settings.get("reply_to"):
            body["reply_to"] = {"email": self.settings["reply_to"]}
        if self.settings.get("categories"):
            body["categories"] = list(self.settings["categories"])
        return body

    def send(self, batch: list[Touch]) -> list[TouchResult]:
        results: dict[int, TouchResult] = {}
        groups: dict[tuple[Any, ...], list[tuple[Touch, dict[str, Any]]]] = {}
        for touch in batch:
            try:
                personalization, content_key = self._personalization(touch)
            except MessageError as exc:
                results[touch.id] = TouchResult.failure(touch, str(exc))
                continue
            groups.setdefault(content_key, []).append((touch, personalization))

        requests_ = [(key, members[i:i + MAX_PERSONALIZATIONS])
                     for key, members in groups.items()
                     for i in range(0, len(members), MAX_PERSONALIZATIONS)]
        done: list[TouchResult] = []
        with self.client() as client:
            for index, (content_key, members) in enumerate(requests_):
                try:
                    outcome = self._post(client, content_key, members)
                except ConnectorError as exc:
                    rest = [t for _, group in requests_[index:] for t, _ in group]
                    for r in finish_after_error(done, rest, exc)[len(done):]:
                        results[r.touch_id] = r
                    break
                done.extend(outcome)
                results.update((r.touch_id, r) for r in outcome)
        return [results[t.id] for t in batch]

    def _post(self, client: HttpClient, content_key: tuple[Any, ...],
              members: list[tuple[Touch, dict[str, Any]]]) -> list[TouchResult]:
        body = self._body([p for _, p in members], content_key)
        response = client.post("/v3/mail/send", json=body, expect=(202, 400, 413))
        if response.status_code == 202:
            message_id = response.headers.get("X-Message-Id")
            return [TouchResult.success(t, provider_id=message_id) for t, _ in members]
        reason = f"SendGrid rejected the email (HTTP {response.status_code}): {provider_message(response)}"
        return [TouchResult.failure(t, reason) for t, _ in members]

    def test(self) -> str:
        with self.client() as client:
            response = client.get("/v3/scopes")
        try:
            scopes = response.json().get("scopes", [])
        except (ValueError, AttributeError):
            raise PermanentError("SendGrid answered /v3/scopes with something that is not JSON; check base_url") from None
        if "mail.send" not in scopes:
            raise PermanentError("the SendGrid API key works but lacks the mail.send scope; give it Mail Send access")
        return f"SendGrid API key accepted ({len(scopes)} scopes, mail.send included)"

    # -- inbound -------------------------------------------------------------------
    def verify_webhook(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                       now: float | None = None) -> None:
        if not self.settings.get("verification_key"):
            raise PermanentError(
                f"sendgrid {self.name!r}: set verification_key (Signed Event Webhook public key) to accept events"
            )
        signature = get_header(headers, SIGNATURE_HEADER)
        timestamp = get_header(headers, TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise PermanentError(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
        try:
            age = (time.time() if now is None else now) - int(timestamp)
        except ValueError:
            raise PermanentError(f"{TIMESTAMP_HEADER} is not a unix time") from None
        if abs(age) > WEBHOOK_TOLERANCE:
            raise PermanentError(f"stale webhook: its timestamp is {int(age)}s from now (limit {WEBHOOK_TOLERANCE}s)")
        key = load_public_key(self.settings["verification_key"])
        try:
            key.verify(base64.b64decode(signature, validate=True), timestamp.encode("ascii") + body,
                       ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, binascii.Error, ValueError):
            raise PermanentError("the webhook signature does not match: not from SendGrid, or altered") from None

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[InboundEvent]:
        try:
            events = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise PermanentError("SendGrid webhook body is not JSON") from None
        if not isinstance(events, list):
            raise PermanentError("SendGrid webhook body is not a JSON array of events")
        parsed = []
        for position, event in enumerate(events):
            if not isinstance(event, Mapping):
                raise PermanentError(f"SendGrid webhook event {position} is not an object")
            kind = EVENT_TYPES.get(str(event.get("event")))
            if kind is None:
                continue
            parsed.append(_event(kind, event, position))
        return parsed


def _event(kind: str, event: Mapping[str, Any], position: int) -> InboundEvent:
    try:
        occurred = datetime.fromtimestamp(int(event["timestamp"]), UTC).isoformat()
    except (KeyError, TypeError, ValueError, OverflowError):
        raise PermanentError(f"SendGrid webhook event {position} has no valid timestamp") from None
    touch_id = event.get("abm_touch_id")
    try:
        touch_id = int(touch_id) if touch_id not in (None, "") else None
    except (TypeError, ValueError):
        touch_id = None
    properties = {k: event[k] for k in _KEPT_PROPERTIES if k in event}
    properties["event"] = event.get("event")
    email = event.get("email")
    return InboundEvent(
        type=kind,
        occurred_at=occurred,
        email=normalize_email(email) if isinstance(email, str) else None,
        url=event.get("url") if kind == "email_click" else None,
        touch_id=touch_id,
        dedup_key=str(event["sg_event_id"]) if event.get("sg_event_id") else None,
        properties=properties,
    )
