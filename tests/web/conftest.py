"""Fixtures for page tests.

- ``pages``: the ``app`` fixture made fit for several page requests in one test. The
  shared ``app`` fixture keeps one app context open for the whole test, so Flask would
  reuse its ``g`` (and Flask-Login the user it cached there) across requests; ``pages``
  forgets that per request, as a real server does.
- ``login(client, user, password="password123")``: logs a test client in through the form.
- ``quick_user(role, email=None, password="password123", name="")``: like ``make_user``
  but with a cheap password hash (scrypt costs about half a second a hash here).
- ``as_role(role)``: a new user of that role and a test client logged in as them
  (``client.user`` is the user).
- ``browser_page`` (see tests/web/browser.py): a real headless Chromium page against the
  app served on a local port.
"""

from __future__ import annotations

import pytest
from flask import g

from tests.web.browser import cheap_user_factory


@pytest.fixture
def pages(app):
    @app.before_request
    def _fresh_request_globals():
        for name in ("_login_user", "abm_settings"):
            g.pop(name, None)

    return app


def _login(client, user, password: str = "password123"):
    resp = client.post("/login", data={"email": user.email, "password": password})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return resp


@pytest.fixture
def login(pages):
    return _login


@pytest.fixture
def quick_user(app):
    return cheap_user_factory()


@pytest.fixture
def as_role(pages, quick_user):
    def _client(role: str = "admin", user=None, **user_fields):
        user = user or quick_user(role, **user_fields)
        client = pages.test_client()
        _login(client, user)
        client.user = user
        return client

    return _client
