"""A fake Google Ads REST API: search, user lists and offline user data jobs.

Every request body is first parsed strictly (no unknown field, every enum value known) into
the request message of Google's own protos, as shipped by the official client ``google-ads``
(for the API version the connector's URL names): a body Google would refuse is refused here.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

from flask import Response, request
from google.protobuf import json_format

from connectors.versions import default_version
from tests.connectors.fakes.common import HEX64, Fake, contains_plain_email, json_body

MAX_OPERATIONS = 100_000

#: URL suffix -> (service module, request message) in google.ads.googleads.<version>.services.types.
REQUESTS = {
    "googleAds:search": ("google_ads_service", "SearchGoogleAdsRequest"),
    "userLists:mutate": ("user_list_service", "MutateUserListsRequest"),
    "offlineUserDataJobs:create": ("offline_user_data_job_service", "CreateOfflineUserDataJobRequest"),
    ":addOperations": ("offline_user_data_job_service", "AddOfflineUserDataJobOperationsRequest"),
    ":run": ("offline_user_data_job_service", "RunOfflineUserDataJobRequest"),
}


def load_protos(version: str) -> None:
    """Import a version's request messages now (seconds, once), not inside a timed request."""
    for module, _ in REQUESTS.values():
        importlib.import_module(f"google.ads.googleads.{version}.services.types.{module}")


load_protos(default_version("google_ads"))


def parse_strictly(version: str, path: str, body: bytes) -> Any:
    """The body as Google's request message for that call; json_format.ParseError when it is not one."""
    module, name = next(v for k, v in REQUESTS.items() if path.endswith(k))
    types = importlib.import_module(f"google.ads.googleads.{version}.services.types.{module}")
    message = getattr(types, name).pb()()
    return json_format.Parse(body or b"{}", message, ignore_unknown_fields=False)


def ads_error(http: int, status: str, message: str, code: dict | None = None, **detail: Any) -> Response:
    failure = {"@type": "type.googleapis.com/google.ads.googleads.v20.errors.GoogleAdsFailure",
               "errors": [{"errorCode": code or {}, "message": message}], **detail}
    body = {"error": {"code": http, "message": "Request failed", "status": status, "details": [failure]}}
    return Response(json.dumps(body), http, content_type="application/json")


class FakeGoogleAds(Fake):
    provider = "google_ads"

    def __init__(self, token: str = "ga-token", developer_token: str = "dev-token",
                 customer_id: str = "1234567890", manager_id: str | None = None):
        super().__init__(token)
        self.developer_token = developer_token
        self.customer_id = customer_id
        self.manager_id = manager_id
        self.user_lists: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.rejected_hashes: set[str] = set()
        self.operation_counts: list[int] = []
        self.parsed: list[Any] = []  # every request body as Google's proto message
        self._routes()
        self.app.before_request(self._parse_strictly)

    def _parse_strictly(self) -> Response | None:
        version = request.path.strip("/").split("/", 1)[0]
        try:
            self.parsed.append(parse_strictly(version, request.path, request.get_data()))
        except (json_format.ParseError, ModuleNotFoundError, StopIteration) as exc:
            return self.bad(f"{version} {request.path}: {exc}")
        return None

    def bad(self, message: str) -> Response:
        return ads_error(400, "INVALID_ARGUMENT", message, {"requestError": "INVALID_INPUT"})

    def authorized(self) -> bool:
        return super().authorized() and request.headers.get("developer-token") == self.developer_token

    def unauthorized(self) -> Response:
        return ads_error(401, "UNAUTHENTICATED", "Request is missing required authentication credential.",
                         {"authenticationError": "NOT_ADS_USER"})

    def _customer(self, cid: str) -> Response | None:
        self.require(cid.isdigit(), "customer id must be digits")
        login = request.headers.get("login-customer-id")
        if login is not None:
            self.require(login.isdigit(), "login-customer-id must be digits only")
        if cid != self.customer_id or (self.manager_id and login != self.manager_id):
            return ads_error(403, "PERMISSION_DENIED", "User doesn't have permission to access customer.",
                             {"authorizationError": "USER_PERMISSION_DENIED"})
        return None

    def _routes(self) -> None:
        @self.route("/<ver>/customers/<cid>/googleAds:search", ["POST"])
        def search(ver, cid):
            denied = self._customer(cid)
            if denied:
                return denied
            query = json_body().get("query", "")
            if "FROM customer" in query:
                return {"results": [{"customer": {"resourceName": f"customers/{cid}", "id": cid,
                                                  "descriptiveName": "Fake Advertiser"}}]}
            match = re.search(r"user_list\.name = '((?:[^'\\]|\\.)*)'", query)
            self.require(match is not None, "unsupported query")
            name = match.group(1).replace("\\'", "'").replace("\\\\", "\\")
            rows = [{"userList": {"resourceName": r, "name": u["name"]}}
                    for r, u in self.user_lists.items() if u["name"] == name]
            return {"results": rows} if rows else {}

        @self.route("/<ver>/customers/<cid>/userLists:mutate", ["POST"])
        def mutate_lists(ver, cid):
            denied = self._customer(cid)
            if denied:
                return denied
            ops = json_body().get("operations")
            self.require(isinstance(ops, list) and len(ops) == 1 and set(ops[0]) == {"create"}, "one create")
            create = ops[0]["create"]
            self.require(create.get("crmBasedUserList", {}).get("uploadKeyType") == "CONTACT_INFO",
                         "crmBasedUserList.uploadKeyType CONTACT_INFO")
            resource = f"customers/{cid}/userLists/{500 + len(self.user_lists) + 1}"
            self.user_lists[resource] = {"name": create["name"]}
            self.members[resource] = set()
            return {"results": [{"resourceName": resource}]}

        @self.route("/<ver>/customers/<cid>/offlineUserDataJobs:create", ["POST"])
        def create_job(ver, cid):
            denied = self._customer(cid)
            if denied:
                return denied
            body = json_body()
            self.require(set(body) == {"job"}, "body must be {job}")
            job = body["job"]
            self.require(job.get("type") == "CUSTOMER_MATCH_USER_LIST", "type CUSTOMER_MATCH_USER_LIST")
            metadata = job.get("customerMatchUserListMetadata") or {}
            consent = metadata.get("consent") or {}
            # Google requires consent for users in the EEA (Customer Match, "consent" in
            # CustomerMatchUserListMetadata, v15 onwards): both fields, GRANTED or DENIED.
            self.require(consent.get("adUserData") in ("GRANTED", "DENIED")
                         and consent.get("adPersonalization") in ("GRANTED", "DENIED"),
                         "customerMatchUserListMetadata.consent (adUserData, adPersonalization) is required")
            user_list = metadata.get("userList")
            if user_list not in self.user_lists:
                return ads_error(400, "INVALID_ARGUMENT", "User list not found",
                                 {"offlineUserDataJobError": "INVALID_USER_LIST_ID"})
            resource = f"customers/{cid}/offlineUserDataJobs/{700 + len(self.jobs) + 1}"
            self.jobs[resource] = {"user_list": user_list, "ops": [], "status": "PENDING", "consent": consent}
            return {"resourceName": resource}

        @self.route("/<ver>/customers/<cid>/offlineUserDataJobs/<jid>:addOperations", ["POST"])
        def add_operations(ver, cid, jid):
            denied = self._customer(cid)
            if denied:
                return denied
            return self._add(f"customers/{cid}/offlineUserDataJobs/{jid}")

        @self.route("/<ver>/customers/<cid>/offlineUserDataJobs/<jid>:run", ["POST"])
        def run_job(ver, cid, jid):
            denied = self._customer(cid)
            if denied:
                return denied
            job = self.jobs.get(f"customers/{cid}/offlineUserDataJobs/{jid}")
            self.require(job is not None and job["status"] == "PENDING", "job is not pending")
            job["status"] = "DONE"
            members = self.members[job["user_list"]]
            for verb, digest in job["ops"]:
                (members.add if verb == "create" else members.discard)(digest)
            return {"name": f"customers/{cid}/operations/{jid}"}

    def _add(self, resource: str) -> Any:
        self.require(not contains_plain_email(request.get_data()), "unhashed email sent to Google Ads")
        job = self.jobs.get(resource)
        self.require(job is not None and job["status"] == "PENDING", "job is not pending")
        body = json_body()
        self.require(set(body) <= {"operations", "enablePartialFailure", "validateOnly"}, "unknown field")
        self.require(body.get("enablePartialFailure") is True, "this fake expects enablePartialFailure")
        ops = body.get("operations")
        self.require(isinstance(ops, list) and 0 < len(ops) <= MAX_OPERATIONS, "1 to 100,000 operations")
        self.operation_counts.append(len(ops))
        errors = []
        for index, op in enumerate(ops):
            self.require(len(op) == 1 and next(iter(op)) in ("create", "remove"), "create or remove")
            verb, inner = next(iter(op.items()))
            ids = inner.get("userIdentifiers")
            self.require(isinstance(ids, list) and ids, "userIdentifiers is required")
            for ident in ids:
                self.require(len(ident) == 1, "each identifier has exactly one key")
                digest = ident.get("hashedEmail")
                self.require(isinstance(digest, str) and HEX64.match(digest) is not None,
                             "hashedEmail must be 64 lowercase hex")
                if digest in self.rejected_hashes:
                    errors.append({"errorCode": {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"},
                                   "message": "The SHA256 encoded value is malformed.",
                                   "location": {"fieldPathElements": [
                                       {"fieldName": "operations", "index": index},
                                       {"fieldName": verb}, {"fieldName": "user_identifiers", "index": 0}]}})
                else:
                    job["ops"].append((verb, digest))
        if not errors:
            return {}
        return {"partialFailureError": {"code": 3, "message": "Multiple errors in details",
                                        "details": [{"@type": "type.googleapis.com/google.ads.googleads.v20"
                                                     ".errors.GoogleAdsFailure", "errors": errors}]}}
