"""Accessibility: axe-core (through axe-playwright-python, which ships axe.min.js, MPL-2.0)
runs on every page a role can open, in headless Chromium, and finds no serious or
critical violation."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from abm.db import db
from abm.models import Account, Alert, Contact
from abm.services import connectors as connector_service
from abm.services import events

SERIOUS = ("serious", "critical")


def _pages(live_server, args: dict) -> list[str]:
    """Every page that answers GET, its path arguments filled from ``args`` (rules with
    another argument are left out), and a few filtered pages."""
    paths = {"/alerts?state=acknowledged", "/engagement/mine?sort=change&level=hot", "/connectors/new?type=smtp",
             "/admin/settings?test_url=https://vendor.example/pricing"}
    for rule in live_server.app.url_map.iter_rules():
        if "GET" not in rule.methods or not set(rule.arguments) <= set(args):
            continue
        if rule.rule.startswith(("/api", "/static", "/t/", "/u/", "/hooks", "/reset")) \
                or rule.rule in ("/healthz", "/readyz", "/metrics", "/logout") \
                or rule.rule.endswith((".js", ".csv", ".json", ".gif", ".txt", ".eml", "/raw", "/html")):
            continue
        paths.add(rule.build({k: args[k] for k in rule.arguments})[1])
    return sorted(paths)


@pytest.mark.browser
@pytest.mark.parametrize("role", ["admin", "manager", "ae"])
def test_no_serious_or_critical_axe_violation_on_any_page(live_server, new_page, make_live_user, role):
    user = make_live_user(role, email=f"{role}@example.com")
    account = Account(name="Acme", domain="acme.example", stage="aware", owner_id=user.id)
    db.session.add(account)
    db.session.flush()
    db.session.add(Contact(account_id=account.id, email="jane@acme.example", first_name="Jane", buying_role="champion"))
    db.session.add(Alert(account_id=account.id, user_id=user.id, kind="level_up", level="hot",
                         message="Acme is now hot", status="sent"))
    db.session.commit()
    events.store([events.stamp({"type": "meeting", "occurred_at": "2026-12-01T10:00:00+00:00",
                                 "email": "jane@acme.example"})])

    connector_service.create({"name": "mail", "type": "outbox", "settings": {
        "directory": str(live_server.tmp / "outbox"), "from_email": "abm@vendor.example"}})
    page = new_page()
    live_server.login(page, user)
    axe = Axe()
    found, visited = {}, []
    for path in _pages(live_server, {"account_id": account.id, "user_id": user.id, "name": "mail"}):
        answer = page.goto(live_server.url + path)
        if answer is None or answer.status >= 400:
            continue  # a page this role may not open
        visited.append(path)
        violations = [v for v in axe.run(page).response["violations"] if v["impact"] in SERIOUS]
        if violations:
            found[path] = {v["id"]: [n["target"] for n in v["nodes"]][:3] for v in violations}
    assert found == {}, "\n".join(f"{p}: {v}" for p, v in found.items())
    assert f"/accounts/{account.id}" in visited and "/alerts" in visited and len(visited) >= 15
    assert ("/connectors/mail/edit" in visited) == (role == "admin")


@pytest.mark.browser
def test_no_serious_or_critical_axe_violation_on_the_public_pages(live_server, new_page):
    page = new_page()
    found = {}
    for path in ("/login", "/reset/not-a-valid-token"):
        page.goto(live_server.url + path)
        violations = [v for v in Axe().run(page).response["violations"] if v["impact"] in SERIOUS]
        if violations:
            found[path] = [v["id"] for v in violations]
    assert found == {}
