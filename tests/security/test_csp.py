"""Finding 8 of issue 13 (CSP): pages had no Content-Security-Policy. Now every page
has a strict one: scripts and style blocks run only with the request's nonce."""

from __future__ import annotations

import re

import pytest

from abm.services import connectors
from abm.services import playbooks as playbook_service
from abm.web.csp import HEADER
from tests.engine.conftest import make_account
from tests.engine.test_api_cli import GOOD

SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b([^>]*)>", re.I)
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


def _pages(app) -> list[str]:
    """Every GET page without arguments (the API and the tracking endpoints aside)."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith(("/api/", "/static", "/t/")):
            urls.append(rule.rule)
    return sorted(urls)


def _policy(resp) -> dict[str, str]:
    header = resp.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part for part in (p.strip() for p in header.split(";")) if part}


def _check_page(resp, url) -> str:
    """Assert the page's policy is strict and its every script and style tag has the
    nonce, and no tag has an inline handler; returns the nonce."""
    assert resp.status_code == 200 and resp.mimetype == "text/html", (url, resp.status_code)
    policy = _policy(resp)
    script = policy.get("script-src", "")
    nonce = re.search(r"'nonce-([^']+)'", script)
    assert nonce and "unsafe-inline" not in script and "'self'" not in script, (url, script)
    assert policy["object-src"] == "object-src 'none'" and policy["base-uri"] == "base-uri 'none'", url
    assert "unsafe-inline" not in policy["style-src"], url
    html = resp.get_data(as_text=True)
    for tag, attrs in SCRIPT_OR_STYLE.findall(html):
        assert f'nonce="{nonce.group(1)}"' in attrs, (url, tag, attrs)
    assert not HANDLER.search(html), (url, HANDLER.search(html).group(0))
    return nonce.group(1)


def test_every_page_has_a_strict_policy_and_every_script_its_nonce(as_role):
    admin = as_role("admin")
    checked = 0
    nonces = set()
    for url in _pages(admin.application) + ["/login"]:
        resp = admin.get(url)
        if resp.mimetype != "text/html" or resp.status_code >= 300:
            continue
        checked += 1
        nonces.add(_check_page(resp, url))
    assert checked >= 10
    assert len(nonces) == checked  # a fresh nonce for every answer




def test_pages_of_objects_carry_the_nonce_too(as_role, tmp_path):
    """The pages that need an object (an account, a playbook and its editor and plan)."""
    admin = as_role("admin")
    account = make_account("Acme")
    connectors.create({"type": "log", "name": "log", "settings": {"path": str(tmp_path / "sent.jsonl")},
                       "default": ["email"]})
    playbook_service.apply(GOOD, "api-pb.yaml", actor_id=admin.user.id)
    for url in (f"/accounts/{account.id}", "/playbooks/api-pb", "/playbooks/api-pb/edit",
                "/playbooks/api-pb/plan", "/playbooks/api-pb/versions/1"):
        _check_page(admin.get(url), url)


def test_public_pages_have_it_too(pages):
    resp = pages.test_client().get("/login")
    assert "'nonce-" in resp.headers["Content-Security-Policy"]


def test_a_view_keeps_its_own_stricter_policy(app):

    @app.get("/__csp_probe")
    def _probe():
        return "<p>x</p>", 200, {HEADER: "sandbox; default-src 'none'"}

    assert app.test_client().get("/__csp_probe").headers[HEADER] == "sandbox; default-src 'none'"


@pytest.mark.browser
def test_pages_work_under_the_policy_and_an_injected_script_does_not_run(live_server, browser_page,
                                                                        make_live_user):
    violations = []
    page = browser_page
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    live_server.login(page, make_live_user("admin"))
    for path in ("/", "/accounts", "/playbooks/_new", "/connectors/", "/kpis", "/outbox", "/admin/users"):
        page.goto(live_server.url + path)
    assert violations == [], violations
    # the editor's nonced script ran: it numbered the lines
    page.goto(live_server.url + "/playbooks/_new")
    page.fill("#source", "a\nb\nc\n")
    page.dispatch_event("#source", "input")
    assert page.locator("#gutter li").count() >= 3
    # markup injected into the page cannot run code, inline or from this site's files
    ran = page.evaluate("""() => new Promise(done => {
        window.pwned = false;
        document.addEventListener('securitypolicyviolation', () => done(window.pwned));
        document.body.insertAdjacentHTML('beforeend', '<img src="/nope.png" onerror="window.pwned = true">');
        setTimeout(() => done(window.pwned), 2000);
    })""")
    assert ran is False
    assert any("Content Security Policy" in v for v in violations)
