"""Salesforce: Accounts and Opportunities in by SOQL polling, tasks, scores and digests out.

In: :meth:`SalesforceConnector.poll` runs ``SELECT ... WHERE SystemModstamp >= since
ORDER BY SystemModstamp, Id`` on Account and Opportunity (``SystemModstamp`` moves on
every change, system ones included, and is indexed: Salesforce's advice for
replication), follows ``nextRecordsUrl`` and returns ``stage_changed`` events (the
Account's ``stage_field``, ``Type`` by default, mapped through ``stage_map``) and
``opportunity`` events (shapes in :mod:`connectors.crm`) with the cursor to resume
from, which the caller persists. At most ``max_pages`` pages per object a call;
``cursor["more"]`` says whether more are waiting. A stored ``nextRecordsUrl`` whose
query locator expired is replaced by a fresh query from the watermark. If ``poll``
raises, the caller keeps the old cursor and nothing is lost.

Within the org's daily API limit: a poll every minute costs at least two calls (2,880 a
day). Every answer's ``Sforce-Limit-Info: api-usage=USED/MAX`` (the org's rolling 24
hours) is kept in the cursor (``cursor["api"]``) with the calls this connector made
today (UTC). When the org has used ``api_ceiling_percent`` of its limit (80 by
default), polls back off: none for ``backoff_seconds`` (900), then one to read the
usage again. A poll that backs off makes no call and returns no events.

Out: ``task`` touches become Tasks (``POST /sobjects/Task``) on the Account (the
account dict's ``crm_id``, or ``crm_ids[<connector name>]``), owned by the active
user whose email is the payload's ``to`` (else the account's ``owner``), else by the
Account's owner in Salesforce. :meth:`SalesforceConnector.write_scores` PATCHes
score and level onto Accounts (configurable field names) through the sObject
Collections endpoint, 200 records a request, each record succeeding or failing alone.

Errors are lists of ``{message, errorCode}``: ``INVALID_SESSION_ID`` is a bad or
expired token (permanent), ``REQUEST_LIMIT_EXCEEDED`` the org's API limit (retryable).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

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
from connectors.http import HttpClient, provider_message
from connectors.schema import STAGE_MAP, object_schema, secret, timeout_of

COLLECTION_LIMIT = 200
FIELD = "^[A-Za-z][A-Za-z0-9_]*$"
RETRYABLE_CODES = {"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"}
OPPORTUNITY_FIELDS = ["Id", "Name", "Amount", "StageName", "CloseDate", "CreatedDate", "IsClosed", "IsWon",
                      "AccountId", "Account.Website", "LastModifiedDate", "SystemModstamp"]
LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


class LocatorExpired(PermanentError):
    """A stored nextRecordsUrl is no longer valid: query again from the watermark."""


def error_codes(response: requests.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    items = body if isinstance(body, list) else [body]
    return [str(i.get("errorCode")) for i in items if isinstance(i, Mapping) and i.get("errorCode")]


#: SOQL's quoted-string escape sequences ("Quoted String Escape Sequences", SOQL and SOSL reference).
SOQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r",
                              "\t": "\\t", "\b": "\\b", "\f": "\\f"})


def soql_string(value: str) -> str:
    """A SOQL string literal: quoted, every character SOQL escapes escaped."""
    return "'" + value.translate(SOQL_ESCAPES) + "'"


def soql_datetime(modified: str) -> str:
    """SOQL literal for a SystemModstamp as Salesforce returns it (``...000+0000``, UTC)."""
    return modified[:19] + "Z"


class ApiBudget:
    """The org's API usage as Salesforce last reported it, and this connector's calls today.

    Kept in the poll cursor (``state()``), so that it survives between runs."""

    def __init__(self, state: Mapping[str, Any] | None, ceiling_percent: float, backoff_seconds: float):
        state = dict(state or {})
        self.used, self.max = state.get("used"), state.get("max")
        today = datetime.now(UTC).date().isoformat()
        self.day = today
        self.calls = int(state.get("calls") or 0) if state.get("day") == today else 0
        self.backoff_until = float(state.get("backoff_until") or 0)
        self.ceiling, self.backoff_seconds = ceiling_percent, backoff_seconds

    def observe(self, response: requests.Response) -> None:
        self.calls += 1
        match = LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info") or "")
        if match:
            self.used, self.max = int(match.group(1)), int(match.group(2))

    def low(self) -> bool:
        return bool(self.max) and self.used is not None and self.used * 100 >= self.ceiling * self.max

    def backing_off(self, now: float) -> bool:
        """True while a back-off (started by :meth:`settle`) runs."""
        return now < self.backoff_until

    def settle(self, now: float) -> None:
        """After a poll: back off for a while when the org's usage is over the ceiling."""
        self.backoff_until = now + self.backoff_seconds if self.low() else 0.0

    def state(self) -> dict[str, Any]:
        return {"used": self.used, "max": self.max, "day": self.day, "calls": self.calls,
                "backoff_until": self.backoff_until}


class SalesforceConnector(Connector):
    type = "salesforce"
    channels = ("crm", "task")
    #: One task a call: a crash repeats at most one, and none with ``task_external_id_field``
    #: (the task is then upserted by the touch's key).
    max_batch = 1
    rate_limit = (25, 1)
    settings_schema = object_schema(
        {
            "access_token": secret("OAuth access token (session id) of the integration user."),
            "domain": {"type": "string", "pattern": "^[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*$",
                       "description": "My Domain name: 'acme' for https://acme.my.salesforce.com."},
            "base_url": {"type": "string", "pattern": "^https?://",
                         "description": "Instance URL; defaults to https://{domain}.my.salesforce.com."},
            "api_version": {"type": "string", "pattern": "^[0-9]{2}\\.[0-9]$", "default": "61.0"},
            "stage_map": STAGE_MAP,
            "stage_field": {"type": "string", "pattern": FIELD, "default": "Type",
                            "description": "The Account field that holds its stage."},
            "score_field": {"type": "string", "pattern": FIELD, "default": "ABM_Engagement_Score__c"},
            "level_field": {"type": "string", "pattern": FIELD, "default": "ABM_Engagement_Level__c"},
            "timeline_cadence": {
                "enum": ["off", "daily", "weekly"], "default": "off",
                "description": "How often each account's digest (touches, engagement, score breakdown) is "
                               "written to its CRM timeline; off writes none."},
            "batch_size": {"type": "integer", "minimum": 200, "maximum": 2000, "default": 2000,
                           "description": "Records per query page."},
            "max_pages": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
            "api_ceiling_percent": {"type": "number", "minimum": 1, "maximum": 100, "default": 80,
                                    "description": "Polls back off once the org has used this share of its "
                                                   "daily API requests."},
            "backoff_seconds": {"type": "integer", "minimum": 60, "maximum": 86400, "default": 900,
                                "description": "How long polls pause when the org's API usage is over the ceiling."},
            "task_external_id_field": {
                "type": "string", "pattern": FIELD,
                "description": "A custom Text field on Activity marked External ID (such as ABM_Touch_Key__c): "
                               "tasks are upserted by the touch's key, so a call repeated after a crash updates "
                               "the same Task instead of adding a second one."},
        },
        ["access_token"],
        anyOf=[{"required": ["domain"]}, {"required": ["base_url"]}],
    )

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"access_token": "00D000000000001!example-session", "base_url": base_url}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._users: dict[str, str | None] = {}
        self._budget: ApiBudget | None = None

    @property
    def root(self) -> str:
        if self.settings.get("base_url"):
            return str(self.settings["base_url"]).rstrip("/")
        if self.settings.get("domain"):
            return f"https://{self.settings['domain']}.my.salesforce.com"
        raise PermanentError("Salesforce needs 'domain' (or 'base_url') in the connector's settings")

    @property
    def api(self) -> str:
        return f"/services/data/v{self.settings.get('api_version') or '61.0'}"

    @property
    def client(self) -> HttpClient:
        if not hasattr(self, "_client"):
            token = self.settings["access_token"]
            self._client = HttpClient("Salesforce", self.root, headers={"Authorization": f"Bearer {token}"},
                                      timeout=timeout_of(self.settings), secrets=[token])
        return self._client

    def _classify(self, response: requests.Response) -> ConnectorError | None:
        if response.status_code < 400:
            return None
        codes = error_codes(response)
        text = provider_message(response)
        if "INVALID_SESSION_ID" in codes:
            return PermanentError(f"Salesforce: bad or expired token (INVALID_SESSION_ID): {text}; "
                                  "paste a fresh access token in the connector's settings")
        if set(codes) & RETRYABLE_CODES:
            return RetryableError(f"Salesforce is over its limits or busy ({', '.join(codes)}): {text}; "
                                  "retry later")
        if "INVALID_QUERY_LOCATOR" in codes:
            return LocatorExpired(text)
        return None

    def _get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.client.get(path, classify=self._observed, join="host", **kwargs)
        return response.json()

    def _observed(self, response: requests.Response) -> ConnectorError | None:
        """Count the call and read ``Sforce-Limit-Info``, then classify as usual."""
        if self._budget is not None:
            self._budget.observe(response)
        return self._classify(response)

    # -- inbound: polling ---------------------------------------------------------------
    def poll(self, cursor: dict | None, max_pages: int | None = None) -> tuple[list[InboundEvent], dict]:
        """Changes since ``cursor`` (None: from the beginning), and the cursor to resume from.

        Makes no call while the org's API usage keeps polls backing off (see the module
        docstring); the cursor then comes back as it was, ``more`` False."""
        cursor = dict(cursor or {})
        self._budget = ApiBudget(cursor.get("api"), float(self.settings.get("api_ceiling_percent") or 80),
                                 float(self.settings.get("backoff_seconds") or 900))
        now = self.now()
        if self._budget.backing_off(now):
            return [], {**cursor, "more": False, "api": self._budget.state()}
        budget = int(max_pages or self.settings.get("max_pages") or 50)
        try:
            events, cursor = crm.poll_objects(cursor, ("accounts", "opportunities"), budget, self._poll_object)
        finally:
            self._budget.settle(self.now())
        cursor["api"] = self._budget.state()
        return events, cursor

    @staticmethod
    def now() -> float:
        return time.time()

    def _soql(self, obj: str, since: str | None) -> str:
        if obj == "accounts":
            stage = self.settings.get("stage_field") or "Type"
            fields = ["Id", "Name", "Website", "OwnerId", stage, "LastModifiedDate", "SystemModstamp"]
            table = "Account"
        else:
            fields, table = OPPORTUNITY_FIELDS, "Opportunity"
        where = f" WHERE SystemModstamp >= {soql_datetime(since)}" if since else ""
        return f"SELECT {', '.join(dict.fromkeys(fields))} FROM {table}{where} ORDER BY SystemModstamp, Id"

    def _page(self, obj: str, mark: crm.Watermark) -> dict[str, Any]:
        headers = {"Sforce-Query-Options": f"batchSize={int(self.settings.get('batch_size') or 2000)}"}
        if mark.token:
            try:
                return self._get(mark.token, headers=headers)
            except LocatorExpired:
                mark.token = None
        return self._get(f"{self.api}/query", params={"q": self._soql(obj, mark.since)}, headers=headers)

    def _poll_object(self, obj: str, mark: crm.Watermark, budget: int, events: list[InboundEvent]) -> bool:
        for _ in range(budget):
            reply = self._page(obj, mark)
            for record in reply.get("records") or []:
                record_id, modified = str(record["Id"]), str(record.get("SystemModstamp") or "")
                if mark.is_new(record_id, modified):
                    event = self._event(obj, record)
                    if event is not None:
                        events.append(event)
                mark.take(record_id, modified)
            following = reply.get("nextRecordsUrl")
            if reply.get("done", True) or not following:
                mark.token = None
                return True
            mark.token = following
        return False

    def _event(self, obj: str, record: Mapping[str, Any]) -> InboundEvent | None:
        stage_map = self.settings.get("stage_map")
        when = crm.iso_from_text(record.get("LastModifiedDate"))
        dedup = f"salesforce:{record['Id']}:{record.get('SystemModstamp')}"
        if obj == "accounts":
            value = record.get(self.settings.get("stage_field") or "Type")
            if value in (None, ""):
                return None
            return crm.stage_changed("salesforce", "account", str(record["Id"]), value, stage_map, when,
                                     domain=crm.domain_of(record.get("Website")), dedup_key=dedup,
                                     name=record.get("Name"))
        account = record.get("Account") or {}
        return crm.opportunity(
            "salesforce", str(record["Id"]), when, stage_map, crm_stage=record.get("StageName"),
            domain=crm.domain_of(account.get("Website")), dedup_key=dedup, name=record.get("Name"),
            amount=crm.to_number(record.get("Amount")), close_date=record.get("CloseDate"),
            created_at=crm.iso_from_text(record["CreatedDate"]) if record.get("CreatedDate") else None,
            is_closed=bool(record.get("IsClosed")), is_won=bool(record.get("IsWon")),
            account_crm_id=record.get("AccountId"))

    # -- outbound: tasks ------------------------------------------------------------------
    def send(self, batch: list[Touch]) -> list[TouchResult]:
        return crm.send_tasks(batch, self._create_task, "Salesforce")

    def _create_task(self, touch: Touch) -> str:
        account = crm.account_crm_id(touch.account, self.name, self.type)
        if not account:
            raise PermanentError("the account has no Salesforce Account id (crm_id); sync it from Salesforce first")
        payload = touch.payload
        task: dict[str, Any] = {
            "Subject": str(payload.get("title") or "Follow up")[:255],
            "Description": str(payload.get("body") or payload.get("message") or
                               f"From ABM playbook {touch.playbook.get('name') or ''}".strip()),
            "WhatId": str(account), "Status": "Not Started", "Priority": "Normal",
        }
        if payload.get("due"):
            task["ActivityDate"] = str(payload["due"])[:10]
        owner = self._owner(crm.owner_email(payload, touch.account), touch.account.get("crm_owner_id"),
                            str(account))
        if owner:
            task["OwnerId"] = owner
        field = self.settings.get("task_external_id_field")
        if not field:
            reply = self.client.post(f"{self.api}/sobjects/Task", json=task, classify=self._classify).json()
            return str(reply.get("id"))
        # Upsert by external id: 201 created, 200 updated (a repeat), both with the id.
        path = f"{self.api}/sobjects/Task/{field}/{quote(touch.key, safe='')}"
        response = self.client.patch(path, json=task, classify=self._classify)
        if response.status_code == 204 or not response.content:  # API versions before 46.0 answer an update so
            response = self.client.get(path, params={"fields": "Id"}, classify=self._classify)
        return str(response.json().get("id") or response.json().get("Id"))

    def _owner(self, email: str | None, account_owner: Any, account: str) -> str | None:
        if email:
            if email not in self._users:
                soql = f"SELECT Id FROM User WHERE Email = {soql_string(email)} AND IsActive = true LIMIT 1"
                records = self._get(f"{self.api}/query", params={"q": soql}).get("records") or []
                self._users[email] = str(records[0]["Id"]) if records else None
            if self._users[email]:
                return self._users[email]
        if account_owner:
            return str(account_owner)

        def missing(response: requests.Response) -> ConnectorError | None:
            if response.status_code == 404:
                return PermanentError(f"Salesforce has no Account {account} (the account's crm_id); "
                                      "it may have been deleted or merged")
            return self._classify(response)

        record = self.client.get(f"{self.api}/sobjects/Account/{account}", params={"fields": "OwnerId"},
                                 classify=missing).json()
        return record.get("OwnerId")

    # -- outbound: scores -----------------------------------------------------------------
    def write_scores(self, updates: list[dict]) -> list[crm.WriteResult]:
        """PATCH score and level onto Accounts, 200 a request; one result per update, in order."""
        parsed = crm.parse_score_updates(updates)
        score_field = self.settings.get("score_field") or "ABM_Engagement_Score__c"
        level_field = self.settings.get("level_field") or "ABM_Engagement_Level__c"
        results: list[crm.WriteResult] = []
        for start in range(0, len(parsed), COLLECTION_LIMIT):
            part = parsed[start:start + COLLECTION_LIMIT]
            records = [{"attributes": {"type": "Account"}, "id": u.crm_id, score_field: u.score,
                        level_field: u.level} for u in part]
            reply = self.client.patch(f"{self.api}/composite/sobjects", json={"allOrNone": False,
                                                                               "records": records},
                                      classify=self._classify).json()
            if not isinstance(reply, list) or len(reply) != len(part):
                raise RetryableError(f"Salesforce answered {len(reply) if isinstance(reply, list) else 'no'} "
                                     f"results for {len(part)} Accounts")
            for update, outcome in zip(part, reply, strict=True):
                errors = outcome.get("errors") or []
                message = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors) or None
                results.append(crm.WriteResult(update.crm_id, bool(outcome.get("success")), message))
        return results

    # -- outbound: the timeline --------------------------------------------------------------
    def write_timeline(self, entries: list[dict]) -> list[crm.WriteResult]:
        """Each entry as a completed Task on its Account (Activity History), through the sObject
        Collections endpoint, 200 a request; one result per entry, in order."""
        parsed = crm.parse_timeline_entries(entries)
        results: list[crm.WriteResult] = []
        for start in range(0, len(parsed), COLLECTION_LIMIT):
            part = parsed[start:start + COLLECTION_LIMIT]
            records = [{"attributes": {"type": "Task"}, "WhatId": e.crm_id, "Subject": e.subject[:255],
                        "Description": e.body[:32000], "Status": "Completed", "Priority": "Normal",
                        "ActivityDate": e.occurred_at[:10], "TaskSubtype": "Task"} for e in part]
            reply = self.client.post(f"{self.api}/composite/sobjects", json={"allOrNone": False, "records": records},
                                     classify=self._classify).json()
            if not isinstance(reply, list) or len(reply) != len(part):
                raise RetryableError(f"Salesforce answered {len(reply) if isinstance(reply, list) else 'no'} "
                                     f"results for {len(part)} Tasks")
            for entry, outcome in zip(part, reply, strict=True):
                errors = outcome.get("errors") or []
                message = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors) or None
                results.append(crm.WriteResult(entry.crm_id, bool(outcome.get("success")), message))
        return results

    # -- checks -----------------------------------------------------------------------------
    def test(self) -> str:
        def explain(response: requests.Response) -> ConnectorError | None:
            special = self._classify(response)
            if special is not None:
                return special
            if response.status_code == 404:
                return PermanentError(f"Salesforce: no REST API v{self.settings.get('api_version') or '61.0'} "
                                      f"at this instance (HTTP 404); check domain, base_url and api_version")
            return None

        limits = self.client.get(f"{self.api}/limits", classify=explain).json()
        daily = limits.get("DailyApiRequests") or {}
        left = f"; {daily.get('Remaining')} of {daily.get('Max')} daily API requests left" if daily else ""
        return f"Salesforce is reachable with this token{left}"
