"""LinkedIn Matched Audiences: company lists and contact lists (DMP segments).

An ``audience`` touch (``payload``: ``list``, ``action`` add|remove) puts its account
in a LinkedIn list. Depending on ``list_type``:

- ``company``: one company element per touch, from the account dict's ``name``,
  ``domain``, ``country`` and, when known, ``linkedin_organization_urn``;
- ``user``: one user element per contact, identified by the SHA-256 of the email
  and nothing else (never the email, name, title or company in clear).
  The contacts are the touch's ``contact`` plus the account dict's ``contacts`` list
  (shape in :mod:`connectors.audiences`): ``[{"email", "first_name", "last_name",
  "title", "country"}]`` or ``[{"email_sha256"}]``;
- ``both``: both, in two segments (the contact one named ``"<list> (contacts)"``).

A list name maps to a DMP segment id kept in ``self.context.state["linkedin"]``,
which the caller persists (also when ``send`` raised: a segment created in a failed
call must not be created twice). A missing segment is looked up by name, then
created. LinkedIn answers 404 for a few seconds after creation: that is a
:class:`RetryableError`. Each BATCH_CREATE answer carries one status per element, and
a touch fails when any of its elements was rejected (with LinkedIn's reason).

Adding or removing the same member twice is harmless, so a batch that raises may
simply be sent again.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from connectors.audiences import Person, chunks, group_by_list, in_order, people_of
from connectors.base import Connector, PermanentError, RetryableError, Touch, TouchResult
from connectors.http import HttpClient, provider_message
from connectors.schema import base_url, object_schema, secret, timeout_of
from connectors.versions import default_version

DEFAULT_BASE_URL = "https://api.linkedin.com/rest"
DEFAULT_VERSION = default_version("linkedin")  # see connectors/versions.py
#: Elements per BATCH_CREATE call (LinkedIn's streaming limit; unconfirmed, kept conservative).
ELEMENTS_PER_CALL = 5000
#: How long after creation a 404 means "not ready yet" rather than "gone".
NOT_READY_WINDOW = 600.0
#: LinkedIn asks for 5 seconds between creating a segment and streaming to it.
NOT_READY_WAIT = 5.0
SEGMENT_TYPES = {"company": ("COMPANY",), "user": ("USER",), "both": ("COMPANY", "USER")}


class LinkedInConnector(Connector):
    type = "linkedin"
    channels = ("ads",)
    max_batch = ELEMENTS_PER_CALL
    rate_limit = (300, 60)  # company streaming calls a minute per member (users: 600)
    settings_schema = object_schema(
        {
            "access_token": secret("OAuth access token with the rw_dmp_segments scope."),
            "ad_account_id": {"type": "string", "pattern": "^[0-9]+$",
                              "description": "The sponsored ad account id (digits)."},
            "linkedin_version": {"type": "string", "pattern": "^20[0-9]{2}(0[1-9]|1[0-2])$",
                                 "default": DEFAULT_VERSION, "description": "LinkedIn-Version header, YYYYMM."},
            "list_type": {"enum": ["company", "user", "both"], "default": "company",
                          "description": "Company lists, contact lists (hashed emails), or both."},
            "source_platform": {"type": "string", "minLength": 1, "default": "LIST_UPLOAD",
                                "description": "The sourcePlatform LinkedIn assigned to your app."},
            "base_url": base_url(DEFAULT_BASE_URL),
        },
        ["access_token", "ad_account_id"],
    )

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"access_token": "li-example-token", "ad_account_id": "507404993", "base_url": base_url}

    # -- plumbing -----------------------------------------------------------------
    @property
    def client(self) -> HttpClient:
        if not hasattr(self, "_client"):
            token = self.settings["access_token"]
            self._client = HttpClient(
                "LinkedIn", self.settings.get("base_url") or DEFAULT_BASE_URL,
                headers={
                    "Authorization": f"Bearer {token}",
                    "LinkedIn-Version": str(self.settings.get("linkedin_version") or DEFAULT_VERSION),
                    "X-Restli-Protocol-Version": "2.0.0",
                },
                timeout=timeout_of(self.settings), secrets=[token],
            )
        return self._client

    @property
    def account_urn(self) -> str:
        return f"urn:li:sponsoredAccount:{self.settings['ad_account_id']}"

    def _segments(self) -> dict[str, dict[str, Any]]:
        return self.context.state.setdefault("linkedin", {}).setdefault("segments", {})

    # -- outbound -----------------------------------------------------------------
    def send(self, batch: list[Touch]) -> list[TouchResult]:
        groups, results = group_by_list(batch)
        types = SEGMENT_TYPES[self.settings.get("list_type") or "company"]
        for (name, action), touches in groups.items():
            errors: dict[int, list[str]] = {t.id: [] for t in touches}
            sent: dict[int, int] = {t.id: 0 for t in touches}
            for seg_type in types:
                elements, owners = self._elements(seg_type, action, touches, errors, len(types) > 1)
                if not elements:
                    continue
                segment = self._segment(name, seg_type, len(types) > 1)
                statuses = self._stream(segment, seg_type, name, elements)
                for owner, status in zip(owners, statuses, strict=True):
                    sent[owner] += 1
                    if status is not None:
                        errors[owner].append(status)
            for touch in touches:
                if errors[touch.id]:
                    results.append(TouchResult.failure(touch, "; ".join(errors[touch.id])))
                elif not sent[touch.id]:
                    results.append(TouchResult.failure(touch, "nothing to send for this account"))
                else:
                    results.append(TouchResult.success(touch, self._segments_id(name, types, len(types) > 1)))
        return in_order(batch, results)

    def _segments_id(self, name: str, types: tuple[str, ...], both: bool) -> str:
        segs = self._segments()
        return ",".join(str(segs[k]["id"]) for k in (self._key(name, t, both) for t in types) if k in segs)

    def _elements(self, seg_type: str, action: str, touches: list[Touch],
                  errors: dict[int, list[str]], both: bool) -> tuple[list[dict], list[int]]:
        elements: list[dict[str, Any]] = []
        owners: list[int] = []
        for touch in touches:
            if seg_type == "COMPANY":
                element = company_element(touch, action)
                if element is None:
                    errors[touch.id].append("account has neither a name nor a domain to match a company on")
                    continue
                elements.append(element)
                owners.append(touch.id)
            else:
                people = people_of(touch)
                if not people and not both:
                    errors[touch.id].append("no contact of this account has a usable email")
                for person in people:
                    elements.append(user_element(person, action))
                    owners.append(touch.id)
        return elements, owners

    def _key(self, name: str, seg_type: str, both: bool) -> str:
        return f"{seg_type}:{self._segment_name(name, seg_type, both)}"

    @staticmethod
    def _segment_name(name: str, seg_type: str, both: bool) -> str:
        return f"{name} (contacts)" if both and seg_type == "USER" else name

    def _segment(self, name: str, seg_type: str, both: bool) -> dict[str, Any]:
        """The segment record for a list, found by name or created; kept in the state."""
        segments = self._segments()
        key = self._key(name, seg_type, both)
        if key in segments:
            return segments[key]
        seg_name = self._segment_name(name, seg_type, both)
        found = self._find_segment(seg_name, seg_type)
        if found is not None:
            segments[key] = found
            return found
        response = self.client.post("/dmpSegments", json={
            "name": seg_name, "account": self.account_urn, "accessPolicy": "PRIVATE", "type": seg_type,
            "sourcePlatform": self.settings.get("source_platform") or "LIST_UPLOAD",
            "destinations": [{"destination": "LINKEDIN"}],
        }, expect=(201,))
        segment_id = created_id(response)
        if not segment_id:
            raise PermanentError(f"LinkedIn created list {seg_name!r} but returned no id "
                                 "(no x-restli-id, x-linkedin-id, Location or id in the body)")
        segments[key] = {"id": segment_id, "created_at": time.time()}
        return segments[key]

    def _find_segment(self, seg_name: str, seg_type: str) -> dict[str, Any] | None:
        """The segment record of an existing list of that name and type, if any.

        Its ``created`` time (ms) is kept, so that a list another run created a moment
        ago still gets the "not ready yet" treatment."""
        start, count = 0, 100
        for _ in range(20):
            data = self.client.get("/dmpSegments", params={
                "q": "account", "account": self.account_urn, "start": start, "count": count}).json()
            elements = data.get("elements") or []
            for element in elements:
                if element.get("name") == seg_name and element.get("type") in (seg_type, None):
                    created = element.get("created")
                    return {"id": str(element.get("id")),
                            "created_at": created / 1000 if isinstance(created, int | float) else None}
            total = (data.get("paging") or {}).get("total")
            start += count
            if not elements or (isinstance(total, int) and start >= total):
                return None
        return None

    def _stream(self, segment: dict[str, Any], seg_type: str, name: str,
                elements: list[dict]) -> list[str | None]:
        """BATCH_CREATE the elements; one None (accepted) or error text per element."""
        path = f"/dmpSegments/{segment['id']}/{'companies' if seg_type == 'COMPANY' else 'users'}"
        statuses: list[str | None] = []
        for part in chunks(elements, ELEMENTS_PER_CALL):
            response = self.client.post(
                path, json={"elements": part}, headers={"X-RestLi-Method": "BATCH_CREATE"},
                classify=lambda r: self._not_ready(r, segment, seg_type, name),
            )
            replies = (response.json() or {}).get("elements") or []
            if len(replies) != len(part):
                raise RetryableError(
                    f"LinkedIn answered {len(replies)} statuses for {len(part)} elements of list {name!r}")
            for reply in replies:
                status = int(reply.get("status") or 0)
                if 200 <= status < 300:
                    statuses.append(None)
                else:
                    error = reply.get("error") or {}
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    statuses.append(f"LinkedIn rejected it (status {status}): {message or 'no reason given'}")
        return statuses

    def _not_ready(self, response: requests.Response, segment: dict[str, Any], seg_type: str,
                   name: str) -> RetryableError | None:
        if response.status_code != 404:
            return None
        created = segment.get("created_at")
        if created is not None and time.time() - created < NOT_READY_WINDOW:
            return RetryableError(
                f"LinkedIn list {name!r} was just created and is not ready yet; retry in a few seconds",
                retry_after=NOT_READY_WAIT)
        segments = self._segments()
        for key in [k for k, v in segments.items() if v is segment]:
            del segments[key]
        return RetryableError(
            f"LinkedIn list {name!r} (segment {segment['id']}) no longer exists; it will be created again on retry",
            retry_after=NOT_READY_WAIT)

    # -- checks -------------------------------------------------------------------
    def test(self) -> str:
        account_id = self.settings["ad_account_id"]

        def explain(response: requests.Response) -> PermanentError | None:
            status = response.status_code
            if status == 401:
                return PermanentError(
                    "LinkedIn refused the access token (HTTP 401): it is wrong, expired or revoked; "
                    "paste a fresh token in the connector's settings")
            if status == 403:
                return PermanentError(
                    f"LinkedIn: this token has no access to ad account {account_id} (HTTP 403): "
                    f"{provider_message(response)}; check ad_account_id and the token's scopes")
            if status == 404:
                return PermanentError(
                    f"LinkedIn: there is no ad account {account_id} (HTTP 404); check ad_account_id")
            return None

        data = self.client.get(f"/adAccounts/{account_id}", classify=explain).json()
        label = f" ({data['name']})" if isinstance(data, dict) and data.get("name") else ""
        return f"LinkedIn ad account {account_id}{label} is reachable with this token"


def company_element(touch: Touch, action: str) -> dict[str, Any] | None:
    account = touch.account
    element: dict[str, Any] = {"action": action.upper()}
    if account.get("name"):
        element["companyName"] = str(account["name"]).strip()
    if account.get("domain"):
        element["companyWebsiteDomain"] = str(account["domain"]).strip().lower()
    if account.get("linkedin_organization_urn"):
        element["organizationUrn"] = str(account["linkedin_organization_urn"])
    if len(element) == 1:
        return None
    if account.get("country"):
        element["country"] = str(account["country"]).strip()
    return element


def user_element(person: Person, action: str) -> dict[str, Any]:
    """One user of a contact list: hashed identifiers only. LinkedIn would also take first
    and last name, title, company and country, but those would leave the product in clear."""
    return {"action": action.upper(), "userIds": [{"idType": "SHA256_EMAIL", "idValue": person.email_sha256}]}


def created_id(response: requests.Response) -> str | None:
    """The id of the segment a 201 created: LinkedIn documents the ``x-linkedin-id`` header;
    Rest.li 2.0 answers ``x-restli-id`` and a ``Location`` whose last segment is the id;
    some versions answer it in the body (``{"id": ...}``)."""
    for name in ("x-restli-id", "x-linkedin-id"):
        if response.headers.get(name):
            return response.headers[name].strip()
    location = response.headers.get("Location")
    if location:
        last = location.rstrip("/").rsplit("/", 1)[-1]
        return last.rsplit(":", 1)[-1] or None  # a plain id, or urn:li:dmpSegment:ID
    try:
        body = response.json() if response.content else None
    except ValueError:
        return None
    found = body.get("id") if isinstance(body, dict) else None
    return str(found) if found not in (None, "") else None
