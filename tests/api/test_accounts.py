"""Accounts over the API: create, upsert, read, change, delete, stage history, list."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Account, AuditLog, Contact, StageChange
from tests.api.conftest import walk


def _err(r, status, code):
    assert r.status_code == status, r.get_data(as_text=True)
    assert set(r.json) == {"error"} and r.json["error"]["code"] == code
    assert isinstance(r.json["error"]["message"], str) and r.json["error"]["message"]
    return r.json["error"]


def test_create_normalises_domain_and_records_initial_stage(api):
    c = api("manager")
    r = c.post("/api/v1/accounts", json={"domain": "https://www.Acme.COM/about", "name": "Acme",
                                         "tier": 1, "tags": ["fintech", "fintech", "eu"], "annual_revenue": 1.5e6,
                                         "owner": c.user.email, "timezone": "Europe/Paris"})
    assert r.status_code == 201, r.json
    body = r.json
    assert body["domain"] == "acme.com" and body["name"] == "Acme" and body["stage"] == "target"
    assert body["tags"] == ["fintech", "eu"] and body["annual_revenue"] == 1.5e6
    assert body["owner"] == {"id": c.user.id, "email": c.user.email, "name": c.user.name}
    assert body["counts"] == {"contacts": 0, "opportunities": 0, "events": 0, "touches": 0}
    assert r.headers["Location"].endswith(f"/api/v1/accounts/{body['id']}")
    created = datetime.fromisoformat(body["created_at"])
    assert created.utcoffset().total_seconds() == 0 and body["created_at"].endswith("+00:00")
    history = db.session.execute(select(StageChange).where(StageChange.account_id == body["id"])).scalars().all()
    assert [(h.from_stage, h.to_stage, h.source) for h in history] == [(None, "target", f"api:{c.user.email}")]


def test_create_known_domain_is_409_with_the_existing_id(api):
    c = api("admin")
    first = c.post("/api/v1/accounts", json={"domain": "acme.com", "name": "Acme"}).json
    err = _err(c.post("/api/v1/accounts", json={"domain": "WWW.ACME.COM", "name": "Other"}), 409, "conflict")
    assert err["id"] == first["id"] and "acme.com" in err["message"]
    assert db.session.execute(select(Account.name)).scalars().all() == ["Acme"]


BAD_CREATES = [
    ({"name": "No domain"}, ["domain"]),
    ({"domain": "not a domain"}, ["domain"]),
    ({"domain": "acme.com", "tier": "one", "employees": -3}, ["employees", "tier"]),
    ({"domain": "acme.com", "colour": "red", "size": 2}, ["colour", "size"]),
    ({"domain": "acme.com", "stage": "dreaming"}, ["stage"]),
    ({"domain": "acme.com", "owner": "nobody@example.com"}, ["owner"]),
    ({"domain": "acme.com", "timezone": "Mars/Olympus"}, ["timezone"]),
]


def test_create_rejects_bad_fields_naming_each(api):
    c = api("admin")
    for payload, paths in BAD_CREATES:
        err = _err(c.post("/api/v1/accounts", json=payload), 422, "validation_error")
        assert sorted(d["path"] for d in err["details"]) == paths, payload
        assert all(d["message"] for d in err["details"])
    assert db.session.execute(select(Account.id)).first() is None


def test_unknown_field_message(api):
    err = _err(api("admin").post("/api/v1/accounts", json={"domain": "acme.com", "colour": "red"}),
               422, "validation_error")
    assert err["details"] == [{"path": "colour", "message": "unknown field"}]
    assert err["message"] == "1 field is invalid"


def test_body_must_be_json_object(api):
    c = api("admin")
    _err(c.post("/api/v1/accounts", data="{not json", content_type="application/json"), 422, "validation_error")
    _err(c.post("/api/v1/accounts", json=["acme.com"]), 422, "validation_error")
    _err(c.post("/api/v1/accounts"), 422, "validation_error")


def test_upsert_by_domain_creates_then_updates(api):
    c = api("admin")
    r = c.put("/api/v1/accounts/by-domain/Globex.com", json={"name": "Globex", "tier": 2})
    assert r.status_code == 201 and r.json["domain"] == "globex.com" and r.json["tier"] == 2
    r2 = c.put("/api/v1/accounts/by-domain/globex.com", json={"industry": "Energy", "stage": "aware"})
    assert r2.status_code == 200 and r2.json["id"] == r.json["id"]
    assert (r2.json["name"], r2.json["tier"], r2.json["industry"], r2.json["stage"]) == ("Globex", 2, "Energy", "aware")
    err = _err(c.put("/api/v1/accounts/by-domain/globex.com", json={"domain": "acme.com"}), 422, "validation_error")
    assert err["details"][0]["path"] == "domain"
    _err(c.put("/api/v1/accounts/by-domain/nodots", json={}), 422, "validation_error")
    assert db.session.execute(select(Account.id)).scalars().all() == [r.json["id"]]


def test_get_has_owner_score_engagement_counts(api, make_user):
    c = api("ae")
    owner = make_user("manager")
    account = Account(name="Acme", domain="acme.com", owner_id=owner.id, score=42.456, engagement="warm",
                      stage="engaged", tags=[], attributes={}, crm_ids={})
    db.session.add(account)
    db.session.flush()
    db.session.add_all([Contact(account_id=account.id, email="a@acme.com"), Contact(account_id=account.id, email="b@acme.com")])
    db.session.commit()
    r = c.get(f"/api/v1/accounts/{account.id}")
    assert r.status_code == 200
    assert r.json["score"] == 42.46 and r.json["engagement"] == "warm" and r.json["stage"] == "engaged"
    assert r.json["owner"]["email"] == owner.email
    assert r.json["counts"]["contacts"] == 2
    _err(c.get("/api/v1/accounts/999999"), 404, "not_found")
    _err(c.get("/api/v1/accounts/99999999999999999999"), 404, "not_found")


def test_patch_stage_is_recorded_with_its_source(api):
    c = api("manager")
    aid = c.post("/api/v1/accounts", json={"domain": "acme.com"}).json["id"]
    r = c.patch(f"/api/v1/accounts/{aid}", json={"stage": "engaged", "notes": "met at the fair"})
    assert r.status_code == 200 and r.json["stage"] == "engaged" and r.json["notes"] == "met at the fair"
    c.patch(f"/api/v1/accounts/{aid}", json={"stage": "engaged"})  # unchanged: no new history row
    c.patch(f"/api/v1/accounts/{aid}", json={"stage": "opportunity"})
    r = c.get(f"/api/v1/accounts/{aid}/stages")
    assert r.status_code == 200 and r.json["next_cursor"] is None
    assert [(s["from_stage"], s["to_stage"]) for s in r.json["items"]] == [
        ("engaged", "opportunity"), ("target", "engaged"), (None, "target")]
    assert {s["source"] for s in r.json["items"]} == {f"api:{c.user.email}"}
    assert {s["actor_id"] for s in r.json["items"]} == {c.user.id}
    page = c.get(f"/api/v1/accounts/{aid}/stages?limit=2").json
    rest = c.get(f"/api/v1/accounts/{aid}/stages?limit=2&cursor={page['next_cursor']}").json
    assert [s["id"] for s in page["items"] + rest["items"]] == [s["id"] for s in r.json["items"]]
    err = _err(c.patch(f"/api/v1/accounts/{aid}", json={"stage": "dreaming"}), 422, "validation_error")
    assert err["details"][0]["path"] == "stage" and "opportunity" in err["details"][0]["message"]
    _err(c.get("/api/v1/accounts/424242/stages"), 404, "not_found")


def test_patch_owner_domain_and_conflict(api, make_user):
    c = api("admin")
    ae = make_user("ae")
    a = c.post("/api/v1/accounts", json={"domain": "acme.com"}).json["id"]
    b = c.post("/api/v1/accounts", json={"domain": "globex.com"}).json["id"]
    r = c.patch(f"/api/v1/accounts/{a}", json={"owner": ae.id, "domain": "acme.io"})
    assert r.status_code == 200 and r.json["owner"]["id"] == ae.id and r.json["domain"] == "acme.io"
    assert _err(c.patch(f"/api/v1/accounts/{b}", json={"domain": "acme.io"}), 409, "conflict")["id"] == a
    assert c.patch(f"/api/v1/accounts/{a}", json={"owner": None}).json["owner"] is None
    _err(c.patch("/api/v1/accounts/4242", json={"notes": "x"}), 404, "not_found")


def test_delete(api):
    c = api("admin")
    aid = c.post("/api/v1/accounts", json={"domain": "acme.com"}).json["id"]
    c.post("/api/v1/contacts", json={"email": "jane@acme.com"})
    r = c.delete(f"/api/v1/accounts/{aid}")
    assert r.status_code == 204 and r.data == b""
    assert db.session.execute(select(Account.id)).first() is None
    assert db.session.execute(select(Contact.id)).first() is None
    assert db.session.execute(select(AuditLog.action).where(AuditLog.action == "account.delete")).first()
    _err(c.delete(f"/api/v1/accounts/{aid}"), 404, "not_found")
    _err(c.get(f"/api/v1/accounts/{aid}"), 404, "not_found")


# -- the list -----------------------------------------------------------------------

@pytest.fixture
def catalogue(seed_accounts, make_user):
    ae, other = make_user("ae"), make_user("ae")
    rows = []
    for i in range(24):
        rows.append({"name": f"Company {i:02d}" if i % 3 else f"company {i:02d} labs", "domain": f"c{i:02d}.com",
                     "stage": ["target", "aware", "engaged"][i % 3], "tier": 1 + i % 2,
                     "engagement": ["cold", "warm", "hot"][i % 3], "score": float(i // 4),
                     "owner_id": ae.id if i < 6 else other.id if i < 10 else None})
    ids = seed_accounts(rows)
    return {"ae": ae, "other": other, "rows": rows, "ids": ids}


def _domains(pages):
    return [a["domain"] for page in pages for a in page]


def test_list_filters(api, catalogue):
    c = api("manager")
    rows = catalogue["rows"]

    def got(query):
        r = c.get(f"/api/v1/accounts?{query}&limit=500")
        assert r.status_code == 200, r.json
        assert r.json["next_cursor"] is None
        return sorted(a["domain"] for a in r.json["items"])

    def want(pred):
        return sorted(r["domain"] for r in rows if pred(r))

    assert got("stage=aware") == want(lambda r: r["stage"] == "aware")
    assert got("stage=aware,engaged") == want(lambda r: r["stage"] in ("aware", "engaged"))
    assert got("tier=2") == want(lambda r: r["tier"] == 2)
    assert got("engagement=hot") == want(lambda r: r["engagement"] == "hot")
    assert got(f"owner={catalogue['ae'].email}") == want(lambda r: r["owner_id"] == catalogue["ae"].id)
    assert got(f"owner={catalogue['other'].id}") == want(lambda r: r["owner_id"] == catalogue["other"].id)
    assert got("owner=none") == want(lambda r: r["owner_id"] is None)
    assert got("q=LABS") == want(lambda r: "labs" in r["name"])
    assert got("q=c07") == ["c07.com"]
    assert got("stage=aware&tier=2&engagement=warm") == want(
        lambda r: r["stage"] == "aware" and r["tier"] == 2 and r["engagement"] == "warm")
    assert got("q=%25") == []  # LIKE wildcards are searched literally
    for bad in ("engagement=boiling", "tier=x", "owner=ghost@example.com", "sort=colour", "limit=0",
                "limit=501", "limit=ten", "cursor=garbage", "colour=red"):
        r = c.get(f"/api/v1/accounts?{bad}")
        assert r.status_code == 422, (bad, r.json)
        assert r.json["error"]["details"][0]["path"] == bad.split("=")[0]


SORTS = ["-score", "score", "name", "-name", "domain", "-updated_at", "created_at", "stage"]


def test_pages_have_no_duplicates_or_gaps(api, catalogue):
    c = api("manager")
    for sort in SORTS:
        pages = walk(c, f"/api/v1/accounts?sort={sort}", limit=5)
        assert [len(p) for p in pages] == [5, 5, 5, 5, 4], sort
        seen = _domains(pages)
        assert sorted(seen) == sorted(r["domain"] for r in catalogue["rows"]), sort
        one = c.get(f"/api/v1/accounts?sort={sort}&limit=500").json["items"]
        assert seen == [a["domain"] for a in one], sort  # paging walks the order of one big page
        key = sort.lstrip("-")
        values = [a[key].lower() if key == "name" else a[key] for a in one]
        assert values == sorted(values, reverse=sort.startswith("-")), sort


def test_pages_see_rows_added_meanwhile_once(api, catalogue, seed_accounts):
    c = api("manager")
    first = c.get("/api/v1/accounts?sort=name&limit=10").json
    seed_accounts([{"name": "AAA first", "domain": "aaa.com"}, {"name": "Zzz last", "domain": "zzz.com"}])
    rest = walk(c, "/api/v1/accounts?sort=name", limit=10, cursor=first["next_cursor"])
    seen = [a["domain"] for a in first["items"]] + _domains(rest)
    assert len(seen) == len(set(seen)) == 25  # the new row before the cursor is not seen, the one after is
    assert "zzz.com" in seen and "aaa.com" not in seen


def test_default_sort_is_score_descending_and_filters_page_too(api, catalogue):
    c = api("admin")
    items = c.get("/api/v1/accounts?limit=500").json["items"]
    assert [a["score"] for a in items] == sorted((a["score"] for a in items), reverse=True)
    pages = walk(c, "/api/v1/accounts?stage=engaged&sort=name", limit=3)
    assert sorted(_domains(pages)) == sorted(r["domain"] for r in catalogue["rows"] if r["stage"] == "engaged")
    first = c.get("/api/v1/accounts?sort=name&limit=3").json
    err = c.get(f"/api/v1/accounts?sort=-score&cursor={first['next_cursor']}").json["error"]
    assert err["details"][0]["path"] == "cursor"


def test_ae_sees_own_accounts_first(api, catalogue):
    c = api("ae", user=catalogue["ae"])
    for limit in (3, 4, 6, 7, 50):  # pages ending inside, at and after the end of their own accounts
        pages = walk(c, "/api/v1/accounts?sort=name", limit=limit)
        items = [a for p in pages for a in p]
        assert len(items) == 24 and len({a["id"] for a in items}) == 24, limit
        assert all(len(p) == limit for p in pages[:-1]) and pages[-1], limit
        mine = [a["owner"] is not None and a["owner"]["id"] == catalogue["ae"].id for a in items]
        assert mine == [True] * 6 + [False] * 18, limit
        assert [a["name"].lower() for a in items[:6]] == sorted(a["name"].lower() for a in items[:6])
        assert [a["name"].lower() for a in items[6:]] == sorted(a["name"].lower() for a in items[6:])
    assert len(c.get("/api/v1/accounts?owner=me&limit=500").json["items"]) == 6
    manager_view = api("manager").get("/api/v1/accounts?sort=name&limit=500").json["items"]
    assert [a["name"].lower() for a in manager_view] == sorted(a["name"].lower() for a in manager_view)
