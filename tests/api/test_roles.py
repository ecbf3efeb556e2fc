"""The spec's role table on every route of accounts, contacts, opportunities, users, settings.

| | admin | manager | ae |
| accounts, contacts: read | all | all | all (own first) |
| accounts, contacts: write | yes | yes | own accounts: stage, notes |
| users, settings | yes | no | no |
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from abm.db import db
from abm.models import Account, Contact, Opportunity, User, WorkspaceSettings

READ = ("admin", "manager", "ae")
WRITE = ("admin", "manager")
ADMIN = ("admin",)


def _routes(ids: dict) -> list[tuple[str, str, dict | None, tuple]]:
    a, other, contact, opp, user = ids["own"], ids["other"], ids["contact"], ids["opp"], ids["user"]
    return [
        ("GET", "/api/v1/accounts", None, READ),
        ("GET", f"/api/v1/accounts/{a}", None, READ),
        ("GET", f"/api/v1/accounts/{a}/stages", None, READ),
        ("POST", "/api/v1/accounts", {"domain": "new-{role}.com"}, WRITE),
        ("PUT", "/api/v1/accounts/by-domain/put-{role}.com", {"name": "Put"}, WRITE),
        ("PATCH", f"/api/v1/accounts/{other}", {"notes": "by {role}"}, WRITE),
        ("PATCH", f"/api/v1/accounts/{a}", {"tier": 3}, WRITE),
        ("GET", "/api/v1/contacts", None, READ),
        ("GET", f"/api/v1/contacts/{contact}", None, READ),
        ("POST", "/api/v1/contacts", {"email": "x-{role}@own.com"}, WRITE),
        ("PATCH", f"/api/v1/contacts/{contact}", {"title": "by {role}"}, WRITE),
        ("POST", "/api/v1/opportunities", {"account_id": a, "name": "Deal {role}"}, WRITE),
        ("PATCH", f"/api/v1/opportunities/{opp}", {"amount": 10}, WRITE),
        ("GET", "/api/v1/users", None, ADMIN),
        ("POST", "/api/v1/users", {"email": "made-by-{role}@example.com", "role": "ae"}, ADMIN),
        ("POST", f"/api/v1/users/{user}/tokens", {"name": "by {role}"}, ADMIN),
        ("GET", "/api/v1/settings", None, ADMIN),
        ("PUT", "/api/v1/settings", {"half_life_days": 14}, ADMIN),
        ("DELETE", f"/api/v1/contacts/{contact}", None, WRITE),
        ("DELETE", f"/api/v1/accounts/{other}", None, WRITE),
    ]


def _state():
    def n(model):
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()

    db.session.expire_all()
    accounts = db.session.execute(select(Account.domain, Account.notes, Account.tier, Account.stage)
                                  .order_by(Account.id)).all()
    contacts = db.session.execute(select(Contact.email, Contact.title, Contact.erased_at).order_by(Contact.id)).all()
    opps = db.session.execute(select(Opportunity.name, Opportunity.amount).order_by(Opportunity.id)).all()
    return accounts, contacts, opps, n(User), n(WorkspaceSettings)


@pytest.mark.parametrize("role", ["admin", "manager", "ae"])
def test_each_role_on_each_route(api, make_user, role):
    c = api(role)
    own = Account(name="Own", domain="own.com", owner_id=c.user.id, tags=[], attributes={}, crm_ids={})
    other = Account(name="Other", domain="other.com", tags=[], attributes={}, crm_ids={})
    db.session.add_all([own, other])
    db.session.flush()
    contact = Contact(account_id=own.id, email="jane@own.com", attributes={}, crm_ids={})
    opp = Opportunity(account_id=own.id, name="Deal")
    db.session.add_all([contact, opp])
    db.session.commit()
    ids = {"own": own.id, "other": other.id, "contact": contact.id, "opp": opp.id, "user": make_user("ae").id}
    for method, url, body, allowed in _routes(ids):
        url = url.format(role=role)
        body = {k: v.format(role=role) if isinstance(v, str) else v for k, v in body.items()} if body else None
        before = _state()
        r = c.open(url, method=method, json=body)
        if role in allowed:
            assert r.status_code < 300, (role, method, url, r.json)
        else:
            assert r.status_code == 403, (role, method, url, r.status_code)
            assert r.json["error"]["code"] == "forbidden"
            assert _state() == before, (role, method, url, "changed something")


def test_ae_changes_stage_and_notes_of_own_accounts_only(api, make_user):
    c = api("ae")
    own = Account(name="Own", domain="own.com", owner_id=c.user.id, tags=[], attributes={}, crm_ids={})
    theirs = Account(name="Theirs", domain="theirs.com", owner_id=make_user("ae").id, tags=[], attributes={},
                     crm_ids={})
    db.session.add_all([own, theirs])
    db.session.commit()
    r = c.patch(f"/api/v1/accounts/{own.id}", json={"stage": "engaged", "notes": "call Tuesday"})
    assert r.status_code == 200 and (r.json["stage"], r.json["notes"]) == ("engaged", "call Tuesday")
    r = c.patch(f"/api/v1/accounts/{own.id}", json={"stage": "mqa", "owner": None})
    assert r.status_code == 403 and [d["path"] for d in r.json["error"]["details"]] == ["owner"]
    assert c.patch(f"/api/v1/accounts/{theirs.id}", json={"notes": "mine now"}).status_code == 403
    db.session.expire_all()
    assert (db.session.get(Account, own.id).stage, db.session.get(Account, theirs.id).notes) == ("engaged", None)
