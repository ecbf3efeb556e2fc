"""Opportunities, users and tokens, workspace settings over the API."""

from __future__ import annotations

from sqlalchemy import select

from abm.db import db
from abm.models import Account, ApiToken, AuditLog, IdempotencyRecord, Opportunity, User, WorkspaceSettings


def _account(domain="acme.com") -> Account:
    a = Account(name="Acme", domain=domain, tags=[], attributes={}, crm_ids={})
    db.session.add(a)
    db.session.commit()
    return a


def test_opportunity_by_account_id_or_domain(api):
    c = api("manager")
    acme = _account()
    r = c.post("/api/v1/opportunities", json={"account_domain": "www.acme.com", "name": "Platform deal",
                                              "amount": 12000.5, "currency": "eur", "product": "platform",
                                              "created_at": "2026-11-02T10:00:00+01:00"})
    assert r.status_code == 201, r.json
    opp = r.json
    assert (opp["account_id"], opp["account_domain"], opp["amount"], opp["currency"]) == (acme.id, "acme.com",
                                                                                          12000.5, "EUR")
    assert opp["created_at"] == "2026-11-02T09:00:00+00:00"
    r = c.patch(f"/api/v1/opportunities/{opp['id']}", json={"won": True, "closed_at": "2026-11-20T12:00:00Z",
                                                            "stage": "closed won"})
    assert r.status_code == 200 and r.json["won"] is True and r.json["closed_at"] == "2026-11-20T12:00:00+00:00"
    assert db.session.execute(select(Opportunity.won)).scalar_one() is True
    assert c.post("/api/v1/opportunities", json={"account_id": acme.id, "name": "Second"}).json["currency"] == "USD"


def test_opportunity_errors(api):
    c = api("admin")
    acme = _account()
    cases = [({"name": "No account"}, "account_id"), ({"account_id": acme.id + 9, "name": "x"}, "account_id"),
             ({"account_domain": "nowhere.org", "name": "x"}, "account_domain"),
             ({"account_id": acme.id, "name": "x", "currency": "euro"}, "currency"),
             ({"account_id": acme.id, "name": "x", "created_at": "yesterday"}, "created_at"),
             ({"account_id": acme.id, "name": "x", "created_at": "2026-11-02T00:00:00Z",
               "closed_at": "2026-11-01T00:00:00Z"}, "closed_at"),
             ({"account_id": acme.id, "name": "x", "probability": 0.5}, "probability")]
    for payload, path in cases:
        r = c.post("/api/v1/opportunities", json=payload)
        assert r.status_code == 422, (payload, r.json)
        assert [d["path"] for d in r.json["error"]["details"]] == [path], r.json
    first = c.post("/api/v1/opportunities", json={"account_id": acme.id, "name": "A", "crm_id": "hs-1"}).json
    r = c.post("/api/v1/opportunities", json={"account_id": acme.id, "name": "B", "crm_id": "hs-1"})
    assert r.status_code == 409 and r.json["error"]["id"] == first["id"]
    assert c.patch("/api/v1/opportunities/999", json={"name": "x"}).status_code == 404
    assert db.session.execute(select(Opportunity.name)).scalars().all() == ["A"]


def test_users_and_tokens(api, client):
    c = api("admin")
    r = c.post("/api/v1/users", json={"email": "Sam@Example.com", "role": "ae", "name": "Sam"})
    assert r.status_code == 201 and (r.json["email"], r.json["role"]) == ("sam@example.com", "ae")
    assert "password" not in r.json and "password_hash" not in r.json
    sam = r.json["id"]
    dup = c.post("/api/v1/users", json={"email": "sam@example.com", "role": "manager"})
    assert dup.status_code == 409 and dup.json["error"]["id"] == sam
    for payload, path in [({"email": "x@example.com", "role": "boss"}, "role"),
                          ({"email": "nope", "role": "ae"}, "email"),
                          ({"email": "y@example.com", "role": "ae", "password": "short"}, "password")]:
        r = c.post("/api/v1/users", json=payload)
        assert r.status_code == 422 and r.json["error"]["details"][0]["path"] == path, r.json
    listed = c.get("/api/v1/users").json
    assert [u["email"] for u in listed["items"]] == [c.user.email, "sam@example.com"]
    r = c.post(f"/api/v1/users/{sam}/tokens", json={"name": "laptop"})
    assert r.status_code == 201 and r.json["token"].startswith("abm_") and r.json["name"] == "laptop"
    token = r.json["token"]
    stored = db.session.execute(select(ApiToken).where(ApiToken.user_id == sam)).scalar_one()
    assert stored.token_hash != token and token not in repr(vars(stored))
    me = client.get("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    denied = client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    assert c.post("/api/v1/users/4242/tokens", json={}).status_code == 404
    # A replayed token request does not show (nor store) the token again.
    first = c.post(f"/api/v1/users/{sam}/tokens", json={"name": "ci"}, headers={"Idempotency-Key": "tok"})
    again = c.post(f"/api/v1/users/{sam}/tokens", json={"name": "ci"}, headers={"Idempotency-Key": "tok"})
    assert first.json["token"].startswith("abm_") and again.json["token"] is None
    assert again.json["id"] == first.json["id"] and again.headers["Idempotent-Replayed"] == "true"
    stored = db.session.execute(select(IdempotencyRecord)).scalar_one()
    assert first.json["token"] not in repr(stored.response)
    assert len(db.session.execute(select(ApiToken).where(ApiToken.user_id == sam)).scalars().all()) == 2


def test_settings_get_and_put(api):
    c = api("admin")
    r = c.get("/api/v1/settings")
    assert r.status_code == 200 and r.json["stages"][0] == "target" and r.headers["X-Settings-Version"] == "0"
    r = c.put("/api/v1/settings", json={"half_life_days": 14, "thresholds": {"warm": 10, "hot": 40}})
    assert r.status_code == 200 and r.json["half_life_days"] == 14 and r.headers["X-Settings-Version"] == "1"
    assert c.get("/api/v1/settings").json["thresholds"] == {"warm": 10, "hot": 40}
    r = c.put("/api/v1/settings", json={"thresholds": {"warm": 50, "hot": 40}})
    assert r.status_code == 422 and r.json["error"]["details"][0]["path"] == "thresholds.warm"
    r = c.put("/api/v1/settings", json={"colour": "blue"})
    assert r.status_code == 422 and r.json["error"]["details"] == [{"path": "colour", "message": "unknown field"}]
    r = c.put("/api/v1/settings", json={"half_life_days": "long"})
    assert r.status_code == 422 and r.json["error"]["details"][0]["path"] == "half_life_days"
    assert len(db.session.execute(select(WorkspaceSettings)).scalars().all()) == 1
    # A new stage list is what the accounts API accepts from then on.
    c.put("/api/v1/settings", json={"stages": ["cold_lead", "hot_lead"]})
    assert c.post("/api/v1/accounts", json={"domain": "acme.com"}).json["stage"] == "cold_lead"
    assert c.post("/api/v1/accounts", json={"domain": "b.com", "stage": "target"}).status_code == 422


def test_a_users_time_zone_over_the_api(api):
    """The time zone the weekly digest follows: read and set by an admin for anyone, by
    each user for themselves only; an unknown zone is a 422 on `timezone`."""
    admin = api("admin")
    ae = api("ae")
    sam = ae.user.id
    assert ae.get("/api/v1/users/me").json["timezone"] is None
    r = admin.patch(f"/api/v1/users/{sam}", json={"timezone": "Europe/Paris"})
    assert r.status_code == 200 and r.json["timezone"] == "Europe/Paris" and r.json["id"] == sam
    assert ae.get(f"/api/v1/users/{sam}").json["timezone"] == "Europe/Paris"
    r = ae.patch("/api/v1/users/me", json={"timezone": "America/New_York"})
    assert r.status_code == 200 and r.json["timezone"] == "America/New_York"
    assert admin.get(f"/api/v1/users/{sam}").json["timezone"] == "America/New_York"
    for bad in ("Atlantis/Capital", "Europe/", "../etc/passwd"):
        r = admin.patch(f"/api/v1/users/{sam}", json={"timezone": bad})
        assert r.status_code == 422 and r.json["error"]["details"][0]["path"] == "timezone", r.json
        assert "unknown time zone" in r.json["error"]["details"][0]["message"]
    assert admin.patch(f"/api/v1/users/{sam}", json={"role": "admin"}).status_code == 422  # only the zone
    # Another user: an AE may neither read nor change them; an admin asking for nobody gets a 404.
    assert ae.get(f"/api/v1/users/{admin.user.id}").status_code == 403
    assert ae.patch(f"/api/v1/users/{admin.user.id}", json={"timezone": "UTC"}).status_code == 403
    assert admin.get("/api/v1/users/4242").status_code == 404
    r = admin.patch(f"/api/v1/users/{sam}", json={"timezone": None})  # back to the workspace's zone
    assert r.status_code == 200 and r.json["timezone"] is None
    db.session.expire_all()
    assert db.session.get(User, sam).timezone is None
    changes = db.session.execute(select(AuditLog.details).where(AuditLog.action == "user.timezone")
                                 .order_by(AuditLog.id)).scalars().all()
    assert [c["after"] for c in changes] == ["Europe/Paris", "America/New_York", None]
