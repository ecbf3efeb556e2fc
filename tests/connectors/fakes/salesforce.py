"""A fake Salesforce REST API: SOQL queries with query locators, Task, Account, collections."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, request

from tests.connectors.fakes.common import Fake, json_body

SOQL = re.compile(
    r"^SELECT (?P<fields>[\w., ]+) FROM (?P<table>Account|Opportunity|User)"
    r"(?: WHERE (?P<where>.+?))?(?P<order> ORDER BY SystemModstamp, Id)?(?: LIMIT (?P<limit>\d+))?$")
SINCE = re.compile(r"^SystemModstamp >= (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)$")
TASK_FIELDS = {"Subject", "Description", "WhatId", "WhoId", "OwnerId", "Status", "Priority", "ActivityDate",
               "TaskSubtype"}
USER = re.compile(r"^Email = '((?:[^'\\]|\\.)*)' AND IsActive = true$")
FIELDS = {
    "Account": {"Id", "Name", "Website", "OwnerId", "Type", "Tier__c", "LastModifiedDate", "SystemModstamp"},
    "Opportunity": {"Id", "Name", "Amount", "StageName", "CloseDate", "CreatedDate", "IsClosed", "IsWon", "AccountId",
                    "Account.Website", "LastModifiedDate", "SystemModstamp"},
    "User": {"Id"},
}


def sf_error(status: int, code: str, message: str) -> Response:
    return Response(json.dumps([{"message": message, "errorCode": code}]), status, content_type="application/json")


def sf_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class FakeSalesforce(Fake):
    provider = "salesforce"

    def __init__(self, token: str = "sf-token", version: str = "61.0"):
        super().__init__(token)
        self.version = version
        self.records: dict[str, dict[str, dict[str, Any]]] = {"Account": {}, "Opportunity": {}}
        self.users = {"ae@vendor.com": "005AE"}
        self.tasks: list[dict[str, Any]] = []
        #: Custom Activity fields marked External ID (upserts by them are allowed).
        self.task_external_ids = {"ABM_Touch_Key__c"}
        self.locators: dict[str, list[dict[str, Any]]] = {}
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)
        #: The org's rolling 24-hour API usage, as every answer's Sforce-Limit-Info reports it.
        self.api_used, self.api_max = 0, 15_000
        self._routes()
        self.app.after_request(self._limit_info)

    def _limit_info(self, response: Response) -> Response:
        self.api_used += 1
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.api_max}"
        return response

    def bad(self, message: str) -> Response:
        return sf_error(400, "MALFORMED_QUERY", message)

    def unauthorized(self) -> Response:
        return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def put(self, table: str, record_id: str, at: datetime | None = None, **fields: Any) -> None:
        if at is None:
            self.clock += timedelta(seconds=1)
            at = self.clock
        record = self.records[table].setdefault(record_id, {"Id": record_id})
        record.update(fields)
        record["LastModifiedDate"] = record["SystemModstamp"] = sf_time(at)

    def expire_locators(self) -> None:
        self.locators.clear()

    def _project(self, table: str, record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": table, "url": f"/services/data/v{self.version}/sobjects/"
                                                                 f"{table}/{record['Id']}"}}
        for name in fields:
            if name == "Account.Website":
                account = self.records["Account"].get(record.get("AccountId") or "")
                out["Account"] = ({"attributes": {"type": "Account"}, "Website": account.get("Website")}
                                  if account else None)
            else:
                out[name] = record.get(name)
        return out

    def _page(self, rows: list[dict[str, Any]], size: int) -> dict[str, Any]:
        page, rest = rows[:size], rows[size:]
        reply: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": page}
        if rest:
            locator = f"01gFAKE{len(self.locators) + 1:04d}-{size}"
            self.locators[locator] = rest
            reply["nextRecordsUrl"] = f"/services/data/v{self.version}/query/{locator}"
        return reply

    def _batch_size(self) -> int:
        match = re.search(r"batchSize=(\d+)", request.headers.get("Sforce-Query-Options", ""))
        return int(match.group(1)) if match else 2000

    def _routes(self) -> None:
        @self.route("/services/data/v<version>/query", ["GET"])
        def query(version):
            self.require(version == self.version, f"unknown API version {version}")
            match = SOQL.match(request.args.get("q", ""))
            self.require(match is not None, "unexpected token in SOQL")
            table, fields = match["table"], [f.strip() for f in match["fields"].split(",")]
            unknown = [f for f in fields if f not in FIELDS[table]]
            if unknown:
                return sf_error(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{table}'")
            if table == "User":
                user = USER.match(match["where"] or "")
                self.require(user is not None, "User queries by Email and IsActive only")
                found = self.users.get(user.group(1).replace("\\'", "'"))
                return {"totalSize": int(bool(found)), "done": True,
                        "records": [{"attributes": {"type": "User"}, "Id": found}] if found else []}
            since = None
            if match["where"]:
                literal = SINCE.match(match["where"])
                self.require(literal is not None, "only SystemModstamp >= <datetime literal> is supported")
                since = literal.group(1).replace("Z", ".000+0000")
            self.require(match["order"] is not None, "this fake wants ORDER BY SystemModstamp, Id")
            rows = sorted((r for r in self.records[table].values()
                           if since is None or r["SystemModstamp"] >= since),
                          key=lambda r: (r["SystemModstamp"], r["Id"]))
            return self._page([self._project(table, r, fields) for r in rows], self._batch_size())

        @self.route("/services/data/v<version>/query/<locator>", ["GET"])
        def query_more(version, locator):
            rest = self.locators.pop(locator, None)
            if rest is None:
                return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return self._page(rest, int(locator.rsplit("-", 1)[1]))

        @self.route("/services/data/v<version>/sobjects/Task", ["POST"])
        def create_task(version):
            body = json_body()
            allowed = {"Subject", "Description", "ActivityDate", "WhatId", "OwnerId", "Status", "Priority"}
            self.require(set(body) <= allowed, f"No such column on Task: {sorted(set(body) - allowed)}")
            self.require(bool(body.get("Subject")), "Subject is required")
            if body.get("ActivityDate"):
                self.require(re.match(r"^\d{4}-\d{2}-\d{2}$", body["ActivityDate"]) is not None, "ActivityDate")
            if body.get("WhatId") not in self.records["Account"]:
                return sf_error(400, "FIELD_INTEGRITY_EXCEPTION", "Related To ID: id value of incorrect type")
            self.tasks.append(body)
            return Response(json.dumps({"id": f"00T{len(self.tasks):05d}", "success": True, "errors": []}), 201,
                            content_type="application/json")

        @self.route("/services/data/v<version>/sobjects/Task/<field>/<path:value>", ["PATCH"])
        def upsert_task(version, field, value):
            if field not in self.task_external_ids:
                return sf_error(404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "
                                + field)
            body = json_body()
            self.require(field not in body, f"{field} is in the URL, not the body")
            self.require(set(body) <= TASK_FIELDS, f"No such column on Task: {sorted(set(body) - TASK_FIELDS)}")
            if body.get("WhatId") not in self.records["Account"]:
                return sf_error(400, "FIELD_INTEGRITY_EXCEPTION", "Related To ID: id value of incorrect type")
            found = next((n for n, t in enumerate(self.tasks) if t.get(field) == value), None)
            if found is not None:
                self.tasks[found].update(body)
                return {"id": f"00T{found + 1:05d}", "success": True, "errors": [], "created": False}
            self.tasks.append({**body, field: value})
            return Response(json.dumps({"id": f"00T{len(self.tasks):05d}", "success": True, "errors": [],
                                        "created": True}), 201, content_type="application/json")

        @self.route("/services/data/v<version>/sobjects/Account/<account_id>", ["GET"])
        def account(version, account_id):
            record = self.records["Account"].get(account_id)
            if record is None:
                return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
            return {"attributes": {"type": "Account"}, "Id": account_id, "OwnerId": record.get("OwnerId")}

        @self.route("/services/data/v<version>/composite/sobjects", ["PATCH"])
        def collection(version):
            body = json_body()
            self.require(body.get("allOrNone") is False, "allOrNone false expected")
            records = body.get("records")
            self.require(isinstance(records, list) and 0 < len(records) <= 200, "1 to 200 records")
            replies = []
            for record in records:
                self.require(record.get("attributes") == {"type": "Account"}, "attributes.type Account")
                target = self.records["Account"].get(record.get("id"))
                if target is None:
                    replies.append({"id": record.get("id"), "success": False, "errors": [
                        {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]})
                    continue
                target.update({k: v for k, v in record.items() if k not in ("attributes", "id")})
                replies.append({"id": record["id"], "success": True, "errors": []})
            return Response(json.dumps(replies), 200, content_type="application/json")

        @self.route("/services/data/v<version>/composite/sobjects", ["POST"])
        def create_collection(version):
            """sObject Collections create: Tasks only here, each on an existing Account."""
            body = json_body()
            self.require(body.get("allOrNone") is False, "allOrNone false expected")
            records = body.get("records")
            self.require(isinstance(records, list) and 0 < len(records) <= 200, "1 to 200 records")
            replies = []
            for record in records:
                self.require(record.get("attributes") == {"type": "Task"}, "attributes.type Task")
                self.require("id" not in record and "Id" not in record, "a record to create has no id")
                unknown = set(record) - TASK_FIELDS - {"attributes"}
                self.require(not unknown, f"No such column {sorted(unknown)} on entity 'Task'")
                if record.get("WhatId") not in self.records["Account"]:
                    replies.append({"success": False, "errors": [
                        {"statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id",
                         "fields": ["WhatId"]}]})
                    continue
                self.tasks.append(record)
                task_id = f"00T{len(self.tasks):015d}"
                replies.append({"id": task_id, "success": True, "errors": []})
            return Response(json.dumps(replies), 200, content_type="application/json")

        @self.route("/services/data/v<version>/limits", ["GET"])
        def limits(version):
            if version != self.version:
                return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
            return {"DailyApiRequests": {"Max": 15000, "Remaining": 14990}}
