"""G2 buyer intent: a webhook receiver (``POST /hooks/{name}``) for G2's buyer-intent
signals, each becoming an ``intent`` event of the account with the company's domain.

A signal says that people at a company looked at a G2 category, a product profile,
comparisons, alternatives or pricing. The body is JSON:API-shaped as G2's data feeds are
(``{"data": [{"id", "type", "attributes": {...}}]}``, or one such record, or a list of
attribute objects); of the attributes, these are read:

| attribute | becomes |
|---|---|
| ``company_domain`` (required) | the account, by domain |
| ``company_name`` | ``properties.company`` |
| ``category_name`` or ``product_name`` | the intent ``topic`` |
| ``activity_type`` or ``tag`` | ``properties.activity`` |
| ``intent_score`` (0 to 100) | the strength; without it, the activity's (pricing 90, comparison 80, alternatives 75, product profile 60, category 50, else 40) |
| ``occurred_at`` or ``time`` | when (else now) |

The request must carry the connector's secret, as ``Authorization: Bearer <secret>`` or
the ``token`` query parameter of the webhook URL set in G2; anything else is refused.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.base import Connector, InboundEvent, PermanentError, get_header

ACTIVITY_STRENGTH = {"pricing": 90, "comparison": 80, "compare": 80, "alternatives": 75,
                     "product_profile": 60, "profile": 60, "category": 50}
DEFAULT_STRENGTH = 40


class G2IntentConnector(Connector):
    type = "g2"
    channels = ()
    accepts_webhooks = True
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["secret"],
        "properties": {"secret": {"type": "string", "minLength": 16, "writeOnly": True, "title": "Webhook secret"}},
    }

    def test(self) -> str:
        return "G2 sends to this connector's webhook URL; there is nothing to call"

    def verify_webhook(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        secret = self.settings["secret"]
        auth = get_header(headers, "Authorization") or ""
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not given:
            given = (parse_qs(urlsplit(url).query).get("token") or [""])[0]
        if not given or not hmac.compare_digest(given.encode(), secret.encode()):
            raise PermanentError("missing or wrong G2 webhook secret (Authorization: Bearer, or ?token=)")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[InboundEvent]:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PermanentError(f"the body is not JSON ({exc})") from None
        records = document.get("data", document) if isinstance(document, dict) else document
        if isinstance(records, dict):
            records = [records]
        if not isinstance(records, list):
            raise PermanentError("expected a JSON:API document, a record or a list of records")
        return [event for i, record in enumerate(records) if (event := signal_event(record, i)) is not None]


def signal_event(record: Any, position: int) -> InboundEvent | None:
    """One G2 signal as an ``intent`` event; None for a record without a company domain."""
    if not isinstance(record, dict):
        return None
    attributes = record.get("attributes") if isinstance(record.get("attributes"), dict) else record
    domain = str(attributes.get("company_domain") or "").strip().lower()
    if not domain:
        return None
    activity = str(attributes.get("activity_type") or attributes.get("tag") or "").strip().lower()
    strength = _strength(attributes.get("intent_score"), activity)
    topic = str(attributes.get("category_name") or attributes.get("product_name") or "G2").strip()[:200]
    occurred = _time(attributes.get("occurred_at") or attributes.get("time"))
    record_id = record.get("id") or f"{domain}:{topic}:{activity}:{occurred}"
    return InboundEvent(type="intent", occurred_at=occurred, account_domain=domain,
                        dedup_key=f"g2:{record_id}"[:190],
                        properties={"topic": topic, "score": strength, "provider": "g2",
                                    "activity": activity or None,
                                    "company": str(attributes.get("company_name") or "")[:300] or None})


def _strength(score: Any, activity: str) -> int:
    if isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 100:
        return int(round(score))
    key = activity.rsplit(".", 1)[-1]
    return next((v for k, v in ACTIVITY_STRENGTH.items() if k in key), DEFAULT_STRENGTH) if key else DEFAULT_STRENGTH


def _time(value: Any) -> str:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
        except ValueError:
            pass
    return datetime.now(UTC).isoformat(timespec="seconds")
