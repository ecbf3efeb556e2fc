"""The accounts list (filters, counts, sort, cursor pages, own accounts first) and the
account page (fields, contacts by buying role, stage history, opportunities, stage form)."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from abm.db import db
from abm.models import Account, Contact, Opportunity, StageChange
from abm.web import accounts as accounts_page


def _names(html: str) -> list[str]:
    return re.findall(r'<td class="primary" data-label="Account"><a href="/accounts/\d+">([^<]+)</a>', html)


def _stage_count(html: str, stage: str) -> int:
    return int(re.search(rf'data-stage="{stage}"[^>]*>{stage} <span class="count">([\d,]+)<', html).group(1))


def _world(owner=None, other=None):
    rows = [
        Account(name="Acme", domain="acme.example", stage="aware", tier=1, score=40, engagement="warm",
                owner_id=other.id if other else None, industry="fintech"),
        Account(name="Globex", domain="globex.example", stage="engaged", tier=2, score=70, engagement="hot"),
        Account(name="Initech", domain="initech.example", stage="aware", tier=2, score=5,
                owner_id=owner.id if owner else None),
        Account(name="Umbrella", domain="umbrella.example", stage="target", tier=1, score=12),
        Account(name="Hooli", domain="hooli.example", stage="opportunity", tier=3, score=90, engagement="hot"),
    ]
    db.session.add_all(rows)
    db.session.commit()
    return {a.name: a for a in rows}


def test_list_filters_and_counts(as_role, quick_user):
    client = as_role("manager")
    _world(other=quick_user("ae", email="sam@example.com"))
    html = client.get("/accounts").get_data(as_text=True)
    assert _names(html) == ["Hooli", "Globex", "Acme", "Umbrella", "Initech"]  # score, highest first
    assert _stage_count(html, "aware") == 2 and _stage_count(html, "target") == 1
    assert "5 accounts match" in html

    html = client.get("/accounts?stage=aware").get_data(as_text=True)
    assert _names(html) == ["Acme", "Initech"]
    assert _stage_count(html, "engaged") == 1  # the chips still count every stage
    assert "2 accounts match" in html

    assert _names(client.get("/accounts?tier=1").get_data(as_text=True)) == ["Acme", "Umbrella"]
    html = client.get("/accounts?tier=2").get_data(as_text=True)
    assert _names(html) == ["Globex", "Initech"] and _stage_count(html, "aware") == 1
    assert _names(client.get("/accounts?q=GLOB").get_data(as_text=True)) == ["Globex"]
    assert _names(client.get("/accounts?q=umbrella.ex").get_data(as_text=True)) == ["Umbrella"]
    assert _names(client.get("/accounts?owner=sam@example.com").get_data(as_text=True)) == ["Acme"]
    assert _names(client.get("/accounts?owner=none&stage=aware").get_data(as_text=True)) == ["Initech"]
    assert _names(client.get("/accounts?engagement=hot").get_data(as_text=True)) == ["Hooli", "Globex"]
    assert _names(client.get("/accounts?sort=name").get_data(as_text=True)) == [
        "Acme", "Globex", "Hooli", "Initech", "Umbrella"]
    empty = client.get("/accounts?q=nothing-like-this").get_data(as_text=True)
    assert "No account matches these filters" in empty


def test_bad_filters_are_explained_not_crashed(as_role):
    client = as_role("manager")
    resp = client.get("/accounts?tier=gold")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "These filters cannot be used" in html and "<code>tier</code>" in html
    resp = client.get("/accounts?cursor=not-a-cursor")
    assert resp.status_code == 422 and "<code>cursor</code>" in resp.get_data(as_text=True)
    resp = client.get("/accounts?owner=ghost@example.com")
    assert resp.status_code == 422 and "ghost@example.com" in resp.get_data(as_text=True)


def test_cursor_pages_walk_the_whole_list_once(as_role, monkeypatch):
    monkeypatch.setattr(accounts_page, "PAGE_SIZE", 2)
    client = as_role("manager")
    _world()
    seen, url = [], "/accounts?sort=name&tier=1,2,3"
    for _ in range(5):
        html = client.get(url).get_data(as_text=True)
        seen += _names(html)
        found = re.search(r'rel="next" href="([^"]+)"', html)
        if not found:
            break
        url = found.group(1).replace("&amp;", "&")
        assert "sort=name" in url and "tier=1" in url  # filters and sort are kept
    assert seen == ["Acme", "Globex", "Hooli", "Initech", "Umbrella"]
    assert "First page" in html


def test_ae_sees_own_accounts_first_and_my_accounts(as_role):
    client = as_role("ae")
    _world(owner=client.user)
    html = client.get("/accounts").get_data(as_text=True)
    assert _names(html)[0] == "Initech"  # lowest score, but the AE's own
    assert _names(html)[1:] == ["Hooli", "Globex", "Acme", "Umbrella"]
    assert "Your accounts come first" in html
    assert re.search(r'<tr class="mine" data-account-id="\d+">\s*<td class="primary" data-label="Account">'
                     r'<a href="/accounts/\d+">Initech', html)
    mine = client.get("/accounts?owner=me").get_data(as_text=True)
    assert _names(mine) == ["Initech"] and "<h1>My accounts" in mine


def test_account_page_shows_fields_contacts_by_role_history_and_opportunities(as_role):
    client = as_role("ae")
    acme = _world()["Acme"]
    acme.employees, acme.annual_revenue, acme.tags = 1200, Decimal("5000000"), ["priority"]
    db.session.add_all([
        Contact(account_id=acme.id, email="zed@acme.example", first_name="Zed", last_name="Zulu",
                title="CFO", buying_role="decision_maker"),
        Contact(account_id=acme.id, email="amy@acme.example", first_name="Amy", last_name="Able",
                title="Engineer", buying_role="user", unsubscribed_at=acme.created_at),
        Contact(account_id=acme.id, email="bob@acme.example", first_name="Bob", last_name="Baker",
                buying_role="champion"),
        Contact(account_id=acme.id, email="nora@acme.example", first_name="Nora"),
        Opportunity(account_id=acme.id, name="Acme gateway", amount=Decimal("120000"), currency="EUR",
                    stage="proposal", product="secure-gateway"),
        StageChange(account_id=acme.id, from_stage="target", to_stage="aware", source="import"),
    ])
    db.session.commit()
    html = client.get(f"/accounts/{acme.id}").get_data(as_text=True)
    assert "<dt>Domain</dt>" in html and "acme.example" in html and "1,200" in html and "5,000,000" in html
    roles = re.findall(r'<div class="role-group" data-role="([^"]+)">', html)
    assert roles == ["decision_maker", "champion", "user", "none"]  # the workspace's order, no role last
    assert "Zed Zulu" in html and "CFO" in html and "unsubscribed" in html
    assert "Acme gateway" in html and "120,000 EUR" in html and "secure-gateway" in html
    assert "target → <strong>aware</strong>" in html and "by import" in html
    assert "Change the stage" not in html  # not the owner


def test_stage_change_by_manager_is_recorded_with_ui_source(as_role):
    client = as_role("manager")
    acme = _world()["Acme"]
    resp = client.post(f"/accounts/{acme.id}/stage", data={"stage": "engaged"})
    assert resp.status_code == 302 and resp.location == f"/accounts/{acme.id}"
    change = db.session.execute(select(StageChange).where(StageChange.account_id == acme.id)).scalar_one()
    assert (change.from_stage, change.to_stage, change.source, change.actor_id) == (
        "aware", "engaged", f"ui:{client.user.email}", client.user.id)
    assert db.session.get(Account, acme.id).stage == "engaged"
    html = client.get(f"/accounts/{acme.id}").get_data(as_text=True)
    assert "moved from aware to engaged" in html
    assert f"by ui:{client.user.email}" in html


def test_owning_ae_may_change_stage_other_ae_may_not(as_role):
    owner = as_role("ae")
    other = as_role("ae")
    acme = _world(owner=owner.user)["Initech"]
    assert "Change the stage" in owner.get(f"/accounts/{acme.id}").get_data(as_text=True)
    assert "Change the stage" not in other.get(f"/accounts/{acme.id}").get_data(as_text=True)
    resp = other.post(f"/accounts/{acme.id}/stage", data={"stage": "engaged"})
    assert resp.status_code == 403 and "owner" in resp.get_data(as_text=True)
    assert db.session.get(Account, acme.id).stage == "aware"
    assert owner.post(f"/accounts/{acme.id}/stage", data={"stage": "mqa"}).status_code == 302
    assert db.session.get(Account, acme.id).stage == "mqa"


def test_unknown_stage_is_a_field_error(as_role):
    client = as_role("admin")
    acme = _world()["Acme"]
    resp = client.post(f"/accounts/{acme.id}/stage", data={"stage": "won-big"})
    assert resp.status_code == 422
    assert "unknown stage" in resp.get_data(as_text=True)
    assert db.session.execute(select(StageChange)).first() is None


def test_owner_and_managers_edit_notes_others_read_them(as_role):
    owner = as_role("ae")
    other = as_role("ae")
    initech = _world(owner=owner.user)["Initech"]
    resp = owner.post(f"/accounts/{initech.id}/notes", data={"notes": "Budget <b>frozen</b> until Q3\r\nCall back"})
    assert resp.status_code == 302
    assert db.session.get(Account, initech.id).notes == "Budget <b>frozen</b> until Q3\nCall back"
    page = other.get(f"/accounts/{initech.id}").get_data(as_text=True)
    assert "Budget &lt;b&gt;frozen&lt;/b&gt; until Q3" in page and 'name="notes"' not in page
    assert other.post(f"/accounts/{initech.id}/notes", data={"notes": "mine now"}).status_code == 403
    assert as_role("manager").post(f"/accounts/{initech.id}/notes", data={"notes": ""}).status_code == 302
    assert db.session.get(Account, initech.id).notes is None


def test_notes_too_long_are_refused_and_the_page_still_shows_the_account(as_role):
    client = as_role("manager")
    acme = _world()["Acme"]
    db.session.add(Contact(account_id=acme.id, email="ann@acme.example", first_name="Ann", last_name="Lee"))
    db.session.commit()
    assert client.post(f"/accounts/{acme.id}/notes", data={"notes": "keep me"}).status_code == 302
    resp = client.post(f"/accounts/{acme.id}/notes", data={"notes": "x" * 100_001})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422 and 'aria-invalid="true"' in page and 'class="field-errors"' in page
    assert "Ann" in page and ">keep me</textarea>" in page  # the page reads on after the refused save
    db.session.expire_all()
    assert db.session.get(Account, acme.id).notes == "keep me"
