"""Finding 4 of issue 13: an old ``session`` cookie and the ``remember_token`` (a year
long, no SameSite, no Secure) still worked after logout. Now both carry the user's
``session_version``; logout, a password change and deactivation bump it."""

from __future__ import annotations

from datetime import timedelta

from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import select

import config
from abm.auth import issue_token
from abm.db import db
from abm.models import ApiToken, AuditLog
from abm.services.users import end_sessions

COOKIES = ("session", "remember_token")


def _login(pages, user, remember: bool = True):
    client = pages.test_client()
    resp = client.post("/login", data={"email": user.email, "password": "password123",
                                       **({"remember": "1"} if remember else {})})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    return client


def _captured(client) -> dict[str, str]:
    return {name: client.get_cookie(name).value for name in COOKIES if client.get_cookie(name)}


def _replay(pages, cookies: dict[str, str]):
    """A new browser that holds only the given cookies asks for the home page."""
    thief = pages.test_client()
    for name, value in cookies.items():
        thief.set_cookie(name, value)
    return thief.get("/")


def _logged_in(resp) -> bool:
    return resp.status_code == 200 and "/login" not in resp.headers.get("Location", "")


def test_cookies_captured_before_logout_stop_working(pages, quick_user):
    user = quick_user("manager")
    client = _login(pages, user)
    cookies = _captured(client)
    assert set(cookies) == set(COOKIES)
    for name in COOKIES:  # each cookie alone logs a new browser in before the logout
        assert _logged_in(_replay(pages, {name: cookies[name]})), name

    assert client.post("/logout").status_code == 302
    for name in COOKIES:
        resp = _replay(pages, {name: cookies[name]})
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], name
    assert not _logged_in(_replay(pages, cookies))


def test_logout_ends_the_sessions_on_other_devices_too(pages, quick_user):
    user = quick_user("ae")
    laptop, phone = _login(pages, user, remember=False), _login(pages, user)
    assert _logged_in(phone.get("/"))
    laptop.post("/logout")
    assert phone.get("/").status_code == 302


def test_a_password_change_ends_every_session_but_not_the_api_tokens(pages, quick_user, runner):
    user = quick_user("admin")
    client = _login(pages, user)
    cookies = _captured(client)
    token = issue_token(user, "ci")
    db.session.commit()
    result = runner.invoke(args=["users", "set-password", user.email, "--password", "a-new-password"])
    assert result.exit_code == 0, result.output
    assert client.get("/").status_code == 302
    assert not _logged_in(_replay(pages, cookies))
    api = pages.test_client()
    assert api.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert db.session.scalar(select(AuditLog.details).where(AuditLog.action == "user.sessions_ended")) == {
        "reason": "password changed", "tokens_revoked": 0}


def test_end_sessions_can_revoke_the_tokens_for_good(pages, quick_user):
    user = quick_user("manager")
    client = _login(pages, user)
    token = issue_token(user, "ci")
    db.session.commit()
    end_sessions(user, "deactivated", revoke_tokens=True)
    assert client.get("/").status_code == 302
    resp = pages.test_client().get("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert db.session.scalar(select(ApiToken.revoked_at).where(ApiToken.user_id == user.id)) is not None


def test_a_cookie_without_a_session_version_is_refused(pages, quick_user):
    """A cookie signed with the right key but naming only the user id (as before session
    versions) does not log anyone in."""
    user = quick_user("admin")
    serializer = SecureCookieSessionInterface().get_signing_serializer(pages)
    forged = serializer.dumps({"_user_id": str(user.id), "_fresh": True})
    assert not _logged_in(_replay(pages, {"session": forged}))


def test_cookie_attributes(pages, quick_user):
    user = quick_user("ae")
    resp = pages.test_client().post("/login", data={"email": user.email, "password": "password123",
                                                    "remember": "1"})
    headers = {h.split("=", 1)[0]: h for h in resp.headers.getlist("Set-Cookie")}
    for name in COOKIES:
        assert "HttpOnly" in headers[name] and "SameSite=Lax" in headers[name], headers[name]
    assert pages.config["REMEMBER_COOKIE_DURATION"] == timedelta(days=14)
    assert "for 14 days" in pages.test_client().get("/login").get_data(as_text=True)


def test_production_cookies_are_secure(monkeypatch, tmp_path):
    monkeypatch.setenv("ABM_INSTANCE_PATH", str(tmp_path))
    cfg = config.ProductionConfig()
    assert cfg.SESSION_COOKIE_SECURE and cfg.REMEMBER_COOKIE_SECURE
    assert cfg.SESSION_COOKIE_HTTPONLY and cfg.REMEMBER_COOKIE_HTTPONLY
    assert cfg.SESSION_COOKIE_SAMESITE == cfg.REMEMBER_COOKIE_SAMESITE == "Lax"
    assert cfg.REMEMBER_COOKIE_DURATION <= timedelta(days=14)
