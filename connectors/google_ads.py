"""Google Ads Customer Match: hashed contact emails into CRM-based user lists.

An ``audience`` touch (``payload``: ``list``, ``action`` add|remove) adds or removes
the account's contacts (the touch's ``contact`` and the account dict's ``contacts``,
shape in :mod:`connectors.audiences`) to the Customer Match user list named ``list``.
Only ``hashedEmail`` (SHA-256, 64 lowercase hex) leaves the process, one key per
identifier object. Each job carries the uploaded people's consent
(``consent_ad_user_data``, ``consent_ad_personalization``), which Google requires for
users in the EEA.

Per list and action: an offline user data job is created, operations are added in
requests of at most 10,000 (Google's recommendation; the hard limit is 100,000) with
``enablePartialFailure``, and the job is run; Google processes it asynchronously.
The per-operation errors of a partial failure are mapped back to the touches whose
identifiers they name. List name -> user list resource name is kept in
``self.context.state["google_ads"]`` (persisted by the caller); a missing list is
looked up by name, then created as a CRM-based (CONTACT_INFO) list.

``RESOURCE_EXHAUSTED`` (quota) and ``CONCURRENT_MODIFICATION`` are retryable, waiting
the ``retryDelay`` Google gives when it gives one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import requests

from connectors.audiences import chunks, group_by_list, in_order, people_of
from connectors.base import Connector, ConnectorError, PermanentError, RetryableError, Touch, TouchResult
from connectors.http import HttpClient, parse_retry_after, redact
from connectors.schema import base_url, object_schema, secret, timeout_of
from connectors.versions import default_version

DEFAULT_BASE_URL = "https://googleads.googleapis.com"
DEFAULT_VERSION = default_version("google_ads")  # see connectors/versions.py
OPERATIONS_PER_REQUEST = 10_000
RETRYABLE_STATUS = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "INTERNAL"}
RETRYABLE_CODES = {"RESOURCE_EXHAUSTED", "RESOURCE_TEMPORARILY_EXHAUSTED", "CONCURRENT_MODIFICATION",
                   "TRANSIENT_ERROR", "INTERNAL_ERROR"}
CUSTOMER_ID = "^[0-9]{3}-?[0-9]{3}-?[0-9]{4}$"


def _duration(text: Any) -> float | None:
    match = re.fullmatch(r"\s*([0-9.]+)s\s*", str(text or ""))
    return float(match.group(1)) if match else None


def failure_details(error: Mapping[str, Any]) -> tuple[list[dict[str, Any]], float | None]:
    """The GoogleAdsFailure errors inside an error body, and any retryDelay it carries."""
    errors: list[dict[str, Any]] = []
    delay: float | None = None
    for detail in error.get("details") or []:
        if not isinstance(detail, Mapping):
            continue
        delay = delay or _duration(detail.get("retryDelay"))
        for item in detail.get("errors") or []:
            if isinstance(item, Mapping):
                errors.append(dict(item))
                quota = (item.get("details") or {}).get("quotaErrorDetails") or {}
                delay = delay or _duration(quota.get("retryDelay"))
    return errors, delay


def error_codes(item: Mapping[str, Any]) -> list[str]:
    return [str(v) for v in (item.get("errorCode") or {}).values()]


def operation_index(item: Mapping[str, Any]) -> int | None:
    for element in (item.get("location") or {}).get("fieldPathElements") or []:
        if element.get("fieldName") == "operations" and "index" in element:
            return int(element["index"])
    return None


class GoogleAdsConnector(Connector):
    type = "google_ads"
    channels = ("ads",)
    max_batch = OPERATIONS_PER_REQUEST
    rate_limit = (10, 1)
    settings_schema = object_schema(
        {
            "access_token": secret("OAuth access token for the Google Ads API."),
            "developer_token": secret("The Google Ads developer token."),
            "customer_id": {"type": "string", "pattern": CUSTOMER_ID,
                            "description": "The advertiser's customer id (123-456-7890)."},
            "login_customer_id": {"type": "string", "pattern": CUSTOMER_ID,
                                  "description": "The manager account's id, when acting through one."},
            "api_version": {"type": "string", "pattern": "^v[0-9]+$", "default": DEFAULT_VERSION},
            "consent_ad_user_data": {
                "enum": ["GRANTED", "DENIED"], "default": "GRANTED",
                "description": "Whether the people you upload agreed to their data being sent to Google "
                               "for advertising (Customer Match consent, required for users in the EEA)."},
            "consent_ad_personalization": {
                "enum": ["GRANTED", "DENIED"], "default": "GRANTED",
                "description": "Whether they agreed to personalised advertising (Customer Match consent)."},
            "membership_life_span_days": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 540},
            "base_url": base_url(DEFAULT_BASE_URL),
        },
        ["access_token", "developer_token", "customer_id"],
    )

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"access_token": "ya29.example-token", "developer_token": "example-developer-token",
                "customer_id": "123-456-7890", "base_url": base_url}

    @property
    def customer(self) -> str:
        return str(self.settings["customer_id"]).replace("-", "")

    @property
    def client(self) -> HttpClient:
        if not hasattr(self, "_client"):
            root = (self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
            token, dev = self.settings["access_token"], self.settings["developer_token"]
            headers = {"Authorization": f"Bearer {token}", "developer-token": dev}
            if self.settings.get("login_customer_id"):
                headers["login-customer-id"] = str(self.settings["login_customer_id"]).replace("-", "")
            self._client = HttpClient(
                "Google Ads", f"{root}/{self.settings.get('api_version') or DEFAULT_VERSION}", headers=headers,
                timeout=timeout_of(self.settings), secrets=[token, dev],
            )
        return self._client

    def _lists(self) -> dict[str, str]:
        return self.context.state.setdefault("google_ads", {}).setdefault("user_lists", {})

    def _classify(self, response: requests.Response) -> ConnectorError | None:
        if response.status_code < 400:
            return None
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            return None
        if not isinstance(error, Mapping):
            return None
        items, delay = failure_details(error)
        codes = {c for item in items for c in error_codes(item)}
        text = ("; ".join(str(i.get("message")) for i in items if i.get("message"))
                or str(error.get("message") or f"HTTP {response.status_code}"))
        text = redact(text, self.client.secrets)
        status = error.get("status")
        # A 429 or 5xx is retryable whatever its body says: a proxy or Google's front end
        # answers {"error": {"code": 502}} with no status at all.
        throttled = response.status_code == 429 or response.status_code >= 500
        if throttled or status in RETRYABLE_STATUS or codes & RETRYABLE_CODES:
            delay = delay if delay is not None else parse_retry_after(response.headers.get("Retry-After"))
            reason = status or ", ".join(sorted(codes)) or f"HTTP {response.status_code}"
            return RetryableError(f"Google Ads is busy ({reason}): {text}; retry later", retry_after=delay)
        if response.status_code == 401 or status == "UNAUTHENTICATED":
            return PermanentError(f"Google Ads refused the credentials (HTTP {response.status_code}): {text}; "
                                  "check access_token and developer_token")
        if response.status_code == 403 or status == "PERMISSION_DENIED":
            return PermanentError(f"Google Ads: no access to customer {self.customer} (HTTP 403): {text}; "
                                  "check customer_id and login_customer_id")
        return PermanentError(f"Google Ads rejected the request (HTTP {response.status_code}): {text}")

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.post(path, json=body, classify=self._classify).json() or {}

    # -- outbound -----------------------------------------------------------------
    def send(self, batch: list[Touch]) -> list[TouchResult]:
        groups, results = group_by_list(batch)
        for (name, action), touches in groups.items():
            owners: dict[str, list[int]] = {}
            for touch in touches:
                for person in people_of(touch):
                    owners.setdefault(person.email_sha256, []).append(touch.id)
            covered = {tid for ids in owners.values() for tid in ids}
            errors: dict[int, list[str]] = {t.id: [] for t in touches}
            if owners:
                user_list = self._user_list(name)
                for digest, message in self._upload(user_list, action, list(owners)).items():
                    for tid in owners[digest]:
                        errors[tid].append(message)
            for touch in touches:
                if touch.id not in covered:
                    results.append(TouchResult.failure(touch, "no contact of this account has a usable email"))
                elif errors[touch.id]:
                    results.append(TouchResult.failure(touch, "Google Ads rejected "
                                                       f"{len(errors[touch.id])} identifier(s): {errors[touch.id][0]}"))
                else:
                    results.append(TouchResult.success(touch, self._lists()[name]))
        return in_order(batch, results)

    def _user_list(self, name: str) -> str:
        lists = self._lists()
        if name in lists:
            return lists[name]
        quoted = name.replace("\\", "\\\\").replace("'", "\\'")
        found = self._post(f"/customers/{self.customer}/googleAds:search", {
            "query": f"SELECT user_list.resource_name, user_list.name FROM user_list "
                     f"WHERE user_list.name = '{quoted}'"})
        for row in found.get("results") or []:
            resource = (row.get("userList") or {}).get("resourceName")
            if resource:
                lists[name] = resource
                return resource
        created = self._post(f"/customers/{self.customer}/userLists:mutate", {"operations": [{"create": {
            "name": name, "description": f"ABM list {name}",
            "membershipLifeSpan": int(self.settings.get("membership_life_span_days") or 540),
            "crmBasedUserList": {"uploadKeyType": "CONTACT_INFO", "dataSourceType": "FIRST_PARTY"},
        }}]})
        resource = ((created.get("results") or [{}])[0]).get("resourceName")
        if not resource:
            raise PermanentError(f"Google Ads created user list {name!r} but returned no resource name")
        lists[name] = resource
        return resource

    def _upload(self, user_list: str, action: str, digests: list[str]) -> dict[str, str]:
        """Create, fill and run one job; the identifiers Google rejected, with its reason."""
        job = self._post(f"/customers/{self.customer}/offlineUserDataJobs:create", {"job": {
            "type": "CUSTOMER_MATCH_USER_LIST",
            "customerMatchUserListMetadata": {"userList": user_list, "consent": {
                "adUserData": self.settings.get("consent_ad_user_data") or "GRANTED",
                "adPersonalization": self.settings.get("consent_ad_personalization") or "GRANTED"}},
        }}).get("resourceName")
        if not job:
            raise RetryableError("Google Ads created an offline user data job but returned no resource name")
        verb = "create" if action == "add" else "remove"
        rejected: dict[str, str] = {}
        for part in chunks(digests, OPERATIONS_PER_REQUEST):
            reply = self._post(f"/{job}:addOperations", {
                "operations": [{verb: {"userIdentifiers": [{"hashedEmail": d}]}} for d in part],
                "enablePartialFailure": True,
            })
            partial = reply.get("partialFailureError")
            if isinstance(partial, Mapping):
                items, _ = failure_details(partial)
                for item in items:
                    index = operation_index(item)
                    if index is not None and 0 <= index < len(part):
                        rejected[part[index]] = str(item.get("message") or ", ".join(error_codes(item)))
        if len(rejected) < len(digests):
            self._post(f"/{job}:run", {})
        return rejected

    # -- checks -------------------------------------------------------------------
    def test(self) -> str:
        data = self._post(f"/customers/{self.customer}/googleAds:search", {
            "query": "SELECT customer.id, customer.descriptive_name FROM customer LIMIT 1"})
        rows = data.get("results") or [{}]
        label = (rows[0].get("customer") or {}).get("descriptiveName")
        return f"Google Ads customer {self.customer}" + (f" ({label})" if label else "") + " is reachable"
