"""Accessibility: axe-core (through axe-playwright-python, which ships axe.min.js, MPL-2.0)
runs on every page a role can open, in headless Chromium, and finds no serious or
critical violation."""

from __future__ import annotations

import pytest

from abm.db import db
from abm.models import Account, Alert, Contact
from abm.services import events

SERIOUS = ("serious", "critical")


def _pages(live_server, account_id: int) -> list[str]:
    """Every page without a path argument that answers GET, and the account page."""
    paths = {f"/accounts/{account_id}", "/alerts?state=acknowledged", "/engagement/mine?sort=change&level=hot",
             "/connectors/new?type=smtp", "/admin/settings?test_url=https://vendor.example/pricing"}
    for rule in live_server.app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith(("/api", "/static", "/t/", "/u/")) \
                and rule.rule not in ("/healthz", "/readyz", "/metrics", "/logout") and not rule.rule.endswith(
                (".js", ".csv", ".json", ".gif", ".txt", ".eml")):
            paths.add(rule.rule)
    return sorted(paths)


@pytest.mark.browser
@pytest.mark.parametrize("role", ["admin", "manager", "ae"])
def test_no_serious_or_critical_axe_violation_on_any_page(live_server, new_page, make_live_user, role):
    from axe_playwright_python.sync_playwright import Axe

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
    page = new_page()
    live_server.login(page, user)
    axe = Axe()
    found = {}
    for path in _pages(live_server, account.id):
        answer = page.goto(live_server.url + path)
        if answer is None or answer.status >= 400:
            continue  # a page this role may not open
        violations = [v for v in axe.run(page).response["violations"] if v["impact"] in SERIOUS]
        if violations:
            found[path] = {v["id"]: [n["target"] for n in v["nodes"]][:3] for v in violations}
    assert found == {}, "\n".join(f"{p}: {v}" for p, v in found.items())


@pytest.mark.browser
def test_no_serious_or_critical_axe_violation_on_the_public_pages(live_server, new_page):
    from axe_playwright_python.sync_playwright import Axe

    page = new_page()
    found = {}
    for path in ("/login", "/reset/not-a-valid-token"):
        page.goto(live_server.url + path)
        violations = [v for v in Axe().run(page).response["violations"] if v["impact"] in SERIOUS]
        if violations:
            found[path] = [v["id"] for v in violations]
    assert found == {}
