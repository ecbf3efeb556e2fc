"""Running the users: change a role, deactivate (sessions and tokens end) and reactivate,
a password-reset link (signed, single use, expiring, emailed by a worker through the
workspace's email connector and read at a real SMTP server), delete with the accounts
reassigned; the same in `abm users`; and in a real browser."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from itsdangerous import TimestampSigner
from rq import Queue
from sqlalchemy import select

from abm.auth import issue_token
from abm.db import db
from abm.models import Account, Alert, ApiToken, AuditLog, User
from abm.redis_conn import get_redis
from abm.services import connectors as connector_service
from abm.services import digest, user_admin
from abm.services.users import UserError
from tests.connectors.fakes.smtp_server import smtp_server
from workers import user_jobs


def _get(user_id):
    db.session.expire_all()
    return db.session.get(User, user_id)


def test_roles_and_the_last_admin(as_role, quick_user):
    admin = as_role("admin")
    seller = quick_user("ae", email="sam@example.com")
    resp = admin.post(f"/admin/users/{seller.id}/role", data={"role": "manager"}, follow_redirects=True)
    assert "sam@example.com now has the role manager." in resp.get_data(as_text=True)
    assert _get(seller.id).role == "manager"
    resp = admin.post(f"/admin/users/{seller.id}/role", data={"role": "king"}, follow_redirects=True)
    assert "role must be one of admin, manager, ae, not &#39;king&#39;" in resp.get_data(as_text=True)
    resp = admin.post(f"/admin/users/{admin.user.id}/deactivate", follow_redirects=True)
    assert "you cannot deactivate yourself" in resp.get_data(as_text=True) and _get(admin.user.id).active
    with pytest.raises(UserError, match="the last active admin"):
        user_admin.change_role(_get(admin.user.id), "ae")
    assert as_role("manager").post(f"/admin/users/{seller.id}/deactivate").status_code == 403
    audit = db.session.scalars(select(AuditLog.action).where(AuditLog.target_id == str(seller.id))).all()
    assert "user.role" in audit


def test_a_deactivated_user_is_logged_out_everywhere_and_comes_back(as_role, quick_user, pages):
    seller = as_role("ae")
    token = issue_token(seller.user, "script")
    db.session.commit()
    api = pages.test_client()
    assert api.get("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert seller.get("/alerts").status_code == 200

    admin = as_role("admin")
    resp = admin.post(f"/admin/users/{seller.user.id}/deactivate", follow_redirects=True)
    assert "is deactivated: their sessions and API tokens have ended." in resp.get_data(as_text=True)
    answer = seller.get("/alerts")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]  # the open session stopped working
    assert api.get("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert db.session.scalars(select(ApiToken.revoked_at)).one() is not None
    refused = pages.test_client().post("/login", data={"email": seller.user.email, "password": "password123"})
    assert refused.status_code != 302

    admin.post(f"/admin/users/{seller.user.id}/reactivate")
    assert pages.test_client().post("/login", data={"email": seller.user.email,
                                                   "password": "password123"}).status_code == 302
    assert api.get("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"}).status_code == 401  # stays revoked


def test_a_reset_link_is_emailed_works_once_and_expires(as_role, quick_user, pages, monkeypatch):
    admin = as_role("admin")
    seller = quick_user("ae", email="sam@example.com", name="Sam")
    with smtp_server() as server:
        connector_service.create({"name": "mail", "type": "smtp", "default": ["email"], "settings": {
            "host": server.host, "port": server.port, "security": "none", "from_email": "abm@vendor.example",
            "timeout": 5}}, admin.user.id)
        resp = admin.post(f"/admin/users/{seller.id}/reset", follow_redirects=True)
        assert "sam@example.com will get a password-reset link by email." in resp.get_data(as_text=True)

        [job] = Queue("default", connection=get_redis()).jobs
        assert job.func_name == "workers.user_jobs.send_password_reset" and job.args == (seller.id,)
        assert user_jobs.send_password_reset(*job.args) == {"sent": True, "connector": "mail"}
        [mail] = [message_from_bytes(m.raw, policy=policy.default) for m in server.messages]
    assert mail["To"].addresses[0].addr_spec == "sam@example.com" and mail["Subject"] == "Reset your ABM password"
    link = re.search(r"https?://\S+/reset/(\S+)", mail.get_body(("plain",)).get_content())
    path = "/reset/" + link.group(1)

    visitor = pages.test_client()
    assert "Set a new password" in visitor.get(path).get_data(as_text=True)
    differ = visitor.post(path, data={"password": "a-new-secret", "confirm": "another"})
    assert differ.status_code == 422 and "the two passwords differ" in differ.get_data(as_text=True)
    done = visitor.post(path, data={"password": "a-new-secret", "confirm": "a-new-secret"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    assert pages.test_client().post("/login", data={"email": "sam@example.com",
                                                   "password": "a-new-secret"}).status_code == 302
    again = visitor.get(path)
    assert again.status_code == 400 and "used already" in again.get_data(as_text=True)  # once only
    assert visitor.get("/reset/forged.token").status_code == 400

    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: 1_000_000_000)  # a link made in 2001
    old = user_admin.reset_token(_get(seller.id))
    monkeypatch.undo()
    expired = visitor.get(f"/reset/{old}")
    assert expired.status_code == 400 and "this link has expired" in expired.get_data(as_text=True)


def test_delete_hands_the_accounts_over(as_role, quick_user):
    admin = as_role("admin")
    leaving, taking = quick_user("ae", email="leaving@example.com"), quick_user("ae", email="taking@example.com")
    account = Account(name="Acme", domain="acme.example", owner_id=leaving.id)
    db.session.add(account)
    db.session.flush()
    db.session.add(Alert(account_id=account.id, user_id=leaving.id, kind="surge", message="Acme surges"))
    db.session.commit()
    html = admin.post(f"/admin/users/{leaving.id}/delete", data={"reassign_to": ""},
                      follow_redirects=True).get_data(as_text=True)
    assert "owns 1 account(s): pick who takes them over" in html and _get(leaving.id) is not None
    html = admin.post(f"/admin/users/{leaving.id}/delete", data={"reassign_to": str(taking.id)},
                      follow_redirects=True).get_data(as_text=True)
    assert "1 account(s) of leaving@example.com moved to taking@example.com." in html
    assert _get(leaving.id) is None
    assert db.session.get(Account, account.id).owner_id == taking.id
    assert db.session.scalars(select(Alert.user_id)).one() == taking.id  # the alert still to act on follows


def test_the_same_in_abm_users(app, runner, make_user):
    make_user("admin", email="boss@example.com")
    seller = make_user("ae", email="sam@example.com")
    other = make_user("ae", email="kim@example.com")
    db.session.add(Account(name="Acme", domain="acme.example", owner_id=seller.id))
    db.session.commit()
    assert runner.invoke(args=["users", "role", "sam@example.com", "manager"]).output == "sam@example.com is now manager\n"
    result = runner.invoke(args=["users", "deactivate", "sam@example.com"])
    assert result.exit_code == 0 and "deactivated" in result.output and not _get(seller.id).active
    assert runner.invoke(args=["users", "reactivate", "sam@example.com"]).exit_code == 0 and _get(seller.id).active
    link = runner.invoke(args=["users", "reset-link", "sam@example.com", "--print"]).output.strip()
    assert re.fullmatch(r"https?://\S+/reset/\S+", link)
    assert "sam@example.com\tmanager\tactive\t1 accounts" in runner.invoke(args=["users", "list"]).output
    refused = runner.invoke(args=["users", "delete", "sam@example.com", "--yes"])
    assert refused.exit_code == 1 and "pick who takes them over" in refused.output
    moved = runner.invoke(args=["users", "delete", "sam@example.com", "--reassign-to", "kim@example.com", "--yes"])
    assert moved.output == "sam@example.com deleted; 1 account(s) now owned by kim@example.com\n"
    assert db.session.scalars(select(Account.owner_id)).one() == other.id
    assert runner.invoke(args=["users", "role", "nobody@example.com", "ae"]).exit_code == 1


def test_the_admin_sets_a_sellers_time_zone_and_their_digest_follows_it(as_role, quick_user):
    admin = as_role("admin")
    seller = quick_user("ae", email="sam@example.com")
    resp = admin.post(f"/admin/users/{seller.id}/timezone", data={"timezone": "America/Los_Angeles"},
                      follow_redirects=True)
    assert "sam@example.com now has the time zone America/Los_Angeles." in resp.get_data(as_text=True)
    assert _get(seller.id).timezone == "America/Los_Angeles"
    monday_9_paris = datetime(2026, 6, 22, 7, 5, tzinfo=UTC)  # 00:05 in Los Angeles: not yet
    monday_9_los_angeles = datetime(2026, 6, 22, 16, 5, tzinfo=UTC)
    assert "sam@example.com" not in [u.email for u, _ in digest.due(monday_9_paris)]
    assert ("sam@example.com", "2026-06-22") in [(u.email, week) for u, week in digest.due(monday_9_los_angeles)]
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "user.timezone")).one()
    assert audit.details["after"] == "America/Los_Angeles" and audit.actor_id == admin.user.id

    bad = admin.post(f"/admin/users/{seller.id}/timezone", data={"timezone": "Mars/Olympus_Mons"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert f'id="err-timezone-{seller.id}"' in html and "unknown time zone &#39;Mars/Olympus_Mons&#39;" in html
    assert 'value="Mars/Olympus_Mons"' in html  # what was typed stays in the field
    assert _get(seller.id).timezone == "America/Los_Angeles"  # nothing lost

    admin.post(f"/admin/users/{seller.id}/timezone", data={"timezone": ""})
    assert _get(seller.id).timezone is None  # back to the workspace's send-window zone
    assert as_role("manager").post(f"/admin/users/{seller.id}/timezone", data={"timezone": "UTC"}).status_code == 403


def test_abm_users_timezone(app, runner, make_user):
    seller = make_user("ae", email="sam@example.com")
    result = runner.invoke(args=["users", "timezone", "sam@example.com", "Asia/Tokyo"])
    assert result.output == "sam@example.com now has the time zone Asia/Tokyo\n" and _get(seller.id).timezone == "Asia/Tokyo"
    refused = runner.invoke(args=["users", "timezone", "sam@example.com", "Nowhere/Land"])
    assert refused.exit_code == 1 and "unknown time zone" in refused.output and _get(seller.id).timezone == "Asia/Tokyo"
    cleared = runner.invoke(args=["users", "timezone", "sam@example.com"])
    assert cleared.exit_code == 0 and _get(seller.id).timezone is None


@pytest.mark.browser
def test_in_a_browser_a_deactivated_session_stops_and_a_reset_link_works_once(live_server, new_page, make_live_user):
    admin = make_live_user("admin", email="boss@example.com")
    seller = make_live_user("ae", email="sam@example.com")
    seller_page = new_page()
    live_server.login(seller_page, seller)
    seller_page.goto(live_server.url + "/alerts")
    assert seller_page.get_by_role("heading", name="Alerts").is_visible()

    admin_page = new_page()
    live_server.login(admin_page, admin)
    admin_page.goto(live_server.url + "/admin/users")
    row = admin_page.locator(f"#user-{seller.id}")
    admin_page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Deactivate").click()
    admin_page.wait_for_url("**/admin/users")
    assert "is deactivated" in admin_page.locator(".flash").inner_text()

    seller_page.goto(live_server.url + "/alerts")
    assert "/login" in seller_page.url  # the seller's open session no longer works

    admin_page.locator(f"#user-{seller.id}").get_by_role("button", name="Reactivate").click()
    admin_page.wait_for_url("**/admin/users")
    with live_server.app.app_context():
        link = user_admin.reset_link(_get(seller.id))
    path = "/reset/" + link.rsplit("/reset/", 1)[1]
    seller_page.goto(live_server.url + path)
    seller_page.get_by_label("New password").fill("brand-new-password")
    seller_page.get_by_label("The same again").fill("brand-new-password")
    seller_page.get_by_role("button", name="Set my password").click()
    seller_page.wait_for_url("**/login")
    assert "Your password is set" in seller_page.locator(".flash").inner_text()
    seller_page.goto(live_server.url + path)
    assert "used already" in seller_page.locator(".flash-error").inner_text()
    assert [e for e in live_server.js_errors if "/reset/" not in e] == []  # the used link answers 400
