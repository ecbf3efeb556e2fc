"""Contacts over the API, and the GDPR erase."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from abm.db import db, utcnow
from abm.models import (
    Account,
    Alert,
    AuditLog,
    Contact,
    Enrollment,
    Event,
    IdempotencyRecord,
    Playbook,
    PlaybookVersion,
    Suppression,
    Touch,
)
from abm.services.contacts import is_suppressed
from tests.api.conftest import walk


def _account(domain="acme.com", owner_id=None) -> Account:
    a = Account(name=domain.split(".")[0].title(), domain=domain, owner_id=owner_id, tags=[], attributes={},
                crm_ids={})
    db.session.add(a)
    db.session.commit()
    return a


def test_create_links_account_by_id_domain_or_email(api):
    c = api("manager")
    acme, globex = _account(), _account("globex.com")
    r = c.post("/api/v1/contacts", json={"email": " Jane@ACME.com ", "first_name": "Jane", "last_name": "Doe",
                                         "role": "champion", "title": "CTO"})
    assert r.status_code == 201, r.json
    assert r.json["email"] == "jane@acme.com" and r.json["account_id"] == acme.id
    assert r.json["full_name"] == "Jane Doe" and r.json["role"] == "champion"
    assert r.headers["Location"].endswith(f"/api/v1/contacts/{r.json['id']}")
    assert c.post("/api/v1/contacts", json={"email": "bo@gmail.com", "account_domain": "globex.com"}
                  ).json["account_id"] == globex.id
    assert c.post("/api/v1/contacts", json={"email": "al@other.org", "account_id": globex.id}).json["account_id"] == globex.id
    assert c.post("/api/v1/contacts", json={"email": "free@gmail.com"}).json["account_id"] is None
    got = c.get(f"/api/v1/contacts/{r.json['id']}")
    assert got.status_code == 200 and got.json == r.json


def test_create_errors(api):
    c = api("admin")
    acme = _account()
    first = c.post("/api/v1/contacts", json={"email": "jane@acme.com"}).json
    r = c.post("/api/v1/contacts", json={"email": "JANE@acme.com"})
    assert r.status_code == 409 and r.json["error"]["id"] == first["id"]
    cases = [({"first_name": "X"}, "email"), ({"email": "nope"}, "email"),
             ({"email": "x@acme.com", "role": "wizard"}, "role"),
             ({"email": "x@acme.com", "account_id": acme.id + 100}, "account_id"),
             ({"email": "x@acme.com", "account_domain": "unknown.org"}, "account_domain"),
             ({"email": "x@acme.com", "shoe_size": 42}, "shoe_size")]
    for payload, path in cases:
        r = c.post("/api/v1/contacts", json=payload)
        assert r.status_code == 422, payload
        assert [d["path"] for d in r.json["error"]["details"]] == [path], r.json


def test_patch_and_404(api):
    c = api("admin")
    _account()
    globex = _account("globex.com")
    cid = c.post("/api/v1/contacts", json={"email": "jane@acme.com"}).json["id"]
    c.post("/api/v1/contacts", json={"email": "bob@acme.com"})
    r = c.patch(f"/api/v1/contacts/{cid}", json={"title": "VP", "account_domain": "globex.com", "role": "user"})
    assert r.status_code == 200 and (r.json["title"], r.json["account_id"], r.json["role"]) == ("VP", globex.id, "user")
    r = c.patch(f"/api/v1/contacts/{cid}", json={"email": "bob@acme.com"})
    assert r.status_code == 409
    assert c.patch("/api/v1/contacts/9999", json={"title": "x"}).status_code == 404
    assert c.get("/api/v1/contacts/9999").json["error"]["code"] == "not_found"


def test_list_filters_and_pages(api, make_user):
    ae = make_user("ae")
    acme, globex = _account(), _account("globex.com", owner_id=ae.id)
    for i in range(9):
        acc = acme if i % 2 else globex
        db.session.add(Contact(account_id=acc.id, email=f"p{i}@{acc.domain}", first_name=f"Person{i}",
                               buying_role="champion" if i % 3 == 0 else "user", attributes={}, crm_ids={}))
    db.session.commit()
    c = api("manager")
    pages = walk(c, "/api/v1/contacts", limit=2)
    ids = [x["id"] for p in pages for x in p]
    assert len(ids) == 9 and ids == sorted(set(ids))
    assert {x["email"] for x in c.get(f"/api/v1/contacts?account_id={acme.id}").json["items"]} == {
        "p1@acme.com", "p3@acme.com", "p5@acme.com", "p7@acme.com"}
    assert len(c.get("/api/v1/contacts?role=champion").json["items"]) == 3
    assert [x["email"] for x in c.get("/api/v1/contacts?q=person4").json["items"]] == ["p4@globex.com"]
    assert c.get("/api/v1/contacts?account_id=abc").status_code == 422
    assert c.get("/api/v1/contacts?colour=red").status_code == 422
    mine_first = [x["account_id"] for p in walk(api("ae", user=ae), "/api/v1/contacts", limit=2) for x in p]
    assert mine_first == [globex.id] * 5 + [acme.id] * 4


def _world():
    acme = _account()
    jane = Contact(account_id=acme.id, email="jane@acme.com", first_name="Jane", last_name="Doe", phone="+331",
                   title="CTO", attributes={"linkedin": "jdoe"}, crm_ids={"hubspot": "77"})
    bob = Contact(account_id=acme.id, email="bob@acme.com", first_name="Bob", attributes={}, crm_ids={})
    db.session.add_all([jane, bob])
    pb = Playbook(key="intro", name="Intro", status="active")
    db.session.add(pb)
    db.session.flush()
    ver = PlaybookVersion(playbook_id=pb.id, version=1, source="", compiled={})
    db.session.add(ver)
    db.session.flush()
    enr = Enrollment(playbook_id=pb.id, version_id=ver.id, account_id=acme.id)
    db.session.add(enr)
    db.session.flush()
    now = utcnow()
    sent = Touch(enrollment_id=enr.id, playbook_id=pb.id, account_id=acme.id, contact_id=jane.id,
                 contact_key=jane.id, step_id="intro", kind="email", channel="email", status="failed",
                 payload={"to": "jane@acme.com", "subject": "Hi Jane"}, error="550 jane@acme.com unknown")
    later = Touch(enrollment_id=enr.id, playbook_id=pb.id, account_id=acme.id, contact_id=jane.id,
                  contact_key=jane.id, step_id="follow", kind="email", channel="email", status="scheduled",
                  payload={"to": "jane@acme.com"})
    db.session.add_all([sent, later])
    db.session.add_all([
        Event(type="email_open", occurred_at=now, account_id=acme.id, contact_id=jane.id, email="jane@acme.com",
              properties={"ip": "1.2.3.4"}),
        Event(type="form_fill", occurred_at=now, account_id=acme.id, contact_id=None, email="jane@acme.com",
              properties={"name": "Jane Doe"}),
        Event(type="email_open", occurred_at=now, account_id=acme.id, contact_id=bob.id, email="bob@acme.com",
              properties={}),
        Alert(account_id=acme.id, kind="surge", message="Jane Doe (jane@acme.com) filled the demo form"),
    ])
    db.session.commit()
    return acme, jane, bob


def test_gdpr_erase(api):
    c = api("manager")
    acme, jane, bob = _world()
    r = c.patch(f"/api/v1/contacts/{jane.id}", json={"title": "CTO"}, headers={"Idempotency-Key": "jane-title"})
    assert r.status_code == 200 and r.json["email"] == "jane@acme.com"
    before = api("admin").get(f"/api/v1/accounts/{acme.id}").json["counts"]
    r = c.delete(f"/api/v1/contacts/{jane.id}")
    assert r.status_code == 204
    db.session.expire_all()
    row = db.session.get(Contact, jane.id)
    assert row.erased_at is not None
    assert (row.email, row.first_name, row.last_name, row.phone, row.title, row.attributes, row.crm_ids) == (
        None, None, None, None, None, {}, {})
    # The person is gone from the API and from every table that held them.
    assert c.get(f"/api/v1/contacts/{jane.id}").status_code == 404
    assert c.delete(f"/api/v1/contacts/{jane.id}").status_code == 404
    assert "jane@acme.com" not in [x["email"] for x in c.get("/api/v1/contacts").json["items"]]
    events = db.session.execute(select(Event).order_by(Event.id)).scalars().all()
    assert [(e.email, e.properties) for e in events] == [(None, {}), (None, {}), ("bob@acme.com", {})]
    touches = db.session.execute(select(Touch).order_by(Touch.id)).scalars().all()
    assert [t.payload for t in touches] == [{"erased": True}, {"erased": True}]
    assert [t.status for t in touches] == ["failed", "skipped"]
    assert "jane@acme.com" not in touches[0].error
    alert = db.session.execute(select(Alert)).scalar_one()
    assert "jane" not in alert.message.lower() and "Doe" not in alert.message
    for table in (Contact, Event, Touch, Alert, AuditLog, IdempotencyRecord):
        for obj in db.session.execute(select(table)).scalars():
            text = repr({k: v for k, v in vars(obj).items() if not k.startswith("_")})
            assert "jane@acme.com" not in text, (table.__name__, text)
    # Aggregates stay: the events still count for the account and the contact row still exists.
    after = api("admin").get(f"/api/v1/accounts/{acme.id}").json["counts"]
    assert after["events"] == before["events"] == 3 and after["touches"] == before["touches"] == 2
    assert after["contacts"] == before["contacts"] - 1
    assert db.session.execute(select(func.count()).select_from(Event).where(Event.contact_id == jane.id)).scalar() == 1
    # The address is suppressed as a hash, and refused when it comes back.
    digest = hashlib.sha256(b"jane@acme.com").hexdigest()
    sup = db.session.execute(select(Suppression)).scalar_one()
    assert (sup.email_hash, sup.reason) == (digest, "erased")
    r = c.post("/api/v1/contacts", json={"email": "Jane@Acme.com"})
    assert r.status_code == 422 and r.json["error"]["details"][0]["path"] == "email"
    assert "suppression" in r.json["error"]["details"][0]["message"]
    r = c.patch(f"/api/v1/contacts/{bob.id}", json={"email": "jane@acme.com"})
    assert r.status_code == 422
    assert is_suppressed("JANE@acme.com") and not is_suppressed("bob@acme.com")
