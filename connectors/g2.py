"""G2 buyer intent: a webhook receiver (``POST /hooks/{name}``) for G2's buyer-intent
signals, each becoming an ``intent`` event of the account with the company's domain.

G2 publishes no buyer-intent *webhook* payload (docs/identification.md says what was
checked). What G2 documents is the signal types (its help centre's Buyer Intent page:
product profile, alternatives, category, compare, sponsored content, licensed content,
reference page); its API serves buyer intent as an event stream
(``GET https://data.g2.com/api/v1/ahoy/remote-event-streams``, as public clients of the
API read it): JSON:API records whose
``attributes`` hold ``tag`` (the page kind: ``products.pricing``, ``comparisons.show``,
``products.competitors``, ``categories.show``, ...), ``time``, ``title``, ``url`` and
``organization``, with the company as a relationship whose record
(``/api/v1/ahoy/companies/{id}``) has the ``domain``. So the receiver takes what a
forwarder of that stream (an integration platform, a script) posts:

- a JSON:API document (``{"data": [...], "included": [...]}``), one record, or a list of
  records; a record is ``{"id", "type", "attributes": {...}}`` or the attributes alone;
- the company's domain from ``attributes.company_domain``, or from the ``included``
  company the record's ``relationships.company.data`` names (its ``attributes.domain``);

| attribute | becomes |
|---|---|
| ``company_domain`` or the included company's ``domain`` (required) | the account, by domain |
| ``company_name``, ``organization`` or the company's ``name`` | ``properties.company`` |
| ``category_name`` or ``product_name`` | the intent ``topic`` (else ``G2``) |
| ``tag`` or ``activity_type`` | ``properties.activity``, and the strength without a score |
| ``intent_score`` (0 to 100) | the strength; without it, the activity's (pricing 90, compare 80, alternatives or competitors 75, product pages 60, category 50, else 40) |
| ``time`` or ``occurred_at`` (ISO 8601) | when (else now) |
| ``title``, ``url`` | ``properties.title``, ``properties.url`` |

A delivery is taken whole or refused whole: one record without a domain, with a score
outside 0 to 100 or a time that is not ISO 8601 refuses it with each fault located
(``data[2].attributes.company_domain``), so that the sender can fix and resend it; a
record's ``id`` is its de-duplication key, so a resent delivery counts once.

The request must carry the connector's secret, as ``Authorization: Bearer <secret>`` or
the ``token`` query parameter of the webhook URL; anything else is refused.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.base import Connector, InboundEvent, PayloadError, PermanentError, get_header

#: The strength of a signal without a score, by the first of these its activity (G2's tag) holds.
ACTIVITY_STRENGTH = (("pricing", 90), ("compar", 80), ("alternative", 75), ("competitor", 75),
                     ("product", 60), ("profile", 60), ("categor", 50))
DEFAULT_STRENGTH = 40
DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$")


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
            raise PayloadError(f"the body is not JSON ({exc})", [{"path": "(body)", "message": "not JSON"}]) from None
        companies = _included_companies(document)
        events, problems = [], []
        for record, path in _records(document):
            try:
                events.append(signal_event(record, companies))
            except PayloadError as exc:
                where = "" if path == "(body)" else path
                problems.extend({"path": f"{where}{p['path']}".lstrip(".") or path, "message": p["message"]}
                                for p in exc.problems)
        if problems:
            raise PayloadError(f"{len(problems)} problem(s) in the G2 signals; nothing was taken", problems)
        return events


def _records(document: Any) -> list[tuple[Any, str]]:
    """The records of a delivery, each with its path in the body."""
    if isinstance(document, list):
        return [(record, f"[{i}]") for i, record in enumerate(document)]
    if isinstance(document, dict) and "data" in document:
        data = document["data"]
        if isinstance(data, dict):
            return [(data, "data")]
        if isinstance(data, list):
            return [(record, f"data[{i}]") for i, record in enumerate(data)]
        raise PayloadError("data must be a record or a list of records",
                           [{"path": "data", "message": "not a record or a list of records"}])
    if isinstance(document, dict):
        return [(document, "(body)")]
    raise PayloadError("expected a JSON:API document, a record or a list of records",
                       [{"path": "(body)", "message": "not a JSON:API document, a record or a list of records"}])


def _included_companies(document: Any) -> dict[str, dict]:
    """The ``included`` company records of a JSON:API document, by id."""
    included = document.get("included") if isinstance(document, dict) else None
    out = {}
    for item in included if isinstance(included, list) else ():
        if isinstance(item, dict) and str(item.get("type", "")).startswith("compan") \
                and isinstance(item.get("attributes"), dict):
            out[str(item.get("id"))] = item["attributes"]
    return out


def _company(record: dict, companies: dict[str, dict]) -> dict:
    relationships = record.get("relationships")
    company = relationships.get("company") if isinstance(relationships, dict) else None
    data = company.get("data") if isinstance(company, dict) else None
    return companies.get(str(data.get("id")), {}) if isinstance(data, dict) else {}


def signal_event(record: Any, companies: Mapping[str, dict] | None = None) -> InboundEvent:
    """One G2 signal as an ``intent`` event; PayloadError locating what is wrong with it
    (paths relative to the record, such as ``.attributes.company_domain``)."""
    if not isinstance(record, dict):
        raise PayloadError("not a record", [{"path": "", "message": "a record is a JSON object"}])
    has_attributes = isinstance(record.get("attributes"), dict)
    attributes = record["attributes"] if has_attributes else record
    company = _company(record, dict(companies or {}))
    domain = _first(attributes, "company_domain", default=str(company.get("domain") or "")).lower()
    time_key = "time" if "time" in attributes else "occurred_at"
    occurred = _time(attributes.get(time_key))
    problems = _problems(domain, attributes.get("intent_score"), time_key, attributes.get(time_key), occurred)
    if problems:
        at = ".attributes." if has_attributes else "."
        raise PayloadError("bad signal", [{"path": at + key, "message": message} for key, message in problems])
    properties = _properties(attributes, company)
    key = record.get("id") or f"{domain}:{properties['topic']}:{properties['activity']}:{occurred}"
    return InboundEvent(type="intent", occurred_at=occurred, account_domain=domain,
                        dedup_key=f"g2:{key}"[:190], properties=properties)


def _first(attributes: Mapping, *keys: str, default: str = "", limit: int = 300) -> str:
    """The first non-empty of ``attributes``' ``keys``, as a stripped string of at most ``limit``."""
    value = next((attributes[k] for k in keys if attributes.get(k) not in (None, "")), default)
    return str(value).strip()[:limit]


def _properties(attributes: Mapping, company: Mapping) -> dict:
    activity = _first(attributes, "activity_type", "tag", limit=100).lower()
    score = attributes.get("intent_score")
    return {"topic": _first(attributes, "category_name", "product_name", default="G2", limit=200),
            "score": int(round(score)) if score is not None else _strength(activity),
            "provider": "g2", "activity": activity or None,
            "company": _first(attributes, "company_name", "organization",
                              default=str(company.get("name") or "")) or None,
            "title": _first(attributes, "title") or None, "url": _first(attributes, "url", limit=2000) or None}


def _problems(domain: str, score: Any, time_key: str, time_value: Any, occurred: str | None) -> list[tuple]:
    """(attribute, message) for each fault of a signal."""
    problems = []
    if not DOMAIN.match(domain):
        problems.append(("company_domain", f"{domain!r} is not a domain name" if domain else
                         "missing: the company's domain (or an included company with one) is required"))
    if score is not None and not (isinstance(score, (int, float)) and not isinstance(score, bool)
                                  and 0 <= score <= 100):
        problems.append(("intent_score", f"{score!r} is not a score from 0 to 100"))
    if occurred is None:
        problems.append((time_key, f"{time_value!r} is not an ISO 8601 date and time"))
    return problems


def _strength(activity: str) -> int:
    return next((v for k, v in ACTIVITY_STRENGTH if k in activity), DEFAULT_STRENGTH)


def _time(value: Any) -> str | None:
    """``value`` as an ISO 8601 UTC time; now when there is none; None when it is not a time."""
    if value is None or value == "":
        return datetime.now(UTC).isoformat(timespec="seconds")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
