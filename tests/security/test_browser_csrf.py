"""The attack of issue 13, finding 1, in a real browser: an admin logged in to the app
opens a page of another site (another port of 127.0.0.1: the same *site* for SameSite,
so the cookie goes along and only the CSRF check can stop it) whose form posts
``enctype=text/plain`` JSON to /api/v1/users. And the pages' own script helper
(``abm.api``) does write with the session, because it sends the page's CSRF token."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import User

pytestmark = pytest.mark.browser

ATTACK_PAGE = """<!doctype html><html><body>
<form id="f" method="post" enctype="text/plain" action="{target}/api/v1/users">
<input type="hidden" name='{{"email": "evil@attacker.example", "role": "admin", "password": "hunter2hunter2", "name": "evil'
 value='"}}'>
</form>
<script>document.getElementById("f").submit();</script>
</body></html>"""


@pytest.fixture
def attacker_site(live_server):
    page = ATTACK_PAGE.format(target=live_server.url).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/win.html"
    server.shutdown()
    server.server_close()


def _evil_user():
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == "evil@attacker.example"))


def test_a_cross_site_form_does_not_create_an_admin(live_server, browser_page, make_live_user, attacker_site):
    admin = make_live_user("admin")
    live_server.login(browser_page, admin)
    with browser_page.expect_response(lambda r: r.url.endswith("/api/v1/users")) as answer:
        browser_page.goto(attacker_site)
    assert answer.value.status == 403
    assert _evil_user() is None


def test_the_pages_script_helper_writes_with_the_session(live_server, browser_page, make_live_user):
    admin = make_live_user("admin")
    live_server.login(browser_page, admin)
    browser_page.goto(live_server.url + "/")
    plain = browser_page.evaluate("""() => fetch('/api/v1/users', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({email: 'a@example.com', role: 'ae'})})
        .then(r => r.status)""")
    assert plain == 403
    helped = browser_page.evaluate("""() => abm.api('users', {method: 'POST', json: {email: 'b@example.com', role: 'ae'}})
        .then(r => r.status)""")
    assert helped == 201
    db.session.expire_all()
    assert db.session.scalar(select(User.role).where(User.email == "b@example.com")) == "ae"
    assert db.session.scalar(select(User).where(User.email == "a@example.com")) is None
