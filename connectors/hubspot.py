"""HubSpot: stages and opportunities in (webhooks and polling), tasks and scores out.

In, by webhook: HubSpot's v3 signature (``X-HubSpot-Signature-v3`` = base64 of
HMAC-SHA256 with the app's client secret over method + URI + raw body + timestamp;
``X-HubSpot-Request-Timestamp`` in ms, refused when more than 5 minutes off) is checked
in constant time; ``company.propertyChange`` of the stage property becomes a
``stage_changed`` event and ``deal.propertyChange`` of ``dealstage`` an
``opportunity`` event (shapes in :mod:`connectors.crm`). Other subscriptions are
ignored: the poll brings everything else.

In, by polling: :meth:`HubSpotConnector.poll` searches companies and deals modified
since the cursor (sorted by ``hs_lastmodifieddate``, at most ``searches_per_second``),
reads each deal page's associated companies and their domains, and returns the
events with a new cursor the caller persists. It reads at most ``max_pages`` pages a
call; ``cursor["more"]`` says whether more are waiting. If it raises, the caller keeps
the old cursor and nothing is lost.

Out: ``task`` touches become HubSpot tasks on the account's company (the account
dict's ``crm_id``, or ``crm_ids[<connector name>]``), owned by the HubSpot user whose
email is the payload's ``to`` (else the account's ``owner``), or else by the
company's owner in HubSpot. :meth:`HubSpotConnector.write_scores` writes engagement
score and level to two company properties in batches of 100.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import requests

from connectors import crm
from connectors.base import (
    Connector,
    ConnectorError,
    InboundEvent,
    PermanentError,
    RetryableError,
    Touch,
    TouchResult,
)
from connectors.http import HttpClient, parse_retry_after, provider_message
from connectors.schema import STAGE_MAP, base_url, object_schema, secret, timeout_of

DEFAULT_BASE_URL = "https://api.hubapi.com"
BATCH_LIMIT = 100
MAX_SIGNATURE_AGE_MS = 5 * 60 * 1000
TASK_TO_COMPANY = 192  # HUBSPOT_DEFINED association type: task -> company
NOTE_TO_COMPANY = 190  # HUBSPOT_DEFINED association type: note -> company
DEAL_PROPERTIES = ["dealname", "amount", "deal_currency_code", "dealstage", "closedate", "createdate", "pipeline",
                   "hs_is_closed", "hs_is_closed_won", "hs_lastmodifieddate"]
#: Characters HubSpot decodes in the request URI before signing it.
_URI_DECODE = ["%3A", "%2F", "%3F", "%40", "%21", "%24", "%27", "%28", "%29", "%2A", "%2C", "%3B"]
_POLICY_WAIT = {"SECONDLY": 1.0, "TEN_SECONDLY_ROLLING": 10.0}


def header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def signed_uri(url: str) -> str:
    for code in _URI_DECODE:
        url = url.replace(code, unquote(code)).replace(code.lower(), unquote(code))
    return url


def signature_v3(secret_key: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    source = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret_key.encode(), source, hashlib.sha256).digest()).decode()


def note_html(entry: crm.TimelineEntry) -> str:
    """A note's body: the subject in bold, then the digest's lines (HubSpot notes are HTML)."""
    lines = "".join(f"<br>{html.escape(line)}" for line in entry.body.splitlines())
    return f"<strong>{html.escape(entry.subject)}</strong>{lines}"


def to_ms(value: Any) -> int | None:
    """Epoch ms from HubSpot's ``hs_lastmodifieddate`` (ISO text or ms)."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


class HubSpotConnector(Connector):
    type = "hubspot"
    channels = ("crm", "task")
    #: One task a call: a crash repeats at most one, and none with ``task_id_property`` (the
    #: task is then upserted by the touch's key, its association put: both idempotent).
    max_batch = 1
    rate_limit = (100, 10)
    accepts_webhooks = True
    settings_schema = object_schema(
        {
            "access_token": secret("Private app access token (crm.objects.companies/deals read and write)."),
            "client_secret": secret("The app's client secret, to verify webhook signatures."),
            "stage_map": STAGE_MAP,
            "stage_property": {"type": "string", "minLength": 1, "default": "lifecyclestage",
                               "description": "The company property that holds its stage."},
            "score_property": {"type": "string", "minLength": 1, "default": "abm_engagement_score"},
            "level_property": {"type": "string", "minLength": 1, "default": "abm_engagement_level"},
            "timeline_cadence": {
                "enum": ["off", "daily", "weekly"], "default": "off",
                "description": "How often each account's digest (touches, engagement, score breakdown) is "
                               "written to its CRM timeline; off writes none."},
            "searches_per_second": {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "default": 4},
            "page_size": {"type": "integer", "minimum": 1, "maximum": 200, "default": 100},
            "max_pages": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50,
                          "description": "Search pages read per poll and object type."},
            "task_id_property": {
                "type": "string", "pattern": "^[a-z][a-z0-9_]*$",
                "description": "A task property with unique values (such as abm_touch_key): tasks are upserted "
                               "by the touch's key, so a call repeated after a crash updates the same task "
                               "instead of adding a second one."},
            "base_url": base_url(DEFAULT_BASE_URL),
        },
        ["access_token"],
    )

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"access_token": "pat-na1-example-token", "client_secret": "example-client-secret",
                "base_url": base_url}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._last_search = 0.0
        self._owners: dict[str, str | None] = {}

    @property
    def client(self) -> HttpClient:
        if not hasattr(self, "_client"):
            token = self.settings["access_token"]
            self._client = HttpClient(
                "HubSpot", self.settings.get("base_url") or DEFAULT_BASE_URL,
                headers={"Authorization": f"Bearer {token}"}, timeout=timeout_of(self.settings),
                secrets=[token, self.settings.get("client_secret")],
            )
        return self._client

    def _classify(self, response: requests.Response) -> ConnectorError | None:
        status = response.status_code
        if status == 429:
            try:
                body = response.json()
            except ValueError:
                body = {}
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is None and isinstance(body, Mapping):
                wait = _POLICY_WAIT.get(str(body.get("policyName")))
            return RetryableError(f"HubSpot rate limit reached (HTTP 429): {provider_message(response)}",
                                  retry_after=wait)
        if status == 401:
            return PermanentError("HubSpot refused the access token (HTTP 401): it is wrong, expired or "
                                  "revoked; paste a valid private app token in the connector's settings")
        if status == 403:
            return PermanentError(f"HubSpot: the token lacks a permission (HTTP 403): "
                                  f"{provider_message(response)}; add the scope to the private app")
        return None

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.client.request(method, path, classify=self._classify, **kwargs)

    # -- inbound: webhooks ------------------------------------------------------------
    def verify_webhook(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        client_secret = self.settings.get("client_secret")
        if not client_secret:
            raise PermanentError("HubSpot webhooks need the app's client_secret in the connector's settings")
        given = header(headers, "X-HubSpot-Signature-v3")
        stamp = header(headers, "X-HubSpot-Request-Timestamp")
        if not given or not stamp:
            raise PermanentError("HubSpot webhook without X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp")
        if not stamp.strip().isdigit():
            raise PermanentError("HubSpot webhook timestamp is not a number of milliseconds")
        age = abs(time.time() * 1000 - int(stamp))
        if age > MAX_SIGNATURE_AGE_MS:
            raise PermanentError(f"HubSpot webhook signature is stale ({age / 1000:.0f}s old, at most 300s)")
        expected = signature_v3(client_secret, method, url, body, stamp.strip())
        if not hmac.compare_digest(expected.encode(), given.strip().encode()):
            raise PermanentError("HubSpot webhook signature does not match (wrong client_secret or altered body)")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[InboundEvent]:
        try:
            items = json.loads(body)
        except ValueError:
            raise PermanentError("HubSpot webhook body is not JSON") from None
        if not isinstance(items, list):
            raise PermanentError("HubSpot webhook body must be a JSON array of events")
        stage_property = self.settings.get("stage_property") or "lifecyclestage"
        stage_map = self.settings.get("stage_map") or {}
        events: list[InboundEvent] = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or "objectId" not in item or "subscriptionType" not in item:
                raise PermanentError(f"HubSpot webhook event #{index} lacks objectId or subscriptionType")
            kind, prop = item.get("subscriptionType"), item.get("propertyName")
            when = crm.iso_from_ms(item["occurredAt"]) if str(item.get("occurredAt", "")).isdigit() \
                else crm.iso_from_text(None)
            dedup = f"hubspot:{item.get('eventId')}" if item.get("eventId") is not None else None
            if kind == "company.propertyChange" and prop == stage_property:
                events.append(crm.stage_changed("hubspot", "company", str(item["objectId"]),
                                                item.get("propertyValue"), stage_map, when, dedup_key=dedup))
            elif kind == "deal.propertyChange" and prop == "dealstage":
                events.append(crm.opportunity("hubspot", str(item["objectId"]), when, stage_map,
                                              crm_stage=item.get("propertyValue"), dedup_key=dedup))
        return events

    # -- inbound: polling ---------------------------------------------------------------
    def poll(self, cursor: dict | None, max_pages: int | None = None) -> tuple[list[InboundEvent], dict]:
        """Changes since ``cursor`` (None: from the beginning), and the cursor to resume from."""
        budget = int(max_pages or self.settings.get("max_pages") or 50)
        return crm.poll_objects(cursor, ("companies", "deals"), budget, self._poll_object)

    def _poll_object(self, obj: str, mark: crm.Watermark, budget: int, events: list[InboundEvent]) -> bool:
        stage_property = self.settings.get("stage_property") or "lifecyclestage"
        properties = (["name", "domain", stage_property, "hs_lastmodifieddate"] if obj == "companies"
                      else DEAL_PROPERTIES)
        for _ in range(budget):
            # PublicObjectSearchRequest: sorts are property names (ascending; "-name" would
            # descend), and after, the offset, is required ("0" for the first page).
            body: dict[str, Any] = {
                "filterGroups": [], "properties": properties, "sorts": ["hs_lastmodifieddate"],
                "limit": int(self.settings.get("page_size") or 100), "after": str(mark.token or "0"),
            }
            if mark.since is not None:
                body["filterGroups"] = [{"filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(mark.since)}]}]
            self._pace()
            reply = self._call("POST", f"/crm/v3/objects/{obj}/search", json=body).json()
            rows = [(str(r["id"]), to_ms((r.get("properties") or {}).get("hs_lastmodifieddate")) or 0, r)
                    for r in reply.get("results") or []]
            fresh = [row for row in rows if mark.is_new(row[0], row[1])]
            if obj == "companies":
                events.extend(self._company_event(r, ms) for _, ms, r in fresh
                              if (r.get("properties") or {}).get(stage_property))
            elif fresh:
                events.extend(self._deal_events(fresh))
            for record_id, ms, _ in rows:
                mark.take(record_id, ms)
            if not ((reply.get("paging") or {}).get("next") or {}).get("after"):
                mark.token = None
                return True
            # The next search starts again at the watermark (a record changed meanwhile is
            # not skipped by shifting offsets); the few records already taken at exactly
            # that instant come back first and are skipped. Only a run of equal timestamps
            # as long as a page needs the offset past it.
            limit = int(self.settings.get("page_size") or 100)
            mark.token = str(len(mark.ids_at_since)) if len(mark.ids_at_since) >= limit else None
        return False

    def _pace(self) -> None:
        gap = 1.0 / float(self.settings.get("searches_per_second") or 4)
        wait = self._last_search + gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_search = time.monotonic()

    def _company_event(self, record: Mapping[str, Any], ms: int) -> InboundEvent:
        props = record.get("properties") or {}
        stage_property = self.settings.get("stage_property") or "lifecyclestage"
        return crm.stage_changed(
            "hubspot", "company", str(record["id"]), props.get(stage_property), self.settings.get("stage_map"),
            crm.iso_from_ms(ms), domain=crm.domain_of(props.get("domain")),
            dedup_key=f"hubspot:company:{record['id']}:{ms}", name=props.get("name"))

    def _deal_events(self, rows: list[tuple[str, int, Mapping[str, Any]]]) -> list[InboundEvent]:
        companies = self._deal_companies([record_id for record_id, _, _ in rows])
        domains = self._company_domains(sorted({c for c in companies.values() if c}))
        events = []
        for record_id, ms, record in rows:
            props = record.get("properties") or {}
            company = companies.get(record_id)
            events.append(crm.opportunity(
                "hubspot", record_id, crm.iso_from_ms(ms), self.settings.get("stage_map"),
                crm_stage=props.get("dealstage"), domain=domains.get(company) if company else None,
                dedup_key=f"hubspot:deal:{record_id}:{ms}", name=props.get("dealname"),
                amount=crm.to_number(props.get("amount")), currency=props.get("deal_currency_code"),
                created_at=props.get("createdate"), close_date=props.get("closedate"),
                pipeline=props.get("pipeline"), is_closed=props.get("hs_is_closed") == "true",
                is_won=props.get("hs_is_closed_won") == "true", account_crm_id=company))
        return events

    def _deal_companies(self, deal_ids: list[str]) -> dict[str, str | None]:
        """deal id -> its primary (else first) associated company id."""
        reply = self._call("POST", "/crm/v4/associations/deals/companies/batch/read",
                           json={"inputs": [{"id": d} for d in deal_ids]}, expect=(200, 207)).json()
        found: dict[str, str | None] = {}
        for result in reply.get("results") or []:
            targets = result.get("to") or []
            primary = [t for t in targets if any(a.get("typeId") == 5 for a in t.get("associationTypes") or [])]
            chosen = (primary or targets or [None])[0]
            found[str((result.get("from") or {}).get("id"))] = str(chosen["toObjectId"]) if chosen else None
        return found

    def _company_domains(self, company_ids: list[str]) -> dict[str, str | None]:
        if not company_ids:
            return {}
        reply = self._call("POST", "/crm/v3/objects/companies/batch/read", expect=(200, 207), json={
            "properties": ["domain", "name"], "propertiesWithHistory": [],
            "inputs": [{"id": c} for c in company_ids]}).json()
        return {str(r["id"]): crm.domain_of((r.get("properties") or {}).get("domain"))
                for r in reply.get("results") or []}

    # -- outbound: tasks ------------------------------------------------------------------
    def send(self, batch: list[Touch]) -> list[TouchResult]:
        return crm.send_tasks(batch, self._create_task, "HubSpot")

    def _create_task(self, touch: Touch) -> str:
        company = crm.account_crm_id(touch.account, self.name, self.type)
        if not company:
            raise PermanentError("the account has no HubSpot company id (crm_id); sync it from HubSpot first")
        payload = touch.payload
        due = payload.get("due")
        when = f"{due}T09:00:00Z" if due and len(str(due)) == 10 else (due or datetime.now(UTC).isoformat())
        properties = {
            "hs_task_subject": str(payload.get("title") or "Follow up"),
            "hs_task_body": str(payload.get("body") or payload.get("message") or
                                f"From ABM playbook {touch.playbook.get('name') or ''}".strip()),
            "hs_timestamp": when, "hs_task_status": "NOT_STARTED", "hs_task_type": "TODO",
        }
        owner = self._owner(crm.owner_email(payload, touch.account), touch.account.get("crm_owner_id"),
                            str(company))
        if owner:
            properties["hubspot_owner_id"] = owner
        unique = self.settings.get("task_id_property")
        if unique:
            return self._upsert_task(touch.key, unique, properties, str(company))
        reply = self._call("POST", "/crm/v3/objects/tasks", json={
            "properties": properties,
            "associations": [{"to": {"id": str(company)}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_COMPANY}]}],
        }).json()
        return str(reply.get("id"))

    def _upsert_task(self, key: str, unique: str, properties: dict[str, Any], company: str) -> str:
        """The task upserted by the touch's key (``batch/upsert`` with ``idProperty``), then
        associated with its company by a PUT: a repeat of either changes nothing."""
        response = self._call("POST", "/crm/v3/objects/tasks/batch/upsert", json={"inputs": [
            {"id": key, "idProperty": unique, "properties": properties}]})
        results = response.json().get("results") or []
        if not results:
            raise PermanentError(f"HubSpot upserted no task: {provider_message(response)}")
        task = str(results[0]["id"])
        self._call("PUT", f"/crm/v4/objects/tasks/{task}/associations/companies/{company}", json=[
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_COMPANY}])
        return task

    def _owner(self, email: str | None, account_owner: Any, company: str) -> str | None:
        if email:
            if email not in self._owners:
                found = self._call("GET", "/crm/v3/owners", params={"email": email, "limit": 1}).json()
                results = found.get("results") or []
                self._owners[email] = str(results[0]["id"]) if results else None
            if self._owners[email]:
                return self._owners[email]
        if account_owner:
            return str(account_owner)
        def missing(response: requests.Response) -> ConnectorError | None:
            if response.status_code == 404:
                return PermanentError(f"HubSpot has no company {company} (the account's crm_id); "
                                      "it may have been deleted or merged")
            return self._classify(response)

        record = self.client.get(f"/crm/v3/objects/companies/{company}",
                                 params={"properties": "hubspot_owner_id"}, classify=missing).json()
        return (record.get("properties") or {}).get("hubspot_owner_id") or None

    # -- outbound: scores -----------------------------------------------------------------
    def write_scores(self, updates: list[dict]) -> list[crm.WriteResult]:
        """Write score and level to the configured company properties; one result per update."""
        parsed = crm.parse_score_updates(updates)
        score_prop = self.settings.get("score_property") or "abm_engagement_score"
        level_prop = self.settings.get("level_property") or "abm_engagement_level"
        failed: dict[str, str] = {}
        for start in range(0, len(parsed), BATCH_LIMIT):
            part = parsed[start:start + BATCH_LIMIT]
            inputs = [{"id": u.crm_id, "properties": {score_prop: str(u.score), level_prop: u.level or ""}}
                      for u in part]
            failed.update(self._batch_update(inputs))
        return [crm.WriteResult(u.crm_id, u.crm_id not in failed, failed.get(u.crm_id)) for u in parsed]

    def _batch_update(self, inputs: list[dict[str, Any]]) -> dict[str, str]:
        """POST one batch update; the ids HubSpot refused, with its reason (re-sending the rest)."""
        failed: dict[str, str] = {}
        for _ in range(3):
            response = self._call("POST", "/crm/v3/objects/companies/batch/update",
                                  json={"inputs": inputs}, expect=(200, 207, 400, 404))
            body = response.json() if response.content else {}
            errors = body.get("errors") or ([body] if response.status_code in (400, 404) else [])
            refused = {str(i): str(e.get("message") or e.get("category"))
                       for e in errors for i in (e.get("context") or {}).get("ids") or []}
            failed.update(refused)
            if response.status_code in (200, 207):
                return failed
            if not refused:
                raise PermanentError(f"HubSpot rejected the score update (HTTP {response.status_code}): "
                                     f"{provider_message(response)}")
            inputs = [i for i in inputs if i["id"] not in refused]
            if not inputs:
                return failed
        failed.update({i["id"]: "HubSpot kept refusing this batch" for i in inputs})
        return failed

    # -- outbound: the timeline --------------------------------------------------------------
    def write_timeline(self, entries: list[dict]) -> list[crm.WriteResult]:
        """Each entry as a note on its company's timeline (``notes/batch/create``, 100 a request);
        one result per entry, matched by ``objectWriteTraceId`` (the entry's key)."""
        parsed = crm.parse_timeline_entries(entries)
        done: dict[str, crm.WriteResult] = {}
        for start in range(0, len(parsed), BATCH_LIMIT):
            part = parsed[start:start + BATCH_LIMIT]
            inputs = [{
                "objectWriteTraceId": e.key,
                "properties": {"hs_timestamp": e.occurred_at, "hs_note_body": note_html(e)},
                "associations": [{"to": {"id": e.crm_id}, "types": [
                    {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_COMPANY}]}],
            } for e in part]
            response = self._call("POST", "/crm/v3/objects/notes/batch/create", json={"inputs": inputs},
                                  expect=(200, 201, 207))
            body = response.json() if response.content else {}
            written = {str(r.get("objectWriteTraceId")): str(r.get("id")) for r in body.get("results") or []}
            errors = [str(e.get("message") or e.get("category")) for e in body.get("errors") or []]
            every = response.status_code in (200, 201) and len(body.get("results") or []) == len(part)
            for entry in part:
                ok = entry.key in written or every
                done[entry.key] = crm.WriteResult(entry.crm_id, ok, None if ok else
                                                  "; ".join(errors) or "HubSpot created no note for it")
        return [done[e.key] for e in parsed]

    # -- checks -----------------------------------------------------------------------------
    def test(self) -> str:
        def explain(response: requests.Response) -> ConnectorError | None:
            special = self._classify(response)
            if special is not None:
                return special
            if response.status_code == 404:
                return PermanentError("HubSpot: the API answered 404 at this base_url; check base_url")
            return None

        reply = self.client.get("/crm/v3/objects/companies", params={"limit": 1}, classify=explain).json()
        return f"HubSpot is reachable with this token ({len(reply.get('results') or [])} company read)"
