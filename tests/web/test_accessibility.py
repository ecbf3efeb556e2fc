"""Accessibility: axe-core (through axe-playwright-python, which ships axe.min.js, MPL-2.0)
runs on every page of the product, in headless Chromium, for each role, and finds no
serious or critical violation.

The pages run on the demo's data (``abm demo``: accounts, contacts, 60 days of history,
score snapshots, spend, active playbooks with their enrollments) plus what the demo does
not make: an A/B test with sent and clicked touches and a second version (the comparison,
the diff), a segment with members, alerts of every state for the AE, an import run with a
problem, and emails in the Outbox. Every page whose URL needs a key (a playbook, an
account, a segment, a connector, an import run, an email) is opened with one: a new page
with a key the test does not know fails the test rather than being left out. Each page
is also checked for the content it is there to show, so an empty page cannot pass for a
full one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import select, update

from abm.db import db, utcnow
from abm.models import Account, Alert, Enrollment, Event, Touch, User
from abm.models import Playbook as PlaybookRow
from abm.services import demo, segments, user_admin
from abm.services import playbooks as playbook_service
from abm.services.imports import runs
from abm.web.outbox import boxes
from connectors.base import ConnectorContext
from connectors.base import Touch as OutgoingTouch
from connectors.outbox import OutboxConnector
from workers import dispatcher

SERIOUS = ("serious", "critical")
PASSWORDS = {"admin": "demo-admin", "manager": "demo-manager", "ae": "demo-avery"}

AB_PLAYBOOK = """version: 1
key: ab-page
name: A/B on the page
audience:
  where: {tier: [2, 3]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    email:
      to: {roles: [decision_maker, champion]}
      subject: "Question for {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p>"
      variants:
        - name: question
        - name: statement
          subject: "News for {{ account.name }}"
"""

#: GET rules that are not pages (files, JSON, redirects, frames of an email): axe has nothing to read.
NOT_PAGES = ("/api", "/static", "/t/", "/u/", "/hooks", "/healthz", "/readyz", "/metrics", "/logout")
NOT_PAGE_ENDINGS = (".js", ".csv", ".json", ".gif", ".txt", ".eml", "/raw", "/html", "/status")
#: Pages tested elsewhere (without a login): tests below.
PUBLIC = ("/login", "/reset/")


def _seed(live_server) -> dict:
    """The demo's data and what it lacks (module docstring); the keys of the pages."""
    now = utcnow()
    demo.prepare(accounts=40, now=now)
    users = {u.role: u for u in db.session.execute(select(User).where(User.email.in_(
        [email for _role, email, _name, _password in demo.DEMO_USERS]))).scalars()}
    ae = users["ae"]

    # an A/B test: sent to tiers 2 and 3, one variant clicked; then a second version (the diff)
    playbook_service.apply(AB_PLAYBOOK)
    playbook_service.activate("ab-page")
    stats = dispatcher.dispatch(now=utcnow() + timedelta(minutes=1), enqueue=False)
    ab = db.session.execute(select(PlaybookRow).where(PlaybookRow.key == "ab-page")).scalar_one()
    db.session.execute(update(Touch).where(Touch.playbook_id == ab.id).values(status="sent", sent_at=now))
    sent = db.session.execute(select(Touch).where(Touch.playbook_id == ab.id).order_by(Touch.id)).scalars().all()
    assert {t.variant for t in sent} == {"question", "statement"}, f"the A/B test sent nothing to compare: {stats}"
    for t in sent:
        if t.variant == "statement" or t.id % 3 == 0:
            db.session.add(Event(type="email_click", occurred_at=now, account_id=t.account_id,
                                 contact_id=t.contact_id, touch_id=t.id, playbook_id=ab.id, properties={}))
    db.session.commit()
    playbook_service.apply(AB_PLAYBOOK.replace("News for", "What is new at"))

    # a segment with members
    segments.save("tier-one", "tier: [1, 2]\n", description="Tier 1 and 2 accounts")
    assert segments.members("tier-one")[0], "the segment has no members"

    # the AE's account with an active enrollment, and alerts in every state on the AE's accounts
    account_id = db.session.execute(
        select(Account.id).join(Enrollment, Enrollment.account_id == Account.id)
        .where(Account.owner_id == ae.id, Enrollment.state.in_(("active", "waiting"))).order_by(Account.id)
    ).scalars().first()
    assert account_id, "no account of the AE is in a running playbook"
    mine = db.session.execute(select(Account.id).where(Account.owner_id == ae.id).order_by(Account.id)
                              .limit(4)).scalars().all()
    states = [{}, {"acknowledged_at": now}, {"snoozed_until": now + timedelta(days=2)},
              {"dismissed_at": now, "feedback": "already in touch"}]
    for i, state in enumerate(states):
        db.session.add(Alert(account_id=mine[i % len(mine)], user_id=ae.id, kind="level_up", level="hot",
                             message="Now hot", status="sent", reason="score crossed hot", **state))
    db.session.commit()

    # an import run with a problem in its report
    run = runs.start("accounts", b"Domain,Name,Tier\nnewco.example,Newco,1\nnot a domain,Bad,x\n",
                     "accounts.csv", users["manager"].id)
    runs.execute(run.id)

    # emails in the Outbox, written by the outbox connector for real touches
    outbox_dir = str(live_server.tmp / "outbox")  # the test's own: the instance folder is the session's
    live_server.app.config["OUTBOX_DIR"] = outbox_dir
    connector = OutboxConnector("outbox", {"from_email": "news@ourco.example", "tracking": False},
                                ConnectorContext(outbox_dir=outbox_dir))
    accounts = {a.id: a for a in db.session.execute(select(Account).where(
        Account.id.in_({t.account_id for t in sent[:3]}))).scalars()}
    for t in sent[:3]:
        [result] = connector.send([OutgoingTouch(
            id=t.id, kind="email", channel="email",
            account={"name": accounts[t.account_id].name, "domain": accounts[t.account_id].domain},
            contact={"email": f"person{t.contact_id}@{accounts[t.account_id].domain}", "first_name": "Sam"},
            payload={"subject": f"Question for {accounts[t.account_id].name}",
                     "html": '<p>Hi Sam, read <a href="https://ourco.example/guide">our guide</a>.</p>',
                     "unsubscribe_url": "https://abm.test/u/TOKEN"},
            key=f"{t.enrollment_id}:{t.step_id}:{t.contact_id}")])
        assert result.ok, result.error
    return {"users": users, "account_id": account_id, "run_id": run.id, "outbox_dir": outbox_dir,
            "domain": accounts[sent[0].account_id].domain}


def _keys(live_server, world: dict) -> dict[str, dict]:
    """The path arguments of each page that needs some."""
    [box] = [b for b in boxes() if str(b.path) == world["outbox_dir"]]
    email = sorted(p.name for p in box.path.glob("*.eml"))[0]
    return {
        "accounts.show": {"account_id": world["account_id"]},
        "connectors.edit": {"name": "outbox"},
        "imports.show": {"run_id": world["run_id"]},
        "outbox.show": {"box_id": box.id, "name": email},
        "playbooks.show": {"key": "ab-page"},
        "playbooks.diff": {"key": "ab-page"},
        "playbooks.edit": {"key": "ab-page"},
        "playbooks.plan": {"key": "ab-page"},
        "playbooks.enrollments": {"key": "ab-page"},
        "playbooks.version": {"key": "ab-page", "number": 1},
        "segments.show": {"name": "tier-one"},
        "segments.edit": {"name": "tier-one"},
    }


def _pages(live_server, keys: dict[str, dict], world: dict) -> list[str]:
    """Every page that answers GET, with its keys, and the filtered and other views of some."""
    paths = {"/alerts?state=acknowledged", "/alerts?state=snoozed", "/alerts?state=not_relevant",
             "/alerts?owner=team", "/engagement/mine?sort=change&level=hot", "/connectors/new?type=smtp",
             "/connectors/new?type=hubspot", "/admin/settings?test_url=https://vendor.example/pricing",
             "/touches?playbook=ab-page", "/touches?playbook=ab-page&variant=statement&result=clicked",
             "/outbox?playbook=ab-page", f"/playbooks/ab-page/plan?schedule_of={world['domain']}",
             "/playbooks/ab-page/diff?from=1&to=2", "/playbooks?status=active", "/accounts?q=a",
             "/kpis?days=30", "/playbooks/ab-page/enrollments?reached=hello"}
    unknown = []
    for rule in live_server.app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule.startswith(NOT_PAGES + PUBLIC) \
                or rule.rule.endswith(NOT_PAGE_ENDINGS):
            continue
        if rule.arguments and rule.endpoint not in keys:
            unknown.append(rule.rule)
            continue
        paths.add(rule.build(keys.get(rule.endpoint, {}))[1])
    assert unknown == [], f"pages with keys this test does not know: add them to _keys: {unknown}"
    return sorted(paths)


#: What each page is there to show (a CSS selector), and for which roles (None: all who
#: open it), so that the data really is on the page the axe run reads.
def _content(world: dict) -> dict[str, tuple[str, tuple | None]]:
    return {
        f"/accounts/{world['account_id']}": (".account-playbooks .pill.ok", None),
        "/alerts": ("li.alert-item", None),
        "/alerts?owner=team": ("li.alert-item", ("admin", "manager")),
        "/playbooks": (".pill.status-active", None),
        "/playbooks/ab-page": ("#ab-results table.ab-comparison td a, svg.pb-flow a.flow-count", None),
        "/playbooks/ab-page/diff": ("#diff-changed code", None),
        "/playbooks/ab-page/enrollments?reached=hello": ("table.enrollments tr[data-enrollment] a", None),
        "/segments/tier-one": ("table.members tr[data-account] a", None),
        "/outbox": ("table.outbox tbody tr td a", None),
        "/outbox?playbook=ab-page": ("table.outbox tr[data-touch]", None),
        f"/imports/{world['run_id']}": ("table", None),
        "/kpis": ("svg", None),
        "/engagement/mine": ("table tbody tr", ("ae",)),
    }


@pytest.fixture
def world(live_server):
    return _seed(live_server)


def axe_violations(page) -> dict[str, list]:
    """Serious and critical axe violations of ``page``: rule id -> its first nodes."""
    violations = [v for v in Axe().run(page).response["violations"] if v["impact"] in SERIOUS]
    return {v["id"]: [n["target"] for n in v["nodes"]][:3] for v in violations}


@pytest.mark.browser
def test_no_serious_or_critical_axe_violation_on_any_page_for_any_role(live_server, new_page, world):
    keys = _keys(live_server, world)
    paths = _pages(live_server, keys, world)
    content = _content(world)
    found, visited, empty = {}, {}, {}
    for role in ("admin", "manager", "ae"):
        page = new_page()
        live_server.login(page, world["users"][role], PASSWORDS[role])
        visited[role] = []
        for path in paths:
            answer = page.goto(live_server.url + path)
            if answer is None or answer.status in (403, 404):
                continue  # a page this role may not open
            assert answer.status < 400, f"{role} {path}: {answer.status}"
            page.wait_for_load_state("load")
            visited[role].append(path)
            selector, roles = content.get(path, (None, None))
            if selector and (roles is None or role in roles) and page.locator(selector).count() == 0:
                empty[f"{role} {path}"] = selector
            violations = axe_violations(page)
            if violations:
                found[f"{role} {path}"] = violations
        page.context.close()
    assert found == {}, "\n".join(f"{p}: {v}" for p, v in found.items())
    assert empty == {}, f"pages without the content they are there to show: {empty}"
    everyone = {f"/accounts/{world['account_id']}", "/alerts", "/playbooks/ab-page", "/playbooks/ab-page/plan",
                "/playbooks/ab-page/diff", "/playbooks/ab-page/versions/1", "/segments/tier-one", "/kpis"}
    for role in ("admin", "manager", "ae"):
        assert everyone <= set(visited[role]), (role, everyone - set(visited[role]))
    for role in ("admin", "manager"):
        assert {"/outbox", "/alerts?owner=team", "/segments/tier-one/edit",
                f"/imports/{world['run_id']}"} <= set(visited[role]), role
    assert "/connectors/outbox/edit" in visited["admin"] and "/admin/settings" in visited["admin"]
    assert "/connectors/outbox/edit" not in visited["ae"] and "/outbox" not in visited["ae"]
    assert all(len(v) >= 30 for v in visited.values()), {r: len(v) for r, v in visited.items()}


@pytest.mark.browser
def test_no_serious_or_critical_axe_violation_on_the_public_pages(live_server, new_page, make_live_user):
    """The login page and the password-reset page, both as the form (a genuine link) and
    as the refusal (a bad one)."""
    reset_form = "/reset/" + user_admin.reset_link(make_live_user("ae")).rsplit("/reset/", 1)[1]
    page = new_page()
    found = {}
    for path in ("/login", reset_form, "/reset/not-a-valid-token"):
        page.goto(live_server.url + path)
        if path == reset_form:
            assert page.get_by_label("New password").is_visible()
        violations = axe_violations(page)
        if violations:
            found[path] = list(violations)
    assert found == {}
