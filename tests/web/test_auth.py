"""Login and logout: CSRF, no hint of which field was wrong,
no open redirect, and every page behind the login."""

from __future__ import annotations

import re

from sqlalchemy import select

from abm.db import db
from abm.models import User
from tests.conftest import make_app

OPEN_REDIRECTS = [
    "//evil.example/", "https://evil.example/", "http:evil.example", "/\\evil.example", "\\\\evil.example",
    "javascript:alert(1)", "///evil.example", " //evil.example", "/\r\nLocation: http://evil.example",
    "\t//evil.example", "https:/evil.example",
]


def test_login_page_renders_the_form(pages):
    resp = pages.test_client().get("/login")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'name="email"' in html and 'name="password"' in html and 'type="password"' in html
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"  # no clickjacking of the login form
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_need_a_login_and_come_back_after_it(pages, quick_user):
    user = quick_user("manager")
    client = pages.test_client()
    resp = client.get("/accounts?stage=aware")
    assert resp.status_code == 302
    assert resp.location.startswith("/login?next=")
    login_page = client.get(resp.location).get_data(as_text=True)
    assert 'name="next" value="/accounts?stage=aware"' in login_page
    resp = client.post("/login", data={"email": user.email, "password": "password123",
                                       "next": "/accounts?stage=aware"})
    assert resp.status_code == 302 and resp.location == "/accounts?stage=aware"
    assert client.get("/accounts?stage=aware").status_code == 200


def test_login_never_redirects_off_site(pages, quick_user):
    user = quick_user("ae")
    client = pages.test_client()
    for target in OPEN_REDIRECTS:
        resp = client.post("/login", data={"email": user.email, "password": "password123", "next": target})
        assert (resp.status_code, resp.location) == (302, "/"), target
        client.post("/logout")
    resp = client.post("/login", data={"email": user.email, "password": "password123", "next": "/accounts?q=a%20b"})
    assert resp.location == "/accounts?q=a%20b"


def test_logged_in_user_with_foreign_next_stays_on_site(as_role):
    client = as_role("ae")
    resp = client.get("/login?next=https://evil.example/")
    assert resp.status_code == 302 and resp.location == "/"


def test_wrong_password_and_unknown_email_say_the_same(pages, quick_user):
    user = quick_user("admin", email="real@example.com")
    client = pages.test_client()
    wrong_password = client.post("/login", data={"email": user.email, "password": "nope-nope-nope"})
    unknown_email = client.post("/login", data={"email": "ghost@example.com", "password": "password123"})
    assert wrong_password.status_code == unknown_email.status_code == 401

    def message(resp):
        return re.search(r'role="alert">([^<]*)<', resp.get_data(as_text=True)).group(1)

    assert message(wrong_password) == message(unknown_email)
    assert "password" in message(wrong_password) and "email" in message(wrong_password)
    # Still logged out.
    assert client.get("/").status_code == 302


def test_inactive_user_cannot_log_in(pages, quick_user):
    user = quick_user("admin")
    user.active = False
    db.session.commit()
    resp = pages.test_client().post("/login", data={"email": user.email, "password": "password123"})
    assert resp.status_code == 401


# Login throttling: tests/security/test_login_throttle.py


def test_logout_is_a_post_and_ends_the_session(as_role):
    client = as_role("manager")
    assert client.get("/").status_code == 200
    assert client.get("/logout").status_code == 405
    resp = client.post("/logout")
    assert resp.status_code == 302 and resp.location == "/login"
    assert client.get("/").status_code == 302


def test_csrf_rejects_forms_without_the_token(app, backend, instance_dir, redis_url, quick_user):
    user = quick_user("admin")
    csrf_app = make_app(backend, instance_dir, redis_url, WTF_CSRF_ENABLED=True)
    client = csrf_app.test_client()
    resp = client.post("/login", data={"email": user.email, "password": "password123"})
    assert resp.status_code == 400
    assert "CSRF" in resp.get_data(as_text=True)

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"email": user.email, "password": "password123", "csrf_token": token})
    assert resp.status_code == 302

    # Logged in, a settings form or a stage change without the token is refused too.
    assert client.post("/admin/settings", data={"half_life_days": "10"}).status_code == 400
    assert client.post("/admin/users", data={"email": "x@example.com", "role": "ae"}).status_code == 400
    assert client.post("/logout").status_code == 400
    assert client.post("/accounts/1/stage", data={"stage": "aware"}).status_code == 400
    assert client.post("/imports", data={"kind": "accounts"}).status_code == 400
    with csrf_app.app_context():
        assert db.session.execute(select(User).where(User.email == "x@example.com")).first() is None
