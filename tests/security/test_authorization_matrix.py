"""The authorization matrix (issue 13, tests and checks): every route of the app's
``url_map``, asked by every role and by an anonymous client, gets the answer the table
below expects. A route without an entry fails the test, and the failure prints the
entries to add (check them before pasting: the table is the specification).

Each entry lists who gets past authentication and authorization: ``ALL`` (any
logged-in role), ``MANAGERS`` (admin and manager), ``ADMIN``, or ``PUBLIC`` (anyone,
anonymous too). Everyone else is refused: an anonymous client with a 401 (API) or a
redirect to the login page (pages), a logged-in role with a 403. An answer that is not a
refusal (200, 302 elsewhere, 404 for the made-up ids, 4xx for the empty bodies sent)
counts as let in. The API is asked with bearer tokens, the pages with a session.
"""

from __future__ import annotations

import re

import pytest
from flask import g

from abm.auth import issue_token
from abm.db import db
from abm.models import ROLES as MODEL_ROLES

ROLES = ("admin", "manager", "ae")
ALL = ROLES
MANAGERS = ("admin", "manager")
ADMIN = ("admin",)
PUBLIC = "public"

MATRIX: dict[str, tuple | str] = {
    "DELETE /api/v1/accounts/<int:account_id>": MANAGERS,
    "DELETE /api/v1/accounts/<int:account_id>/networks/<int:network_id>": ADMIN,
    "DELETE /api/v1/connectors/<name>": ADMIN,
    "DELETE /api/v1/contacts/<int:contact_id>": MANAGERS,
    "DELETE /api/v1/segments/<name>": MANAGERS,
    "GET /": ALL,
    "GET /accounts": ALL,
    "GET /accounts/<int:account_id>": ALL,
    "GET /admin/in-market": MANAGERS,
    "GET /admin/settings": ADMIN,
    "GET /admin/users": ADMIN,
    "GET /alerts": ALL,
    "GET /api/v1/accounts": ALL,
    "GET /api/v1/accounts/<int:account_id>": ALL,
    "GET /api/v1/accounts/<int:account_id>/engagement": ALL,
    "GET /api/v1/accounts/<int:account_id>/fit": ALL,
    "GET /api/v1/accounts/<int:account_id>/networks": MANAGERS,
    "GET /api/v1/accounts/<int:account_id>/stages": ALL,
    "GET /api/v1/accounts/<int:account_id>/timeline": ALL,
    "GET /api/v1/asn-accounts/suggestions": ADMIN,
    "GET /api/v1/connector-types": ADMIN,
    "GET /api/v1/connectors": MANAGERS,
    "GET /api/v1/connectors/<name>": MANAGERS,
    "GET /api/v1/contacts": ALL,
    "GET /api/v1/contacts/<int:contact_id>": ALL,
    "GET /api/v1/fit/model": MANAGERS,
    "GET /api/v1/imports": MANAGERS,
    "GET /api/v1/imports/<int:run_id>": MANAGERS,
    "GET /api/v1/kpis": ALL,
    "GET /api/v1/kpis/accounts": ALL,
    "GET /api/v1/kpis/costs": ALL,
    "GET /api/v1/kpis/leads": ALL,
    "GET /api/v1/kpis/moves": ALL,
    "GET /api/v1/kpis/touches": ALL,
    "GET /api/v1/kpis/coverage": ALL,
    "GET /api/v1/kpis/funnel": ALL,
    "GET /api/v1/kpis/models": ALL,
    "GET /api/v1/kpis/opportunities": ALL,
    "GET /api/v1/kpis/trends": ALL,
    "GET /api/v1/kpis/velocity": ALL,
    "GET /api/v1/openapi.json": PUBLIC,
    "GET /api/v1/playbook-schema.json": PUBLIC,  # the playbook language, for editors
    "GET /api/v1/playbooks": ALL,
    "GET /api/v1/playbooks/<key>": ALL,
    "GET /api/v1/playbooks/<key>/diff": ALL,
    "GET /api/v1/playbooks/<key>/results": ALL,
    "GET /api/v1/playbooks/<key>/enrollments": ALL,
    "GET /api/v1/playbooks/<key>/lift": ALL,
    "GET /api/v1/playbooks/<key>/source": ALL,
    "GET /api/v1/segments": ALL,
    "GET /api/v1/segments/<name>": ALL,
    "GET /api/v1/segments/<name>/members": ALL,
    "GET /api/v1/segments/<name>/members.csv": ALL,
    "GET /api/v1/settings": ADMIN,
    "GET /api/v1/touches": ALL,
    "GET /api/v1/users": ADMIN,
    "GET /api/v1/users/<int:user_id>": ADMIN,  # and each user for themselves (tests/api/test_admin.py)
    "GET /api/v1/users/me": ALL,
    "GET /connectors/": MANAGERS,
    "GET /connectors/<name>/edit": ADMIN,
    "GET /connectors/new": ADMIN,
    "GET /engagement": ALL,
    "GET /engagement/mine": ALL,
    "GET /engagement/snippet": MANAGERS,
    "GET /healthz": PUBLIC,
    "GET /imports": MANAGERS,
    "GET /imports/<int:run_id>": MANAGERS,
    "GET /imports/<int:run_id>/status": MANAGERS,
    "GET /imports/sample/<kind>.csv": MANAGERS,
    "GET /kpis": ALL,
    "GET /kpis/accounts": ALL,
    "GET /kpis/costs": ALL,
    "GET /kpis/glossary": ALL,
    "GET /kpis/leads": ALL,
    "GET /kpis/models": ALL,
    "GET /kpis/moves": ALL,
    "GET /kpis/touches": ALL,
    "GET /kpis/opportunities": ALL,
    "GET /kpis/spend": MANAGERS,
    "GET /kpis/trends": ALL,
    "GET /login": PUBLIC,
    "GET /outbox": MANAGERS,
    "GET /outbox/<box_id>/<name>": MANAGERS,
    "GET /outbox/<box_id>/<name>/html": MANAGERS,
    "GET /outbox/<box_id>/<name>/raw": MANAGERS,
    "GET /playbooks": ALL,
    "GET /playbooks/<key>": ALL,
    "GET /playbooks/<key>/diff": ALL,
    "GET /playbooks/<key>/edit": ALL,
    "GET /playbooks/<key>/enrollments": ALL,
    "GET /playbooks/<key>/plan": ALL,
    "GET /playbooks/<key>/versions/<int:number>": ALL,
    "GET /playbooks/_new": ALL,
    "GET /readyz": PUBLIC,
    "GET /reset/<token>": PUBLIC,  # the signed, single-use token is the credential
    "GET /segments": ALL,
    "GET /segments/<name>": ALL,
    "GET /segments/<name>/edit": MANAGERS,
    "GET /segments/<name>/members.csv": ALL,
    "GET /segments/_new": MANAGERS,
    "GET /static/<path:filename>": PUBLIC,
    "GET /t/c/<token>": PUBLIC,
    "GET /t/snippet.js": PUBLIC,
    "GET /touches": ALL,
    "GET /u/<token>": PUBLIC,
    "PATCH /api/v1/accounts/<int:account_id>": ALL,
    "PATCH /api/v1/connectors/<name>": ADMIN,
    "PATCH /api/v1/contacts/<int:contact_id>": MANAGERS,
    "PATCH /api/v1/opportunities/<int:opportunity_id>": MANAGERS,
    "PATCH /api/v1/users/<int:user_id>": ADMIN,  # and each user for themselves (tests/api/test_admin.py)
    "PATCH /api/v1/users/me": ALL,
    "POST /accounts/<int:account_id>/notes": ALL,
    "POST /accounts/<int:account_id>/stage": ALL,
    "POST /admin/in-market": ADMIN,
    "POST /admin/settings": ADMIN,
    "POST /admin/tokens/<int:token_id>/revoke": ADMIN,
    "POST /admin/users": ADMIN,
    "POST /admin/users/<int:user_id>/<action>": ADMIN,
    "POST /admin/users/<int:user_id>/tokens": ADMIN,
    "POST /alerts/<int:alert_id>/<action>": ALL,
    "POST /api/v1/accounts": MANAGERS,
    "POST /api/v1/accounts/<int:account_id>/networks": ADMIN,
    "POST /api/v1/asn-accounts": ADMIN,
    "POST /api/v1/connectors": ADMIN,
    "POST /api/v1/connectors/<name>/test": ADMIN,
    "POST /api/v1/contacts": MANAGERS,
    "POST /api/v1/costs": MANAGERS,
    "POST /api/v1/events": MANAGERS,
    "POST /api/v1/imports/accounts": MANAGERS,
    "POST /api/v1/imports/ad-engagement": MANAGERS,
    "POST /api/v1/imports/contacts": MANAGERS,
    "POST /api/v1/imports/intent": MANAGERS,
    "POST /api/v1/opportunities": MANAGERS,
    "POST /api/v1/playbooks": MANAGERS,
    "POST /api/v1/playbooks/<key>/activate": MANAGERS,
    "POST /api/v1/playbooks/<key>/archive": MANAGERS,
    "POST /api/v1/playbooks/<key>/clone": MANAGERS,
    "POST /api/v1/playbooks/<key>/migrate": MANAGERS,
    "POST /api/v1/playbooks/<key>/pause": MANAGERS,
    "POST /api/v1/playbooks/<key>/resume": MANAGERS,
    "POST /api/v1/playbooks/<key>/test-send": MANAGERS,
    "POST /api/v1/playbooks/plan": ALL,
    "POST /api/v1/playbooks/validate": ALL,
    "POST /api/v1/segments": MANAGERS,
    "POST /api/v1/users": ADMIN,
    "POST /api/v1/users/<int:user_id>/tokens": ADMIN,
    "POST /connectors/<name>/delete": ADMIN,
    "POST /connectors/<name>/edit": ADMIN,
    "POST /connectors/<name>/enabled": ADMIN,
    "POST /connectors/<name>/test": ADMIN,
    "POST /connectors/defaults": ADMIN,
    "POST /connectors/new": ADMIN,
    "POST /engagement/mine/default": ALL,
    "POST /engagement/mine/digest": ALL,
    "POST /engagement/mine/timezone": ALL,
    "POST /hooks/<name>": PUBLIC,
    "POST /imports": MANAGERS,
    "POST /kpis/spend": MANAGERS,
    "POST /login": PUBLIC,
    "POST /logout": PUBLIC,
    "POST /playbooks/<key>/<any(activate, pause, resume, archive):action>": MANAGERS,
    "POST /playbooks/<key>/clone": MANAGERS,
    "POST /playbooks/<key>/migrate": MANAGERS,
    "POST /playbooks/<key>/test-send": MANAGERS,
    "POST /playbooks/_apply": MANAGERS,
    "POST /playbooks/_check": ALL,
    "POST /reset/<token>": PUBLIC,  # the signed, single-use token is the credential
    "POST /segments/_save": MANAGERS,
    "POST /u/<token>": PUBLIC,
    "PUT /api/v1/accounts/by-domain/<domain>": MANAGERS,
    "PUT /api/v1/settings": ADMIN,
}

IGNORED_METHODS = {"HEAD", "OPTIONS"}
MISSING_ID = 999_999  # no row has it: object routes answer 404 once past the checks


def routes(app) -> dict[str, object]:
    """'METHOD /rule' -> rule, for every route the app serves."""
    out = {}
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - IGNORED_METHODS):
            out[f"{method} {rule.rule}"] = rule
    return dict(sorted(out.items()))


def _url(rule) -> str:
    def value(m):
        converter, args = m.group(1) or "", m.group(2) or ""
        if converter == "int":
            return str(MISSING_ID)
        if converter == "any":
            return args.split(",")[0].strip().strip("'\"")
        return "no-such-thing"

    return re.sub(r"<(?:(\w+)(?:\(([^)]*)\))?:)?\w+>", value, rule.rule)


def _refusal(resp, api: bool) -> str | None:
    """'anonymous' or 'forbidden' when the answer refuses the caller, else None."""
    if resp.status_code == 403:
        return "forbidden"
    if api and resp.status_code == 401:
        return "anonymous"
    if not api and resp.status_code in (301, 302, 303) and "/login?next=" in resp.headers.get("Location", ""):
        return "anonymous"  # Flask-Login's redirect (a logout's own redirect to /login names no next)
    return None


@pytest.fixture
def callers(pages, quick_user):
    """caller(role or None) -> a function (method, url) -> response, as that role."""
    users = {role: quick_user(role) for role in ROLES}
    client = pages.test_client()

    def ask(role, method: str, url: str):
        api = url.startswith("/api/")
        headers = {}
        g.pop("_login_user", None)
        with client.session_transaction() as session:
            session.clear()
            if role and not api:
                db.session.refresh(users[role])  # a logout in between bumped its session version
                session["_user_id"] = users[role].get_id()
                session["_fresh"] = True
        if role and api:
            headers["Authorization"] = f"Bearer {issue_token(users[role], 'matrix')}"
            db.session.commit()
        kwargs = {"json": {}} if api and method != "GET" else {}
        return client.open(url, method=method, headers=headers, **kwargs)

    return ask


def _suggest(app, keys) -> str:
    lines = []
    for key in keys:
        view = app.view_functions.get(routes(app)[key].endpoint)
        roles = getattr(view, "required_roles", None)
        if roles is None and getattr(view, "openapi", None):
            roles = view.openapi["roles"]  # API: () is any role, None public
        guess = "ALL" if roles == () else {("admin",): "ADMIN", ("admin", "manager"): "MANAGERS"}.get(
            tuple(roles or ()), "PUBLIC  # check" if roles is None else repr(roles))
        lines.append(f'    "{key}": {guess},')
    return "\n".join(lines)


def test_every_route_has_an_entry(app):
    assert set(MODEL_ROLES) == set(ROLES), "a role was added or renamed: give it its column here"
    served = routes(app)
    missing = [key for key in served if key not in MATRIX]
    assert not missing, "routes without an entry in MATRIX; add (and check) these:\n" + _suggest(app, missing)
    assert not [key for key in MATRIX if key not in served], "MATRIX names routes the app no longer has"


def test_every_role_gets_the_expected_answer(app, callers):
    wrong = []
    for key, rule in routes(app).items():
        if key not in MATRIX:
            continue
        method = key.split(" ", 1)[0]
        url = _url(rule)
        api = url.startswith("/api/")
        allowed = MATRIX[key]
        for role in (None, *ROLES):
            if allowed == PUBLIC or (role is not None and role in allowed):
                expected = None
            else:
                expected = "anonymous" if role is None else "forbidden"
            got = _refusal(callers(role, method, url), api)
            if got != expected:
                wrong.append(f"{key} as {role or 'anonymous'}: expected {expected or 'let in'}, got {got or 'let in'}")
    assert not wrong, "\n".join(wrong)
