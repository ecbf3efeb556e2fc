"""POST /api/v1/imports/accounts, /imports/contacts and /imports/intent: CSV body or multipart file,
imported by a job; GET /api/v1/imports/{id} follows it and GET /api/v1/imports lists the runs."""

from __future__ import annotations

import io

from sqlalchemy import select

from abm.db import db
from abm.models import Account, AuditLog, Contact, Event, ImportFile
from tests.imports.jobs import run_import_jobs

ACCOUNTS = "Company name,Company Domain Name,Number of Employees\nAcme,acme.com,\"1,200\"\nBad,,5\n"


def finished(client, resp) -> dict:
    """Run the queued import of ``resp`` (a 202) as a worker would; its report."""
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["status"] == "queued"
    run_import_jobs()
    run = client.get(resp.headers["Location"]).get_json()
    assert run["status"] == "done" and run["progress"] == 1.0, run
    return run["report"]


def test_csv_body_is_imported_by_a_job_that_reports_row_errors(api):
    client = api("manager")
    resp = client.post("/api/v1/imports/accounts", data=ACCOUNTS.encode(), content_type="text/csv")
    assert resp.status_code == 202 and resp.headers["Location"].endswith(f"/api/v1/imports/{resp.get_json()['id']}")
    assert db.session.execute(select(Account)).first() is None  # nothing imported in the request
    body = finished(client, resp)
    assert (body["created"], body["updated"], body["skipped"]) == (1, 0, 0)
    assert body["errors"] == [{"row": 3, "column": "domain", "message": "the domain is empty; row not imported"}]
    assert db.session.execute(select(Account.employees)).scalar_one() == 1200
    audit = db.session.execute(select(AuditLog).where(AuditLog.action == "import.accounts")).scalar_one()
    assert audit.actor_id == client.user.id


def test_multipart_file_of_contacts(api):
    client = api("admin")
    finished(client, client.post("/api/v1/imports/accounts", data=b"Domain\nacme.com\n", content_type="text/csv"))
    data = {"file": (io.BytesIO("Email;Prénom;Job Title\nzoe@acme.com;Zoë;CTO\n".encode("cp1252")), "c.csv")}
    report = finished(client, client.post("/api/v1/imports/contacts", data=data, content_type="multipart/form-data"))
    assert report["created"] == 1 and report["attribute_columns"] == {"Prénom": "prénom"}
    zoe = db.session.execute(select(Contact)).scalar_one()
    assert zoe.title == "CTO" and zoe.attributes == {"prénom": "Zoë"} and zoe.account_id is not None


def test_no_usable_header_is_422(api):
    resp = api("admin").post("/api/v1/imports/contacts", data=b"a@b.com,Ann\n", content_type="text/csv")
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "validation_error" and "no usable header" in error["message"]
    assert error["details"][0]["path"] == "(body)"


def test_multipart_without_a_file_is_422(api):
    resp = api("admin").post("/api/v1/imports/accounts", data={"kind": "x"}, content_type="multipart/form-data")
    assert resp.status_code == 422 and resp.get_json()["error"]["details"][0]["path"] == "file"


def test_roles_and_auth(api, app):
    resp = api("ae").post("/api/v1/imports/accounts", data=ACCOUNTS.encode(), content_type="text/csv")
    assert resp.status_code == 403
    resp = app.test_client().post("/api/v1/imports/accounts", data=ACCOUNTS.encode(), content_type="text/csv")
    assert resp.status_code == 401
    assert db.session.execute(select(Account)).first() is None


def test_json_body_is_415(api):
    resp = api("admin").post("/api/v1/imports/accounts", json={"domain": "acme.com"})
    assert resp.status_code == 415 and resp.get_json()["error"]["code"] == "unsupported_media_type"


def test_body_over_the_limit_is_413(api, app):
    app.config["MAX_CONTENT_LENGTH"] = 100
    resp = api("admin").post("/api/v1/imports/accounts", data=ACCOUNTS.encode() * 10, content_type="text/csv")
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "payload_too_large"


def test_idempotency_key_replays_the_first_run(api):
    client = api("admin")
    headers = {"Idempotency-Key": "import-1"}
    first = client.post("/api/v1/imports/accounts", data=ACCOUNTS.encode(), content_type="text/csv", headers=headers)
    again = client.post("/api/v1/imports/accounts", data=ACCOUNTS.encode(), content_type="text/csv", headers=headers)
    assert first.status_code == again.status_code == 202 and again.get_json() == first.get_json()
    assert run_import_jobs() == 1
    assert len(db.session.execute(select(AuditLog).where(AuditLog.action == "import.accounts")).all()) == 1


def test_runs_are_listed_newest_first_and_their_files_are_not_kept(api):
    client = api("manager")
    finished(client, client.post("/api/v1/imports/accounts", data=b"Domain\na.com\n", content_type="text/csv"))
    finished(client, client.post("/api/v1/imports/contacts", data=b"Email\nx@a.com\n", content_type="text/csv"))
    items = client.get("/api/v1/imports").get_json()["items"]
    assert [(r["kind"], r["status"], r["report"]["created"], r["actor"]) for r in items] == [
        ("contacts", "done", 1, client.user.email), ("accounts", "done", 1, client.user.email)]
    assert db.session.execute(select(ImportFile)).first() is None
    assert client.get("/api/v1/imports/999").status_code == 404
    assert api("ae").get("/api/v1/imports").status_code == 403


def test_operations_are_in_the_openapi_document(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    for kind in ("accounts", "contacts", "intent"):
        op = doc["paths"][f"/imports/{kind}"]["post"]
        assert set(op["requestBody"]["content"]) == {"text/csv", "multipart/form-data"}
        assert {"202", "401", "403", "413", "415", "422"} <= set(op["responses"])
    assert "get" in doc["paths"]["/imports/{run_id}"] and "get" in doc["paths"]["/imports"]


SURGE = ("Domain,Company Name,Topic,Composite Score,Week\n"
         "acme.example,Acme,Zero Trust,78,2026-11-23\n"
         "acme.example,Acme,SASE,150,2026-11-23\n"
         "acme.example,Acme,SD-WAN,61,last week\n"
         "newco.example,NewCo,Zero Trust,91,2026-11-23\n")


def _intent_events() -> list[tuple[str, str, int, int | None]]:
    db.session.expire_all()
    rows = db.session.execute(select(Event).where(Event.type == "intent").order_by(Event.id)).scalars()
    return [(e.properties["provider"], e.properties["topic"], e.properties["score"], e.account_id) for e in rows]


def test_an_intent_file_is_imported_by_a_job_good_rows_kept_bad_rows_located(api):
    acme = Account(name="Acme", domain="acme.example", stage="target")
    db.session.add(acme)
    db.session.commit()
    client = api("manager")
    resp = client.post("/api/v1/imports/intent", data=SURGE.encode(), content_type="text/csv")
    assert resp.status_code == 202 and resp.get_json()["kind"] == "intent"
    assert _intent_events() == []  # nothing imported in the request
    report = finished(client, resp)
    assert (report["rows"], report["created"], report["rejected"], report["unmatched"]) == (4, 2, 2, 1)
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(3, "score"), (4, "week")]
    assert "not a score from 0 to 100" in report["errors"][0]["message"]
    assert _intent_events() == [("bombora", "Zero Trust", 78, acme.id), ("bombora", "Zero Trust", 91, None)]
    audit = db.session.execute(select(AuditLog).where(AuditLog.action == "import.intent")).scalar_one()
    assert audit.actor_id == client.user.id and audit.details["created"] == 2

    again = {"file": (io.BytesIO(SURGE.encode()), "surge-again.csv")}
    report = finished(client, client.post("/api/v1/imports/intent", data=again, content_type="multipart/form-data"))
    assert (report["created"], report["unchanged"], report["rejected"]) == (0, 2, 2)  # a week counts once
    assert len(_intent_events()) == 2


def test_an_intent_files_provider_column_names_who_delivered_each_row(api):
    client = api("admin")
    body = b"Domain,Topic,Composite Score,Week,Provider\nacme.example,Zero Trust,70,2026-11-23,TechTarget\n" \
           b"acme.example,Zero Trust,70,2026-11-23,\n"
    report = finished(client, client.post("/api/v1/imports/intent", data=body, content_type="text/csv"))
    assert report["created"] == 2 and report["errors"] == []
    assert sorted(p for p, *_ in _intent_events()) == ["bombora", "techtarget"]


def test_an_intent_file_that_cannot_be_imported_is_422_at_once(api):
    client = api("manager")
    resp = client.post("/api/v1/imports/intent", data=b"Domain,Score,Week\nacme.example,70,2026-11-23\n",
                       content_type="text/csv")
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert "no topic column" in error["message"] and error["details"][0]["path"] == "(body)"
    latin1 = "Domain,Topic,Composite Score,Week\nacme.example,Sécurité,70,2026-11-23\n".encode("latin-1")
    resp = client.post("/api/v1/imports/intent", data={"file": (io.BytesIO(b"\xff\xfe" + latin1), "s.csv")},
                       content_type="multipart/form-data")
    assert resp.status_code == 422 and resp.get_json()["error"]["details"][0]["path"] == "file"
    assert client.get("/api/v1/imports").get_json()["items"] == []  # nothing queued
    assert api("ae").post("/api/v1/imports/intent", data=SURGE.encode(), content_type="text/csv").status_code == 403
