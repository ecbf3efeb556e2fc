"""A fake HubSpot CRM API: search, associations, batch read/update, tasks, owners."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Response, request
from hubspot.crm.associations.v4.models import AssociationSpec

from tests.connectors.fakes.common import Fake, json_body
from tests.connectors.hubspot_spec import model_for, violations

SEARCH_KEYS = {"filterGroups", "sorts", "properties", "limit", "after", "query"}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeHubSpot(Fake):
    provider = "hubspot"

    def __init__(self, token: str = "hs-token"):
        super().__init__(token)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"companies": {}, "deals": {}}
        self.deal_company: dict[str, str] = {}
        self.tasks: list[dict[str, Any]] = []
        #: Task properties created with "require unique values" (idProperty of an upsert).
        self.unique_task_properties = {"abm_touch_key"}
        self.task_companies: set[tuple[str, str]] = set()  # (task id, company id) associations
        self.notes: list[dict[str, Any]] = []
        self.owners = {"ae@vendor.com": "501"}
        self.clock = 1_700_000_000_000
        self.batch_update_refuses_with_400 = False
        self.checked: list[str] = []  # requests checked against the SDK's models
        self._routes()

    def bad(self, message: str) -> Response:
        return Response(json.dumps({"status": "error", "message": message, "category": "VALIDATION_ERROR",
                                    "correlationId": "c-1"}), 400, content_type="application/json")

    def unauthorized(self) -> Response:
        return Response(json.dumps({"status": "error", "message": "Authentication credentials not found.",
                                    "category": "INVALID_AUTHENTICATION"}), 401, content_type="application/json")

    def body(self) -> Any:
        """The request's JSON, refused unless it matches HubSpot's published model for that call."""
        data = json_body()
        model, required = model_for(request.method, request.path)
        problems = violations(data, model, required)
        self.require(not problems, "; ".join(problems))
        self.checked.append(f"{request.method} {request.path}")
        return data

    def put(self, obj: str, record_id: str, at: int | None = None, **properties: Any) -> None:
        """Create or modify a record, stamping hs_lastmodifieddate (``at`` ms, else the next tick)."""
        if at is None:
            self.clock += 1000
            at = self.clock
        record = self.objects[obj].setdefault(record_id, {})
        record.update({k: v for k, v in properties.items()})
        record["hs_lastmodifieddate"] = at

    def _routes(self) -> None:
        @self.route("/crm/v3/objects/<obj>/search", ["POST"])
        def search(obj):
            self.require(obj in self.objects, f"unknown object {obj}")
            body = self.body()
            self.require(set(body) <= SEARCH_KEYS, f"unknown search keys {sorted(set(body) - SEARCH_KEYS)}")
            limit = body.get("limit", 10)
            self.require(isinstance(limit, int) and 1 <= limit <= 200, "limit must be 1..200")
            since = None
            for group in body.get("filterGroups") or []:
                for flt in group.get("filters") or []:
                    self.require(set(flt) == {"propertyName", "operator", "value"}, "filter shape")
                    self.require(flt["propertyName"] == "hs_lastmodifieddate" and flt["operator"] == "GTE",
                                 "this fake filters on hs_lastmodifieddate GTE only")
                    self.require(str(flt["value"]).isdigit(), "value must be epoch ms")
                    since = int(flt["value"])
            self.require(body.get("sorts") == ["hs_lastmodifieddate"],
                         "expected an ascending sort on hs_lastmodifieddate")
            rows = sorted(((r["hs_lastmodifieddate"], rid) for rid, r in self.objects[obj].items()
                           if since is None or r["hs_lastmodifieddate"] >= since), key=lambda x: (x[0], int(x[1])))
            start = int(body.get("after") or 0)
            page = rows[start:start + limit]
            wanted = set(body.get("properties") or [])
            results = []
            for ms, rid in page:
                record = self.objects[obj][rid]
                props = {k: (str(v) if v is not None else None) for k, v in record.items() if k in wanted}
                props["hs_lastmodifieddate"] = iso(ms)
                results.append({"id": rid, "properties": props, "archived": False})
            reply: dict[str, Any] = {"total": len(rows), "results": results}
            if start + limit < len(rows):
                reply["paging"] = {"next": {"after": str(start + limit), "link": "?after="}}
            return reply

        @self.route("/crm/v4/associations/deals/companies/batch/read", ["POST"])
        def associations():
            inputs = self.body().get("inputs")
            self.require(isinstance(inputs, list) and len(inputs) <= 1000, "inputs")
            results = []
            for item in inputs:
                company = self.deal_company.get(str(item["id"]))
                if company:
                    results.append({"from": {"id": str(item["id"])}, "to": [
                        {"toObjectId": int(company), "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"}]}]})
            return {"status": "COMPLETE", "results": results}

        @self.route("/crm/v3/objects/companies/batch/read", ["POST"])
        def batch_read():
            body = self.body()
            self.require(len(body.get("inputs") or []) <= 100, "at most 100 inputs")
            results = [{"id": i["id"], "properties": {p: self.objects["companies"][i["id"]].get(p)
                                                      for p in body.get("properties") or []}}
                       for i in body["inputs"] if i["id"] in self.objects["companies"]]
            return {"status": "COMPLETE", "results": results}

        @self.route("/crm/v3/objects/companies/batch/update", ["POST"])
        def batch_update():
            inputs = self.body().get("inputs")
            self.require(isinstance(inputs, list) and 0 < len(inputs) <= 100, "1 to 100 inputs")
            missing = [i["id"] for i in inputs if i["id"] not in self.objects["companies"]]
            for item in inputs:
                self.require(set(item) == {"id", "properties"}, "each input has id and properties")
                self.require(all(isinstance(v, str) for v in item["properties"].values()),
                             "property values are strings")
            if missing and self.batch_update_refuses_with_400:
                return Response(json.dumps({"status": "error", "category": "OBJECT_NOT_FOUND",
                                            "message": "Could not get some COMPANY objects",
                                            "context": {"ids": missing}}), 400, content_type="application/json")
            for item in inputs:
                if item["id"] in self.objects["companies"]:
                    self.objects["companies"][item["id"]].update(item["properties"])
            reply: dict[str, Any] = {"status": "COMPLETE", "results": []}
            if missing:
                reply["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                                    "message": "Object not found", "context": {"ids": missing}}]
                return Response(json.dumps(reply), 207, content_type="application/json")
            return reply

        @self.route("/crm/v3/objects/tasks", ["POST"])
        def create_task():
            body = self.body()
            props = body.get("properties") or {}
            self.require({"hs_timestamp", "hs_task_subject"} <= set(props), "hs_timestamp and subject required")
            assoc = body.get("associations") or []
            self.require(len(assoc) == 1 and assoc[0]["types"][0]["associationTypeId"] == 192,
                         "a task -> company association (192)")
            company = assoc[0]["to"]["id"]
            if company not in self.objects["companies"]:
                return self.bad(f"company {company} does not exist")
            self.tasks.append(body)
            return Response(json.dumps({"id": str(8000 + len(self.tasks))}), 201, content_type="application/json")

        @self.route("/crm/v3/objects/tasks/batch/upsert", ["POST"])
        def upsert_tasks():
            results = []
            for item in self.body()["inputs"]:
                unique = item.get("idProperty")
                if unique not in self.unique_task_properties:
                    return self.bad(f"Property {unique} is not a unique value property of tasks")
                found = next((n for n, t in enumerate(self.tasks)
                              if t["properties"].get(unique) == item["id"]), None)
                properties = {**item.get("properties", {}), unique: item["id"]}
                if found is None:
                    self.tasks.append({"properties": properties})
                    found = len(self.tasks) - 1
                else:
                    self.tasks[found]["properties"].update(properties)
                results.append({"id": str(8001 + found), "new": found == len(self.tasks) - 1,
                                "properties": properties})
            return {"status": "COMPLETE", "results": results}

        @self.route("/crm/v4/objects/tasks/<task>/associations/companies/<company>", ["PUT"])
        def associate_task(task, company):
            specs = json_body()
            self.require(isinstance(specs, list) and len(specs) == 1, "a list of one association spec")
            problems = violations(specs[0], AssociationSpec, {"associationCategory", "associationTypeId"})
            self.require(not problems and specs[0]["associationTypeId"] == 192, "; ".join(problems) or "type 192")
            if company not in self.objects["companies"]:
                return self.bad(f"company {company} does not exist")
            self.task_companies.add((task, company))
            return Response(json.dumps({"fromObjectTypeId": "0-27", "fromObjectId": task, "toObjectTypeId": "0-2",
                                        "toObjectId": company, "labels": []}), 201, content_type="application/json")

        @self.route("/crm/v3/objects/notes/batch/create", ["POST"])
        def create_notes():
            inputs = self.body().get("inputs")
            self.require(isinstance(inputs, list) and 0 < len(inputs) <= 100, "1 to 100 inputs")
            results, errors = [], []
            for item in inputs:
                props = item.get("properties") or {}
                self.require({"hs_timestamp", "hs_note_body"} <= set(props), "hs_timestamp and hs_note_body")
                assoc = item.get("associations") or []
                self.require(len(assoc) == 1 and assoc[0]["types"][0]["associationTypeId"] == 190,
                             "a note -> company association (190)")
                company = assoc[0]["to"]["id"]
                if company not in self.objects["companies"]:
                    errors.append({"status": "error", "category": "VALIDATION_ERROR",
                                   "message": f"company {company} does not exist"})
                    continue
                self.notes.append(item)
                results.append({"id": str(9000 + len(self.notes)), "properties": props,
                                "objectWriteTraceId": item.get("objectWriteTraceId")})
            reply = {"status": "COMPLETE", "results": results}
            if errors:
                reply["errors"] = errors
                return Response(json.dumps(reply), 207, content_type="application/json")
            return Response(json.dumps(reply), 201, content_type="application/json")

        @self.route("/crm/v3/owners", ["GET"])
        def owners():
            owner = self.owners.get(request.args.get("email", ""))
            return {"results": [{"id": owner, "email": request.args["email"]}] if owner else []}

        @self.route("/crm/v3/objects/companies/<company_id>", ["GET"])
        def company(company_id):
            record = self.objects["companies"].get(company_id)
            if record is None:
                return Response(json.dumps({"status": "error", "message": "not found"}), 404,
                                content_type="application/json")
            return {"id": company_id, "properties": {"hubspot_owner_id": record.get("hubspot_owner_id")}}

        @self.route("/crm/v3/objects/companies", ["GET"])
        def list_companies():
            first = list(self.objects["companies"])[:1]
            return {"results": [{"id": c, "properties": {}} for c in first]}
