"""Fixtures for the security tests: the page fixtures of tests/web (a client logged in
through the login form, as a browser is), and the CSRF token a page hands its scripts."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import as_role, login, pages, quick_user  # noqa: F401 - fixtures

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
def page_token():
    """page_token(client) -> the CSRF token of the client's session, read from a page as a
    page's script reads it (the ``csrf-token`` meta tag of the layout)."""

    def _token(client) -> str:
        html = client.get("/").get_data(as_text=True)
        if "csrf-token" not in html:
            html = client.get("/", follow_redirects=True).get_data(as_text=True)
        found = CSRF_META.search(html)
        assert found, "the layout hands logged-in pages a csrf-token meta tag"
        return found.group(1)

    return _token
