"""A real headless Chromium against the app served on a local port, for page tests.

The root ``tests/conftest.py`` registers this module as a plugin, so every test package
has these fixtures (import them nowhere else: a second registration would start a second
Playwright, which refuses to run). Mark the tests ``@pytest.mark.browser``::

    @pytest.mark.browser
    def test_my_page(live_server, browser_page, make_live_user):
        user = make_live_user("manager")
        live_server.login(browser_page, user)
        browser_page.goto(live_server.url + "/playbooks")
        assert browser_page.get_by_role("heading", name="Playbooks").is_visible()
        browser_page.screenshot(path=live_server.tmp / "playbooks.png", full_page=True)

Fixtures:
- ``live_app``: the app on an empty, migrated SQLite database (one backend only), CSRF
  on as in production, its app context pushed, so a test can add rows with ``db.session`` (commit them: the server
  answers from other threads).
- ``live_server``: ``live_app`` served by werkzeug on 127.0.0.1 (a free port) in a thread;
  ``.url``, ``.app``, ``.tmp`` (the test's tmp dir), ``.login(page, user, password)``,
  ``.requests`` (every URL the browser asked for, to prove nothing came from elsewhere),
  ``.js_errors`` (uncaught script errors and console errors of every page).
- ``make_live_user(role, email=None, password="password123", name="")``: a user of
  ``live_app`` (committed, with a cheap password hash).
- ``chromium``: one browser per test session (/usr/bin/chromium, or ``ABM_CHROMIUM``).
  Missing: the tests are skipped, or fail when ``CI=true``.
- ``new_page(width=1280, height=800, mobile=False)``: a fresh browser context and page;
  ``browser_page`` is ``new_page()`` at laptop size.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_lib
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from abm.db import db
from abm.services.users import create_user
from tests.conftest import empty_database, make_app

CHROMIUM = os.environ.get("ABM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}


@pytest.fixture
def live_app(instance_dir, redis_url):
    application = make_app("sqlite", instance_dir, redis_url, WTF_CSRF_ENABLED=True)
    empty_database(db.engine)
    redis_lib.Redis.from_url(redis_url).flushdb()
    with application.app_context():
        yield application
        db.session.rollback()
    db.session.remove()


@dataclass
class LiveServer:
    url: str
    app: object
    tmp: Path
    requests: list[str] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)

    def login(self, page, user, password: str = "password123") -> None:
        """Log ``page`` in as ``user`` through the login form."""
        page.goto(self.url + "/login")
        page.fill("input[name=email]", user.email)
        page.fill("input[name=password]", password)
        page.click("form button[type=submit]")
        page.wait_for_load_state()
        assert "/login" not in page.url, f"login as {user.email} failed: still on {page.url}"


@pytest.fixture
def live_server(live_app, tmp_path):
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=live_app, tmp=tmp_path)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def cheap_user_factory():
    """make(role, email=None, password="password123", name="") -> a committed user whose
    password hash is cheap (scrypt costs about half a second a hash here)."""
    counter = {"n": 0}

    def _make(role: str = "admin", email: str | None = None, password: str = "password123", name: str = ""):
        counter["n"] += 1
        user = create_user(email=email or f"{role}{counter['n']}@example.com", role=role, password=None,
                           name=name)
        user.password_hash = generate_password_hash(password, method="pbkdf2:sha256:1000")
        db.session.commit()
        return user

    return _make


@pytest.fixture
def make_live_user(live_app):
    return cheap_user_factory()


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is required in CI (CI=true) and is missing at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM} (set ABM_CHROMIUM or install chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only when a browser test runs (this plugin loads for every run)

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@pytest.fixture
def new_page(chromium, live_server):
    contexts = []

    def _new(width: int = LAPTOP["width"], height: int = LAPTOP["height"], mobile: bool = False):
        context = chromium.new_context(viewport={"width": width, "height": height}, is_mobile=mobile,
                                       has_touch=mobile, device_scale_factor=2 if mobile else 1)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("request", lambda request: live_server.requests.append(request.url))
        page.on("pageerror", lambda error: live_server.js_errors.append(f"{page.url}: {error}"))
        page.on("console", lambda msg: live_server.js_errors.append(f"{page.url}: {msg.text}")
                if msg.type == "error" else None)
        return page

    yield _new
    for context in contexts:
        context.close()


@pytest.fixture
def browser_page(new_page):
    return new_page()
