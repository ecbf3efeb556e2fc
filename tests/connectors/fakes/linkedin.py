"""A fake LinkedIn Marketing API: DMP segments, company and user streaming, ad accounts."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Response, request

from tests.connectors.fakes.common import HEX64, Fake, contains_plain_email, json_body

COMPANY_KEYS = {"action", "companyName", "companyWebsiteDomain", "companyEmailDomain", "organizationUrn",
                "country", "companyPageUrl", "industries", "city", "state", "postalCode"}
COMPANY_IDS = {"companyName", "companyWebsiteDomain", "companyEmailDomain", "organizationUrn", "companyPageUrl"}
#: What this product may send for a user: the action and hashed identifiers only ("DMP Segment
#: Users": ``action``, ``userIds`` of ``{idType: SHA256_EMAIL, idValue}``); LinkedIn also takes
#: firstName, lastName, title, company and country, but those would leave in clear.
USER_KEYS = {"action", "userIds"}
#: Where a created segment's id may come back ("Create a DMP Segment": 201 with the id in the
#: ``x-linkedin-id`` header; Rest.li 2.0 answers ``x-restli-id`` and ``Location``).
ID_PLACES = ("x-restli-id", "x-linkedin-id", "location", "body")
MAX_ELEMENTS = 5000


class FakeLinkedIn(Fake):
    provider = "linkedin"

    def __init__(self, token: str = "li-token", account_id: str = "5150", not_ready_calls: int = 0,
                 id_in: str = "x-restli-id"):
        super().__init__(token)
        assert id_in in ID_PLACES
        self.id_in = id_in
        self.account_id = account_id
        self.not_ready_calls = not_ready_calls
        self.segments: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.rejected_names: set[str] = {"Rejected Inc"}
        self.element_counts: list[int] = []
        self._routes()

    def bad(self, message: str) -> Response:
        return Response(json.dumps({"status": 400, "code": "BAD_REQUEST", "message": message}), 400,
                        content_type="application/json")

    def unauthorized(self) -> Response:
        return Response(json.dumps({"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN",
                                    "message": "Invalid access token"}), 401, content_type="application/json")

    def _headers_ok(self) -> None:
        version = request.headers.get("LinkedIn-Version", "")
        self.require(len(version) == 6 and version.isdigit(), "LinkedIn-Version must be YYYYMM")
        self.require(request.headers.get("X-Restli-Protocol-Version") == "2.0.0",
                     "X-Restli-Protocol-Version must be 2.0.0")

    @property
    def urn(self) -> str:
        return f"urn:li:sponsoredAccount:{self.account_id}"

    def _routes(self) -> None:
        @self.route("/rest/dmpSegments", ["POST"])
        def create_segment():
            self._headers_ok()
            body = json_body()
            self.require(set(body) <= {"name", "account", "accessPolicy", "type", "sourcePlatform",
                                       "destinations", "description"}, "unknown field in segment")
            self.require(isinstance(body.get("name"), str) and body["name"], "name is required")
            self.require(body.get("accessPolicy") == "PRIVATE", "accessPolicy must be PRIVATE")
            self.require(body.get("type") in ("COMPANY", "USER"), "type must be COMPANY or USER")
            self.require(isinstance(body.get("sourcePlatform"), str), "sourcePlatform is required")
            self.require(body.get("destinations") == [{"destination": "LINKEDIN"}], "destinations")
            if body.get("account") != self.urn:
                return Response(json.dumps({"status": 403, "message": "Not enough permissions"}), 403,
                                content_type="application/json")
            segment_id = str(9000 + len(self.segments) + 1)
            self.segments[segment_id] = {**body, "id": int(segment_id), "not_ready": self.not_ready_calls,
                                         "created": int(time.time() * 1000)}
            self.members[segment_id] = set()
            if self.id_in == "body":
                return Response(json.dumps({"id": int(segment_id)}), 201, content_type="application/json")
            if self.id_in == "location":
                return Response("", 201, headers={"Location": f"/rest/dmpSegments/{segment_id}"})
            return Response("", 201, headers={self.id_in: segment_id})

        @self.route("/rest/dmpSegments", ["GET"])
        def find_segments():
            self._headers_ok()
            self.require(request.args.get("q") == "account", "q=account is required")
            self.require(request.args.get("account") == self.urn, "account must be the sponsored account URN")
            start, count = int(request.args.get("start", 0)), int(request.args.get("count", 10))
            listed = [{k: v for k, v in s.items() if k != "not_ready"} for s in self.segments.values()]
            return {"elements": listed[start:start + count],
                    "paging": {"start": start, "count": count, "total": len(listed)}}

        @self.route("/rest/dmpSegments/<segment_id>/companies", ["POST"])
        def stream_companies(segment_id):
            return self._stream(segment_id, "COMPANY")

        @self.route("/rest/dmpSegments/<segment_id>/users", ["POST"])
        def stream_users(segment_id):
            return self._stream(segment_id, "USER")

        @self.route("/rest/adAccounts/<account_id>", ["GET"])
        def ad_account(account_id):
            self._headers_ok()
            if account_id != self.account_id:
                return Response(json.dumps({"status": 404, "message": "Not found"}), 404,
                                content_type="application/json")
            return {"id": int(account_id), "name": "Fake Ads Account", "status": "ACTIVE"}

    def _stream(self, segment_id: str, kind: str) -> Any:
        self._headers_ok()
        self.require(request.headers.get("X-RestLi-Method") == "BATCH_CREATE", "X-RestLi-Method: BATCH_CREATE")
        self.require(not contains_plain_email(request.get_data()), "unhashed email in a LinkedIn upload")
        body = json_body()
        segment = self.segments.get(segment_id)
        if segment is None or segment["type"] != kind:
            return Response(json.dumps({"status": 404, "message": "segment not found"}), 404,
                            content_type="application/json")
        if segment["not_ready"] > 0:
            segment["not_ready"] -= 1
            return Response(json.dumps({"status": 404, "message": "segment not found"}), 404,
                            content_type="application/json")
        self.require(set(body) == {"elements"}, "body must be {elements: [...]}")
        elements = body["elements"]
        self.require(isinstance(elements, list) and 0 < len(elements) <= MAX_ELEMENTS,
                     f"1 to {MAX_ELEMENTS} elements per call")
        self.element_counts.append(len(elements))
        replies = []
        for element in elements:
            self.require(element.get("action") in ("ADD", "REMOVE"), "action must be ADD or REMOVE")
            if kind == "COMPANY":
                self.require(set(element) <= COMPANY_KEYS, f"unknown company field in {sorted(element)}")
                self.require(bool(COMPANY_IDS & set(element)), "a company needs at least one identifier")
                if element.get("companyName") in self.rejected_names:
                    replies.append({"status": 400, "error": {"message": "company could not be matched"}})
                    continue
                member = element.get("companyWebsiteDomain") or element.get("companyName")
            else:
                self.require(set(element) <= USER_KEYS, f"unknown user field in {sorted(element)}")
                ids = element.get("userIds")
                self.require(isinstance(ids, list) and len(ids) >= 1, "userIds is required")
                for uid in ids:
                    self.require(set(uid) == {"idType", "idValue"}, "userId has idType and idValue")
                    self.require(uid["idType"] == "SHA256_EMAIL", "idType SHA256_EMAIL")
                    self.require(isinstance(uid["idValue"], str) and HEX64.match(uid["idValue"]) is not None,
                                 "idValue must be 64 lowercase hex")
                member = ids[0]["idValue"]
            if element["action"] == "ADD":
                self.members[segment_id].add(member)
            else:
                self.members[segment_id].discard(member)
            replies.append({"status": 201})
        return {"elements": replies}
