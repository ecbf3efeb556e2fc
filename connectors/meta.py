"""Meta (Facebook/Instagram) Custom Audiences from hashed contact emails.

An ``audience`` touch (``payload``: ``list``, ``action`` add|remove) adds or removes
the account's contacts (the touch's ``contact`` and the account dict's ``contacts``,
shape in :mod:`connectors.audiences`) to the Custom Audience named ``list``. Only the
SHA-256 of each email leaves the process (schema ``EMAIL_SHA256``).

Per list and action, the identifiers go in one upload session: ``batch_seq`` from 1,
at most 10,000 records a request, ``last_batch_flag`` on the last one. The list name
maps to an audience id kept in ``self.context.state["meta"]`` (persisted by the
caller); a missing audience is looked up by name and else created.

Meta signals throttling in the error body (codes 4, 17, 613; also 1, 2 and 80003,
its transient and audience-rate codes) rather than with ``Retry-After``: those are
retryable, waiting as long as the ``X-Business-Use-Case-Usage`` header's
``estimated_time_to_regain_access`` says when present. Code 190 is a bad or expired
token. Meta answers how many entries it found invalid: the touches whose identifiers
appear in ``invalid_entry_samples`` fail, and every session's counts are kept in
``self.last_report`` (and logged, counts only).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import requests

from connectors.audiences import chunks, group_by_list, in_order, people_of
from connectors.base import Connector, ConnectorError, PermanentError, RetryableError, Touch, TouchResult
from connectors.http import HttpClient, parse_retry_after, redact
from connectors.schema import base_url, object_schema, secret, timeout_of
from connectors.versions import default_version

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = default_version("meta")  # see connectors/versions.py
RECORDS_PER_REQUEST = 10_000
THROTTLE_CODES = {4, 17, 613, 1, 2, 80003}
TOKEN_CODES = {190, 102}


def meta_normalized_email(email: str) -> str:
    """An email as Meta's Business SDK normalises it before hashing (``CustomAudienceMixin.
    format_params``): spaces, control characters and dots stripped at both ends, lowercased.
    A trailing dot kept would hash to an identifier Meta never matches."""
    return email.strip(" \t\r\n\0\x0b.").lower()


def meta_error(response: requests.Response) -> dict[str, Any] | None:
    if response.status_code < 400:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, Mapping) else None
    return error if isinstance(error, Mapping) else None


def regain_seconds(response: requests.Response) -> float | None:
    """Meta's own backoff hint: minutes until access is regained, from the usage header."""
    raw = response.headers.get("X-Business-Use-Case-Usage")
    if not raw:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes = [entry.get("estimated_time_to_regain_access") or 0
               for entries in usage.values() if isinstance(entries, list)
               for entry in entries if isinstance(entry, Mapping)]
    longest = max(minutes, default=0)
    return float(longest) * 60 if longest else None


class MetaConnector(Connector):
    type = "meta"
    channels = ("ads",)
    max_batch = RECORDS_PER_REQUEST
    rate_limit = (60, 60)
    settings_schema = object_schema(
        {
            "access_token": secret("A system-user access token with ads_management."),
            "ad_account_id": {"type": "string", "pattern": "^(act_)?[0-9]+$",
                              "description": "The ad account id, with or without act_."},
            "api_version": {"type": "string", "pattern": "^v[0-9]+\\.0$", "default": DEFAULT_VERSION},
            "customer_file_source": {
                "enum": ["USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"],
                "default": "USER_PROVIDED_ONLY",
                "description": "Where the audiences' data comes from (asked by Meta on creation)."},
            "base_url": base_url(DEFAULT_BASE_URL),
        },
        ["access_token", "ad_account_id"],
    )

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"access_token": "EAAB-example-token", "ad_account_id": "act_1234567890", "base_url": base_url}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_report: list[dict[str, Any]] = []

    @property
    def client(self) -> HttpClient:
        if not hasattr(self, "_client"):
            root = (self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
            self._client = HttpClient(
                "Meta", f"{root}/{self.settings.get('api_version') or DEFAULT_VERSION}",
                timeout=timeout_of(self.settings), secrets=[self.settings["access_token"]],
            )
        return self._client

    @property
    def account(self) -> str:
        raw = str(self.settings["ad_account_id"])
        return raw if raw.startswith("act_") else f"act_{raw}"

    def rate_scope(self) -> str:
        """Meta counts calls per ad account: connectors on the same account share a bucket."""
        return f"meta:{self.account}"

    @property
    def token(self) -> str:
        return self.settings["access_token"]

    def _audiences(self) -> dict[str, str]:
        return self.context.state.setdefault("meta", {}).setdefault("audiences", {})

    def _classify(self, response: requests.Response, audience: str | None = None) -> ConnectorError | None:
        error = meta_error(response)
        if error is None:
            return None
        code, sub = error.get("code"), error.get("error_subcode")
        message = redact(str(error.get("message") or "no message"), [self.token])
        if code in THROTTLE_CODES:
            wait = regain_seconds(response)
            if wait is None:
                wait = parse_retry_after(response.headers.get("Retry-After"))
            return RetryableError(f"Meta is throttling this app (code {code}): {message}; retry later",
                                  retry_after=wait)
        if code in TOKEN_CODES:
            return PermanentError(f"Meta refused the access token (code {code}): {message}; "
                                  "paste a fresh token in the connector's settings")
        if audience is not None and code == 100 and sub == 33:
            for name in [n for n, i in self._audiences().items() if i == audience]:
                del self._audiences()[name]
            return RetryableError(f"Meta audience {audience} no longer exists; it will be created again on retry")
        return None

    # -- outbound -----------------------------------------------------------------
    def send(self, batch: list[Touch]) -> list[TouchResult]:
        groups, results = group_by_list(batch)
        self.last_report = []
        for (name, action), touches in groups.items():
            owners: dict[str, list[int]] = {}
            for touch in touches:
                for person in people_of(touch, meta_normalized_email):
                    owners.setdefault(person.email_sha256, []).append(touch.id)
            with_people = {tid for ids in owners.values() for tid in ids}
            for touch in touches:
                if touch.id not in with_people:
                    results.append(TouchResult.failure(touch, "no contact of this account has a usable email"))
            if not owners:
                continue
            audience = self._audience(name)
            invalid = self._upload(audience, name, action, list(owners))
            bad_touches: dict[int, int] = {}
            for digest in invalid:
                for tid in owners.get(digest, []):
                    bad_touches[tid] = bad_touches.get(tid, 0) + 1
            for touch in touches:
                if touch.id not in with_people:
                    continue
                if touch.id in bad_touches:
                    results.append(TouchResult.failure(
                        touch, f"Meta found {bad_touches[touch.id]} of this account's identifiers invalid"))
                else:
                    results.append(TouchResult.success(touch, audience))
        return in_order(batch, results)

    def _audience(self, name: str) -> str:
        audiences = self._audiences()
        if name in audiences:
            return audiences[name]
        found = self._find_audience(name)
        if found is None:
            response = self.client.post(f"/{self.account}/customaudiences", data={
                "name": name, "subtype": "CUSTOM", "description": f"ABM list {name}",
                "customer_file_source": self.settings.get("customer_file_source") or "USER_PROVIDED_ONLY",
                "access_token": self.token,
            }, classify=self._classify)
            found = str(response.json()["id"])
        audiences[name] = found
        return found

    def _find_audience(self, name: str) -> str | None:
        url: str | None = f"/{self.account}/customaudiences"
        params: dict[str, Any] | None = {"fields": "id,name", "limit": 500, "access_token": self.token}
        for _ in range(20):
            if url is None:
                return None
            data = self.client.get(url, params=params, classify=self._classify).json()
            for audience in data.get("data") or []:
                if audience.get("name") == name:
                    return str(audience["id"])
            url, params = (data.get("paging") or {}).get("next"), None
        return None

    def _upload(self, audience: str, name: str, action: str, digests: list[str]) -> set[str]:
        """One session of uploads; the identifiers Meta sampled as invalid."""
        session_id = secrets.randbits(62) + 1
        parts = list(chunks(digests, RECORDS_PER_REQUEST))
        invalid: set[str] = set()
        report = {"list": name, "action": action, "audience_id": audience, "session_id": session_id,
                  "num_received": 0, "num_invalid_entries": 0, "invalid_entry_samples": []}
        for seq, part in enumerate(parts, start=1):
            session = {"session_id": session_id, "batch_seq": seq, "last_batch_flag": seq == len(parts),
                       "estimated_num_total": len(digests)}
            params = {"payload": json.dumps({"schema": "EMAIL_SHA256", "data": part}),
                      "session": json.dumps(session), "access_token": self.token}
            # As Meta's SDK does: a POST's parameters in the form body, a DELETE's in the query.
            where = "data" if action == "add" else "params"
            response = self.client.request(
                "POST" if action == "add" else "DELETE", f"/{audience}/users", **{where: params},
                classify=lambda r: self._classify(r, audience),
            )
            reply = response.json()
            report["num_received"] += int(reply.get("num_received") or 0)
            report["num_invalid_entries"] += int(reply.get("num_invalid_entries") or 0)
            samples = reply.get("invalid_entry_samples") or {}
            sampled = list(samples) if isinstance(samples, (Mapping, list)) else []
            report["invalid_entry_samples"].extend(sampled)
            invalid.update(s for s in sampled if isinstance(s, str))
        self.last_report.append(report)
        if report["num_invalid_entries"]:
            log.warning("meta %s: audience %s %s: %d received, %d invalid", self.name, audience, action,
                        report["num_received"], report["num_invalid_entries"])
        else:
            log.info("meta %s: audience %s %s: %d received", self.name, audience, action, report["num_received"])
        return invalid

    # -- checks -------------------------------------------------------------------
    def test(self) -> str:
        def explain(response: requests.Response) -> ConnectorError | None:
            special = self._classify(response)
            if special is not None:
                return special
            error = meta_error(response)
            if error is None and response.status_code < 400:
                return None
            code = (error or {}).get("code")
            if response.status_code == 404 or code in (100, 803):
                return PermanentError(f"Meta: there is no ad account {self.account} this token can see "
                                      f"(code {code}); check ad_account_id")
            if response.status_code == 403 or code in (200, 10, 294):
                return PermanentError(f"Meta: this token has no access to ad account {self.account} "
                                      f"(code {code}); grant ads_management to the system user")
            return None

        data = self.client.get(f"/{self.account}", params={"fields": "name,account_status",
                                                           "access_token": self.token}, classify=explain).json()
        return f"Meta ad account {self.account} ({data.get('name', '?')}) is reachable with this token"
