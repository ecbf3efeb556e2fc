"""Admin pages: users, API tokens (shown once, revocable) and the workspace settings form."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select

from abm.auth import hash_token
from abm.db import db
from abm.models import Account, ApiToken, AuditLog, User, WorkspaceSettings
from abm.services import events, scores
from abm.services import settings as settings_service
from tests.engagement.test_scores import _line


def test_only_admins_reach_admin_pages(as_role):
    for role in ("manager", "ae"):
        client = as_role(role)
        for method, path in (("get", "/admin/users"), ("post", "/admin/users"), ("get", "/admin/settings"),
                             ("post", "/admin/settings"), ("post", "/admin/users/1/tokens"),
                             ("post", "/admin/tokens/1/revoke")):
            assert getattr(client, method)(path).status_code == 403, (role, method, path)


def test_admin_creates_users_with_field_errors(as_role):
    client = as_role("admin")
    resp = client.post("/admin/users", data={"email": "New.Person@Example.com", "name": "New", "role": "manager",
                                             "password": "long-enough-pw"})
    assert resp.status_code == 302
    user = db.session.execute(select(User).where(User.email == "new.person@example.com")).scalar_one()
    assert user.role == "manager"
    assert "User new.person@example.com created (manager)" in client.get("/admin/users").get_data(as_text=True)

    resp = client.post("/admin/users", data={"email": "new.person@example.com", "role": "ae"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert re.search(r'id="err-email">\s*<li>a user with email new.person@example.com exists already', html)
    assert 'value="new.person@example.com"' in html  # what was typed is kept
    resp = client.post("/admin/users", data={"email": "x@example.com", "role": "ae", "password": "short"})
    assert resp.status_code == 422 and 'id="err-password"' in resp.get_data(as_text=True)


def test_token_is_shown_once_and_can_be_revoked(as_role, quick_user):
    client = as_role("admin")
    sam = quick_user("ae", email="sam@example.com")
    resp = client.post(f"/admin/users/{sam.id}/tokens", data={"name": "laptop script"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)
    assert "shown only this once" in html
    row = db.session.execute(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).scalar_one()
    assert row.user_id == sam.id and row.name == "laptop script" and token not in (row.prefix + "x")

    listing = client.get("/admin/users").get_data(as_text=True)
    assert token not in listing and row.prefix in listing
    api = client.application.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/accounts", headers=auth).status_code == 200

    resp = client.post(f"/admin/tokens/{row.id}/revoke")
    assert resp.status_code == 302
    db.session.refresh(row)
    assert row.revoked_at is not None
    assert api.get("/api/v1/accounts", headers=auth).status_code == 401
    assert "revoked" in client.get("/admin/users").get_data(as_text=True)
    actions = set(db.session.execute(select(AuditLog.action)).scalars())
    assert {"token.create", "token.revoke"} <= actions


def _form(client) -> dict:
    """The settings form as a browser would submit it unchanged."""
    html = client.get("/admin/settings").get_data(as_text=True)
    data: dict = {}
    for name, value in re.findall(r'<input type="text" name="([^"]+)" value="([^"]*)"', html):
        data[name] = value
    for name, value in re.findall(r'<textarea name="([^"]+)"[^>]*>([^<]*)</textarea>', html, re.S):
        data[name] = value
    data["send_window.days"] = re.findall(r'name="send_window.days" value="(\w+)" checked', html)
    return data


def test_settings_form_saves_a_new_version_with_history(as_role):
    client = as_role("admin")
    data = _form(client)
    assert data["stages"].splitlines()[0] == "target" and data["half_life_days"] == "30"
    assert data["send_window.days"] == ["mon", "tue", "wed", "thu", "fri"]
    data.update({"half_life_days": "14", "thresholds.hot": "60", "caps.contact.per": "14d",
                 "weights.meeting": "30", "weights._new_name": "trial_signup", "weights._new_value": "12",
                 "send_window.days": ["mon", "wed"], "stages": data["stages"] + "\nchurned"})
    resp = client.post("/admin/settings", data=data)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    current = settings_service.current()
    assert current["half_life_days"] == 14 and current["thresholds"]["hot"] == 60
    assert current["caps"]["contact"] == {"max": 2, "per": "14d"}
    assert current["weights"]["meeting"] == 30 and current["weights"]["trial_signup"] == 12
    assert current["send_window"]["days"] == ["mon", "wed"] and current["stages"][-1] == "churned"
    html = client.get("/admin/settings").get_data(as_text=True)
    assert "Settings saved as version 1" in html
    assert re.search(r"<strong>Version 1</strong> by " + re.escape(client.user.email), html)
    assert re.search(r"changed [a-z_, ]*half_life_days", html)

    # Unchanged form: a new version that changed nothing, and an emptied weight drops it.
    data = _form(client)
    data["weights.intent"] = ""
    assert client.post("/admin/settings", data=data).status_code == 302
    assert "intent" not in settings_service.current()["weights"]


def test_settings_errors_are_shown_on_their_fields_and_nothing_is_saved(as_role):
    client = as_role("admin")
    data = _form(client)
    data.update({"thresholds.warm": "80", "thresholds.hot": "50", "caps.account.per": "weekly",
                 "stages": "target\nAware Stage\ntarget", "send_window.timezone": "Mars/Olympus",
                 "half_life_days": "soon", "send_window.days": []})
    resp = client.post("/admin/settings", data=data)
    html = unescape(resp.get_data(as_text=True))
    assert resp.status_code == 422
    assert re.search(r'id="err-half_life_days">\s*<li>\'soon\' is not a number', html)
    assert 'value="soon"' in html  # the typed value is shown again
    assert db.session.execute(select(WorkspaceSettings)).first() is None

    data["half_life_days"] = "20"
    html = unescape(client.post("/admin/settings", data=data).get_data(as_text=True))
    assert re.search(r'id="err-caps-account-per">\s*<li>\'weekly\': write a duration such as 7d', html)
    stage_errors = re.search(r'id="err-stages">(.*?)</ul>', html, re.S).group(1)
    assert "<li>line 2: 'Aware Stage': use lowercase letters" in stage_errors
    assert "<li>each name may appear only once</li>" in stage_errors
    assert re.search(r'id="err-send_window-days">\s*<li>give at least one', html)
    assert db.session.execute(select(WorkspaceSettings)).first() is None

    data.update({"caps.account.per": "7d", "stages": "target\naware", "send_window.days": ["mon"]})
    html = unescape(client.post("/admin/settings", data=data).get_data(as_text=True))
    assert re.search(r'id="err-thresholds-warm">\s*<li>must be lower than thresholds.hot', html)
    assert re.search(r'id="err-send_window-timezone">\s*<li>unknown time zone \'Mars/Olympus\'', html)
    assert db.session.execute(select(WorkspaceSettings)).first() is None



def test_url_rules_stage_map_and_heat_are_edited_tried_and_previewed(as_role):
    client = as_role("admin")
    html = client.get("/admin/settings?test_url=https://www.vendor.example/pricing/teams").get_data(as_text=True)
    assert "Rule <code>/pricing</code> matches:\n    a visit there counts <strong>8</strong> points." in html
    data = _form(client)
    assert data["url_rules"] == "/pricing 8\n/demo 10" and data["heat.passive_cap.points"] == "15"

    bad = dict(data, url_rules="/pricing 8\n/webinar lots", crm_stage_map="Closed Won = champion\nnonsense")
    html = unescape(client.post("/admin/settings", data=bad).get_data(as_text=True))
    assert "line 2: write the part of the address, a space, then its points (such as /pricing 8)" in html
    assert "line 2: write the CRM's stage, =, then one of ours (such as Closed Won = customer)" in html
    bad["crm_stage_map"] = "Closed Won = champion"
    html = unescape(client.post("/admin/settings", data=bad | {"url_rules": "/pricing 8"}).get_data(as_text=True))
    assert "Closed Won = champion: 'champion' is not one of the stages" in html
    assert db.session.execute(select(WorkspaceSettings)).first() is None

    db.session.add(Account(name="Acme", domain="acme.example", stage="aware"))
    db.session.commit()
    events.store([_line("web_visit", domain="acme.example", url="https://vendor.example/webinar/x")] * 1
                 + [_line("web_visit", domain="acme.example", url="https://vendor.example/webinar/y")])
    change = dict(data, url_rules="/webinar 12\n/pricing 8", crm_stage_map="Closed Won = customer",
                  **{"heat.passive_cap.points": "", "action": "preview"})
    html = client.post("/admin/settings", data=change).get_data(as_text=True)
    assert "Preview: 1 of 1 accounts would change level" in html and "1 cold → warm" in html
    assert db.session.execute(select(WorkspaceSettings)).first() is None  # a preview saves nothing

    change["action"] = "save"
    assert client.post("/admin/settings", data=change).status_code == 302
    current = settings_service.current()
    assert current["url_rules"][0] == {"pattern": "/webinar", "weight": 12}
    assert current["crm_stage_map"] == {"Closed Won": "customer"} and current["heat"]["passive_cap"]["points"] is None
    html = client.get("/admin/settings?test_url=https://vendor.example/webinar/z").get_data(as_text=True)
    assert "Rule <code>/webinar</code> matches" in html and "<strong>12</strong> points" in html
    assert re.search(r"changed [a-z_, ]*crm_stage_map[a-z_, ]*url_rules", html)  # versioned, with who



def test_the_preview_tells_what_weights_thresholds_half_life_and_heat_would_change(as_role):
    """Beyond URL rules, the preview covers each scoring setting: the admin sees how many
    accounts would move and from which level to which (weights, thresholds, half-life), or
    why nothing moves (honest heat applies to events as they arrive); nothing is saved, and
    the form keeps what was typed (so Save saves what was previewed)."""

    for name in ("Acme", "Globex", "Initech", "Umbrella"):
        db.session.add(Account(name=name, domain=f"{name.lower()}.example", stage="aware"))
    db.session.commit()
    events.store([_line("meeting", domain="acme.example")]                                   # 25: warm
                 + [_line("form_fill", domain="globex.example", days_ago=30) for _ in range(2)]  # 30 halved: cold
                 + [_line("email_reply", domain="initech.example")]                          # 10: cold
                 + [_line("email_open", domain="umbrella.example", days_ago=i / 10) for i in range(40)])  # passive: cold
    scores.recompute()
    levels = dict(db.session.execute(select(Account.name, Account.engagement)).all())
    assert levels == {"Acme": "warm", "Globex": "cold", "Initech": "cold", "Umbrella": "cold"}

    client = as_role("admin")
    data = _form(client)

    def preview(**changed) -> str:
        html = unescape(client.post("/admin/settings", data=dict(data, action="preview", **changed))
                        .get_data(as_text=True))
        return " ".join(re.search(r'<section class="card preview".*?</section>', html, re.S).group(0).split()), html

    shown, html = preview(**{"weights.meeting": "60"})
    assert "Preview: 1 of 4 accounts would change level" in shown and "1 up, 0 down: 1 warm → hot." in shown
    assert 'name="weights.meeting" value="60"' in html  # what was typed stays in the form

    shown, html = preview(**{"thresholds.warm": "26"})
    assert "Preview: 1 of 4 accounts would change level" in shown and "0 up, 1 down: 1 warm → cold." in shown
    assert 'name="thresholds.warm" value="26"' in html

    shown, _ = preview(half_life_days="300")
    assert "Preview: 1 of 4 accounts would change level" in shown and "1 up, 0 down: 1 cold → warm." in shown

    assert "honest heat" not in shown

    # heat rules set each event's share as it arrives: a change moves nothing now, and the preview says so
    shown, html = preview(**{"heat.passive_cap.points": "", "heat.open_window_hours": "0"})
    assert "Preview: 0 of 4 accounts would change level" in shown and "0 up, 0 down." in shown
    assert "The honest heat rules you changed count for the events that arrive after the save" in shown
    assert 'name="heat.open_window_hours" value="0"' in html

    shown, _ = preview()
    assert "Preview: 0 of 4 accounts would change level" in shown and "0 up, 0 down." in shown
    assert "honest heat" not in shown
    assert db.session.execute(select(WorkspaceSettings)).first() is None  # previews save nothing
    assert dict(db.session.execute(select(Account.name, Account.engagement)).all()) == levels

@pytest.mark.browser
def test_in_a_browser_a_url_rule_changes_a_visits_weight(live_server, new_page, make_live_user):
    admin = make_live_user("admin")
    account = Account(name="Acme", domain="acme.example", stage="aware")
    db.session.add(account)
    db.session.commit()
    page = new_page()
    live_server.login(page, admin)
    page.goto(live_server.url + "/admin/settings")
    rules = page.get_by_label("URL rules for website visits")
    rules.fill("/webinar 12\n" + rules.input_value())
    page.get_by_role("button", name="Save a new version").click()
    page.wait_for_url("**/admin/settings")
    assert "Settings saved as version 1." in page.locator(".flash").inner_text()
    page.get_by_label("A page address").fill("https://vendor.example/webinar/api-security")
    page.get_by_role("button", name="Try it").click()
    assert "a visit there counts 12 points" in page.locator(".tested").inner_text()

    events.store([_line("web_visit", domain="acme.example", url="https://vendor.example/webinar/api-security")])
    assert scores.breakdown(account.id)["events"][0]["weight"] == 12
    page.goto(live_server.url + f"/accounts/{account.id}")
    assert "12" in page.locator(".score-breakdown").inner_text()
    assert not live_server.js_errors
