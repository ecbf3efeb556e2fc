"""A fake Meta Graph API: ad account, custom audiences, sessions of hashed uploads."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, request

from tests.connectors.fakes.common import HEX64, BadRequest, Fake, contains_plain_email

MAX_RECORDS = 10_000
VERSION = re.compile(r"^v\d+\.0$")


def graph_error(status: int, message: str, code: int, subcode: int | None = None) -> Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Fx"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return Response(json.dumps({"error": error}), status, content_type="application/json")


class FakeMeta(Fake):
    provider = "meta"

    def __init__(self, token: str = "meta-token", account_id: str = "777"):
        super().__init__(token)
        self.account_id = account_id
        self.audiences: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.sessions: dict[int, dict[str, Any]] = {}
        self.invalid_hashes: set[str] = set()
        self.batch_sizes: list[int] = []
        self.page_size = 2
        self._routes()

    def bad(self, message: str) -> Response:
        return graph_error(400, message, 100)

    def authorized(self) -> bool:
        return (request.values.get("access_token") == self.token
                and "Authorization" not in request.headers)

    def unauthorized(self) -> Response:
        return graph_error(401, "Invalid OAuth access token - Cannot parse access token", 190)

    def _version(self, version: str) -> None:
        self.require(VERSION.match(version) is not None, f"unknown version {version}")

    def _routes(self) -> None:
        @self.route("/<version>/act_<account_id>", ["GET"])
        def ad_account(version, account_id):
            self._version(version)
            if account_id != self.account_id:
                return graph_error(400, f"Unsupported get request. Object with ID 'act_{account_id}' does "
                                   "not exist", 100, 33)
            return {"id": f"act_{account_id}", "name": "Fake Meta Ads", "account_status": 1}

        @self.route("/<version>/act_<account_id>/customaudiences", ["POST"])
        def create_audience(version, account_id):
            self._version(version)
            if account_id != self.account_id:
                return graph_error(400, "Object does not exist", 100, 33)
            form = request.form
            self.require(set(form) <= {"name", "subtype", "customer_file_source", "description",
                                       "access_token"}, "unknown parameter")
            self.require(bool(form.get("name")), "name is required")
            self.require(form.get("subtype") == "CUSTOM", "subtype must be CUSTOM")
            self.require(form.get("customer_file_source") in ("USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY",
                                                              "BOTH_USER_AND_PARTNER_PROVIDED"),
                         "customer_file_source is required")
            audience_id = str(23800000 + len(self.audiences) + 1)
            self.audiences[audience_id] = {"id": audience_id, "name": form["name"]}
            self.members[audience_id] = set()
            return {"id": audience_id}

        @self.route("/<version>/act_<account_id>/customaudiences", ["GET"])
        def list_audiences(version, account_id):
            self._version(version)
            start = int(request.args.get("after", 0))
            listed = list(self.audiences.values())
            page = listed[start:start + self.page_size]
            reply: dict[str, Any] = {"data": page}
            if start + self.page_size < len(listed):
                reply["paging"] = {"next": f"{request.base_url}?access_token={self.token}"
                                           f"&fields=id,name&after={start + self.page_size}"}
            return reply

        @self.route("/<version>/<audience_id>/users", ["POST", "DELETE"])
        def users(version, audience_id):
            self._version(version)
            return self._users(audience_id)

    def _users(self, audience_id: str) -> Any:
        self.require(not contains_plain_email(request.get_data()), "unhashed email sent to Meta")
        if audience_id not in self.audiences:
            return graph_error(400, f"Unsupported post request. Object with ID '{audience_id}' does not exist",
                               100, 33)
        # The SDK (CustomAudienceMixin.remove_users) sends a DELETE's payload as query
        # parameters, with no body: a body on DELETE is dropped by intermediaries.
        params = request.args if request.method == "DELETE" else request.form
        if request.method == "DELETE":
            self.require(not request.get_data(), "a DELETE carries its parameters in the query string")
        try:
            payload = json.loads(params["payload"])
            session = json.loads(params["session"])
        except (KeyError, ValueError):
            raise BadRequest("payload and session are required JSON parameters") from None
        self.require(set(params) <= {"payload", "session", "access_token"}, "unknown parameter")
        self.require(payload.get("schema") == "EMAIL_SHA256", "schema must be EMAIL_SHA256")
        data = payload.get("data")
        self.require(isinstance(data, list) and 0 < len(data) <= MAX_RECORDS,
                     f"1 to {MAX_RECORDS} records per request")
        for entry in data:
            self.require(isinstance(entry, str) and HEX64.match(entry) is not None,
                         "every entry must be 64 lowercase hex")
        self.require(set(session) <= {"session_id", "batch_seq", "last_batch_flag", "estimated_num_total"},
                     "unknown session field")
        sid, seq = session.get("session_id"), session.get("batch_seq")
        self.require(isinstance(sid, int) and sid > 0, "session_id must be a positive integer")
        self.require(isinstance(session.get("last_batch_flag"), bool), "last_batch_flag is required")
        known = self.sessions.setdefault(sid, {"next_seq": 1, "closed": False})
        self.require(not known["closed"], "session already finished")
        self.require(seq == known["next_seq"], f"batch_seq {seq} out of order (expected {known['next_seq']})")
        known["next_seq"] += 1
        known["closed"] = session["last_batch_flag"]
        self.batch_sizes.append(len(data))
        invalid = [d for d in data if d in self.invalid_hashes]
        for digest in data:
            if digest in invalid:
                continue
            if request.method == "POST":
                self.members[audience_id].add(digest)
            else:
                self.members[audience_id].discard(digest)
        return {"audience_id": audience_id, "session_id": sid, "num_received": len(data),
                "num_invalid_entries": len(invalid),
                "invalid_entry_samples": {d: "invalid hash" for d in invalid[:10]}}
