"""The playbook pages: the list, a playbook's page (life cycle, versions, enrollments,
funnel, touches, failures), the editor (located errors, plan, apply) and roles."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from abm.db import db
from abm.models import Enrollment, Event, PlaybookVersion, Touch
from abm.models import Playbook as PlaybookRow
from abm.services import connectors as connector_service
from abm.services import connectors as service
from abm.services import playbooks as playbook_service
from tests.conftest import make_app
from tests.engine.conftest import make_account
from tests.engine.conftest import make_account as make
from workers import dispatcher

GOOD = """version: 1
key: web-pb
name: Web playbook
audience:
  where: {tier: [1]}
holdout: 0%
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p><script>alert(1)</script>"
  - wait: 3d
  - id: tell-ae
    alert:
      to: owner
      message: "{{ account.name }} got the intro"
"""

# Line 9: a role with a dash; line 10: a template name that does not exist.
BAD = """version: 1
key: bad-pb
name: Bad
audience:
  where: {tier: [1]}
steps:
  - id: hello
    email:
      to: {roles: [decision-maker]}
      subject: "Hi {{ account.nme }}"
      body: "x"
"""


@pytest.fixture
def connectors(app):
    """The demo connectors (outbox for email, log for the rest), as a fresh install has."""
    service.ensure_demo_connectors()
    db.session.commit()


def _apply(client, source=GOOD):
    return client.post("/playbooks/_apply", data={"source": source})


def _playbook(key="web-pb"):
    return db.session.execute(select(PlaybookRow).where(PlaybookRow.key == key)).scalar_one_or_none()


def test_editor_shows_located_errors_and_highlights_their_lines(as_role, connectors):
    client = as_role("manager")
    resp = client.post("/playbooks/_check", data={"source": BAD, "action": "validate"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    items = re.findall(r'<li data-line="(\d+)"><a href="#L(\d+)"[^>]*>(\d+):(\d+)</a> <span class="path">([^<]+)</span>: '
                       r'([^<]+)</li>', html)
    assert len(items) == 2, html
    role_error = next(i for i in items if i[4] == "steps[0].email.to.roles[0]")
    assert role_error[0] == role_error[1] == role_error[2] == "9"
    assert "decision_maker" in role_error[5]
    template_error = next(i for i in items if i[0] == "10")
    assert "nme" in template_error[5]
    # The gutter marks lines 9 and 10 and a band sits behind each of them; the source is kept.
    assert re.findall(r'<li id="L(\d+)" class="err">', html) == ["9", "10"]
    assert re.findall(r'class="pb-band" data-line="(\d+)"', html) == ["9", "10"]
    assert "{roles: [decision-maker]}" in html
    # Applying the broken playbook stores nothing and shows the same errors.
    resp = _apply(client, BAD)
    assert resp.status_code == 422 and "2 errors" in resp.get_data(as_text=True)
    assert _playbook("bad-pb") is None


def test_yaml_syntax_errors_and_empty_sources_are_located_too(as_role, connectors):
    client = as_role("manager")
    html = client.post("/playbooks/_check", data={"source": "version: 1\nkey: [oops\n"}).get_data(as_text=True)
    assert re.search(r'<span class="path">yaml</span>: ', html) and 'class="err"' in html
    resp = client.post("/playbooks/_check", data={"source": "   "})
    assert resp.status_code == 422 and "the playbook is empty" in resp.get_data(as_text=True)


def test_apply_a_valid_playbook_then_a_new_version(as_role, connectors):
    client = as_role("manager")
    valid = client.post("/playbooks/_check", data={"source": GOOD, "action": "validate"})
    assert valid.status_code == 200 and "creates the playbook as a draft" in valid.get_data(as_text=True)
    assert _playbook() is None  # validating stores nothing

    resp = _apply(client)
    assert resp.status_code == 302 and resp.location == "/playbooks/web-pb"
    page = client.get(resp.location).get_data(as_text=True)
    assert "Stored version 1 of web-pb" in page and 'id="status">draft<' in page
    assert 'id="version-1"' in page

    edited = GOOD.replace("Hello", "Hi there")
    html = client.post("/playbooks/_check", data={"source": edited}).get_data(as_text=True)
    assert "Applying stores version 2 of this playbook" in html
    resp = _apply(client, edited)
    page = client.get(resp.location).get_data(as_text=True)
    assert "Stored version 2 of web-pb" in page
    assert 'id="version-2"' in page and 'id="version-1"' in page
    assert _playbook().current_version == 2

    # Each version's source is viewable, and the editor opens the current one.
    v1 = client.get("/playbooks/web-pb/versions/1").get_data(as_text=True).replace("&#34;", '"')
    assert 'subject: "Hello {{ account.name }}"' in v1 and "Hi there" not in v1
    v2 = client.get("/playbooks/web-pb/versions/2").get_data(as_text=True).replace("&#34;", '"')
    assert 'subject: "Hi there {{ account.name }}"' in v2
    assert client.get("/playbooks/web-pb/versions/9").status_code == 404
    editor = client.get("/playbooks/web-pb/edit").get_data(as_text=True).replace("&#34;", '"')
    assert "Hi there {{ account.name }}" in editor and "Loaded from version 2" in editor
    assert "Hello {{ account.name }}" in client.get("/playbooks/web-pb/edit?version=1").get_data(
        as_text=True).replace("&#34;", '"')

    listing = client.get("/playbooks").get_data(as_text=True)
    assert 'id="playbook-web-pb"' in listing and "Web playbook" in listing


def test_plan_shows_the_dry_run(as_role, connectors):
    make_account("Alpha")
    make_account("Beta", tier=2)
    make_account("Gamma", contacts=())
    client = as_role("ae")  # AEs may plan
    resp = client.post("/playbooks/_check", data={"source": GOOD, "action": "plan"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert re.search(r'id="plan-entering">2<', html) and re.search(r'id="plan-held-out">0<', html)
    assert re.findall(r'<li><a href="/accounts/\d+">(\w+)</a>', html) == ["Alpha", "Gamma"]
    steps = re.findall(r'<tr data-step="([^"]+)">.*?<td data-label="When">([^<]+)</td>\s*'
                       r'<td class="num" data-label="Reached">([^<]+)</td>\s*'
                       r'<td class="num" data-label="Touches">([^<]+)</td>', html, re.S)
    assert [(s, w, r) for s, w, r, _ in steps] == [
        ("hello", "at once", "2"), ("step-2", "at once", "2"), ("tell-ae", "after 3d", "2")]
    assert steps[0][3] == "1"  # Gamma has no contact
    assert steps[2][3] == "0" and "suppressed 2: the account has no owner" in html  # nobody owns them
    assert "1 entering account(s) would get no touch at all" in html
    funnel = re.findall(r"<tr(?: class=\"zero\")?><td>([^<]+)</td><td class=\"num\">(\d+)</td>", html)
    assert funnel == [("accounts in the workspace", "3"), ("tier is one of 1", "2")]
    assert "<strong>Subject:</strong> Hello Alpha" in html
    # The preview is sandboxed, with its own CSP; the script is only text in the srcdoc.
    frame = re.search(r'<iframe sandbox="" [^>]*srcdoc="([^"]*)"', html).group(1)
    assert "Content-Security-Policy" in frame and "default-src &#39;none&#39;" in frame
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in frame and "<script>alert(1)" not in html
    assert _playbook() is None  # planning stores nothing


def test_roles_ae_reads_and_plans_but_may_not_apply_or_change_status(as_role, connectors):
    manager = as_role("manager")
    _apply(manager)
    ae = as_role("ae")
    assert ae.get("/playbooks").status_code == 200
    page = ae.get("/playbooks/web-pb")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/playbooks/web-pb/activate" not in html and "A manager or an admin activates" in html
    editor = ae.get("/playbooks/_new").get_data(as_text=True)
    assert "Validate" in editor and "/playbooks/_apply" not in editor

    resp = _apply(ae, GOOD.replace("Hello", "Howdy"))
    assert resp.status_code == 403 and "role (ae) may not" in resp.get_data(as_text=True)
    for action in ("activate", "pause", "resume", "archive"):
        assert ae.post(f"/playbooks/web-pb/{action}").status_code == 403
    row = _playbook()
    assert row.current_version == 1 and row.status == "draft"
    assert db.session.execute(select(func.count()).select_from(PlaybookVersion)).scalar_one() == 1

    admin = as_role("admin")
    assert "/playbooks/web-pb/activate" in admin.get("/playbooks/web-pb").get_data(as_text=True)
    assert admin.get("/playbooks/nope").status_code == 404
    anonymous = manager.application.test_client()
    assert anonymous.get("/playbooks").status_code == 302


def test_activate_pause_resume_archive_through_the_page(as_role, connectors):
    make_account("Alpha")
    client = as_role("manager")
    _apply(client)

    resp = client.post("/playbooks/web-pb/activate")
    assert resp.status_code == 302
    html = client.get("/playbooks/web-pb").get_data(as_text=True)
    assert "Playbook web-pb activated. 1 account(s) enrolled." in html and 'id="status">active<' in html
    assert "/playbooks/web-pb/pause" in html and "/playbooks/web-pb/resume" not in html

    client.post("/playbooks/web-pb/pause")
    html = client.get("/playbooks/web-pb").get_data(as_text=True)
    assert "Playbook web-pb paused." in html and 'id="status">paused<' in html
    assert _playbook().status == "paused"

    # Pausing twice is explained, not a crash.
    client.post("/playbooks/web-pb/pause")
    html = client.get("/playbooks/web-pb").get_data(as_text=True)
    assert "Could not pause web-pb: playbook &#39;web-pb&#39; is paused; only an active playbook can be paused." in html

    client.post("/playbooks/web-pb/resume")
    html = client.get("/playbooks/web-pb").get_data(as_text=True)
    assert "Playbook web-pb resumed." in html and 'id="status">active<' in html

    client.post("/playbooks/web-pb/archive")
    html = client.get("/playbooks/web-pb").get_data(as_text=True)
    assert 'id="status">archived<' in html and "1 running enrollment(s) ended" in html
    assert "Archived. Apply it again under a new key" in html
    assert client.post("/playbooks/nope/pause").status_code == 404


def _bar(html: str, section: str, label: str) -> str:
    part = html.split(f'class="{section}"', 1)[1].split("</svg>", 1)[0]
    return re.search(rf"<title>{re.escape(label)}: ([\d,]+)</title>", part).group(1)


def test_page_draws_enrollments_funnel_touches_and_failures(as_role, connectors):
    client = as_role("manager")
    _apply(client)
    row = _playbook()
    version = db.session.execute(select(PlaybookVersion).where(PlaybookVersion.playbook_id == row.id)).scalar_one()
    accounts = [make_account(f"Acct{i}") for i in range(5)]
    # step_index: 0 = at hello, 1 = at the wait, 2 = at tell-ae, 3 = past the end.
    layout = [("active", 0), ("waiting", 1), ("active", 2), ("completed", 3), ("held_out", 0)]
    enrollments = []
    for account, (state, index) in zip(accounts, layout, strict=True):
        e = Enrollment(playbook_id=row.id, version_id=version.id, account_id=account.id, state=state, step_index=index)
        db.session.add(e)
        enrollments.append(e)
    db.session.flush()
    for n, (e, status) in enumerate(zip(enrollments[:4], ["sent", "sent", "failed", "queued"], strict=True)):
        db.session.add(Touch(enrollment_id=e.id, playbook_id=row.id, account_id=e.account_id, contact_key=n,
                             step_id="hello", kind="email", channel="email", connector="outbox", status=status,
                             error="smtp said 550: mailbox unavailable" if status == "failed" else None))
    db.session.commit()

    html = client.get("/playbooks/web-pb").get_data(as_text=True)
    assert _bar(html, "enrollment-states", "active") == "2"
    assert _bar(html, "enrollment-states", "held out") == "1"
    assert _bar(html, "enrollment-states", "completed") == "1"
    assert _bar(html, "funnel", "hello") == "4"
    assert _bar(html, "funnel", "step-2") == "3"
    assert _bar(html, "funnel", "tell-ae") == "2"
    assert _bar(html, "touch-statuses", "sent") == "2"
    assert _bar(html, "touch-statuses", "failed") == "1"
    assert _bar(html, "touch-statuses", "suppressed") == "0"
    failures = html.split('class="cards failures"', 1)[1]
    assert "smtp said 550: mailbox unavailable" in failures and "Acct2" in failures


def test_forms_need_the_csrf_token(app, backend, instance_dir, redis_url, quick_user, connectors):
    user = quick_user("manager")
    csrf_app = make_app(backend, instance_dir, redis_url, WTF_CSRF_ENABLED=True)
    client = csrf_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"email": user.email, "password": "password123",
                                       "csrf_token": token}).status_code == 302
    assert client.post("/playbooks/_apply", data={"source": GOOD}).status_code == 400
    assert client.post("/playbooks/_check", data={"source": GOOD}).status_code == 400
    editor = client.get("/playbooks/_new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', editor).group(1)
    assert client.post("/playbooks/_apply", data={"source": GOOD, "csrf_token": token}).status_code == 302
    assert client.post("/playbooks/web-pb/activate").status_code == 400
    with csrf_app.app_context():
        assert _playbook().status == "draft"


# -- a real browser -------------------------------------------------------------------

@pytest.mark.browser
def test_in_a_browser_the_editor_highlights_the_error_lines(live_server, new_page, make_live_user):
    connector_service.ensure_demo_connectors()
    db.session.commit()
    make_account("Alpha")
    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    live_server.login(page, make_live_user("manager"))
    page.goto(live_server.url + "/playbooks")
    page.get_by_role("link", name="New playbook").click()
    page.wait_for_url("**/playbooks/_new")
    page.fill("textarea#source", BAD)
    page.get_by_role("button", name="Validate").click()
    page.wait_for_selector("#errors")

    assert page.locator(".pb-gutter li.err").all_inner_texts() == ["9", "10"]
    errors = page.locator(".pb-errors li").all_inner_texts()
    assert errors[0].startswith("9:20 steps[0].email.to.roles[0]: unknown role 'decision-maker'")
    # The red band sits exactly on line 9 of the text, beside the gutter's line 9.
    band = page.locator('.pb-band[data-line="9"]').bounding_box()
    number = page.locator("#L9").bounding_box()
    area = page.locator("textarea#source").bounding_box()
    assert abs(band["y"] - number["y"]) < 1 and abs(band["y"] - (area["y"] + 8 + 8 * 20)) < 1.5
    page.screenshot(path=live_server.tmp / "editor-errors.png", full_page=True)

    # Clicking an error puts the caret on its line and column.
    page.locator('.pb-errors a[data-line="9"]').click()
    caret = page.evaluate("(() => { const a = document.getElementById('source');"
                          " const before = a.value.slice(0, a.selectionStart).split('\\n');"
                          " return [before.length, before[before.length - 1].length + 1]; })()")
    assert caret == [9, 20]

    # Fixed, the plan shows who enters and the email as rendered, in a sandboxed frame.
    page.fill("textarea#source", GOOD)
    page.get_by_role("button", name="Plan").click()
    page.wait_for_selector("#plan")
    assert page.locator("#plan-entering").inner_text() == "1"
    preview = page.frame_locator(".rendered iframe").locator("p").first
    assert preview.inner_text() == "Hi P0"
    assert page.locator(".pb-gutter li.err").count() == 0
    page.screenshot(path=live_server.tmp / "editor-plan.png", full_page=True)
    page.locator(".rendered").first.screenshot(path=live_server.tmp / "preview.png")

    # It applies, and the playbook page shows version 1.
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/playbooks/web-pb")
    assert page.locator("#version-1").is_visible() and page.locator("#status").inner_text() == "draft"
    page.screenshot(path=live_server.tmp / "playbook-page.png", full_page=True)
    page.get_by_role("button", name="Activate").click()  # asks first (data-confirm)
    page.wait_for_url("**/playbooks/web-pb")
    assert page.locator("#status").inner_text() == "active"
    page.goto(live_server.url + "/playbooks")
    page.screenshot(path=live_server.tmp / "playbook-list.png", full_page=True)

    phone = new_page(390, 844, mobile=True)
    live_server.login(phone, make_live_user("ae"))
    for path, name in (("/playbooks", "list"), ("/playbooks/web-pb", "page"), ("/playbooks/web-pb/edit", "editor")):
        phone.goto(live_server.url + path)
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        phone.screenshot(path=live_server.tmp / f"phone-{name}.png", full_page=True)
    assert all(url.startswith(live_server.url) for url in live_server.requests)
    # Expected: the 422 of the invalid playbook, and the sandbox refusing GOOD's <script>.
    expected = ("status of 422", "Blocked script execution in 'about:srcdoc' because the document's frame is sandboxed")
    assert any(expected[1] in e for e in live_server.js_errors)
    assert [e for e in live_server.js_errors if not any(x in e for x in expected)] == []


def test_activating_a_playbook_that_would_enroll_nobody_asks_first(as_role, connectors):
    make_account("Beta", tier=2)
    client = as_role("manager")
    _apply(client)
    asked = client.post("/playbooks/web-pb/activate")
    assert asked.status_code == 409
    html = asked.get_data(as_text=True)
    assert "would enroll no account: none is left after \u201ctier is one of 1\u201d" in html
    assert re.findall(r'<tr class="zero"><td>([^<]+)</td>', html) == ["tier is one of 1",
                                                                     "not in this playbook already (or allowed to re-enter)"]
    assert 'name="allow_empty" value="1"' in html and "Activate anyway" in html
    assert _playbook().status == "draft"
    confirmed = client.post("/playbooks/web-pb/activate", data={"allow_empty": "1"})
    assert confirmed.status_code == 302 and _playbook().status == "active"
    assert "0 account(s) enrolled" in client.get("/playbooks/web-pb").get_data(as_text=True)


def test_the_plan_is_reachable_from_the_playbook_page_with_a_schedule(as_role, connectors):
    make_account("Alpha")
    client = as_role("ae")
    as_role("manager")
    _apply(as_role("manager"))
    page = client.get("/playbooks/web-pb").get_data(as_text=True)
    assert 'href="/playbooks/web-pb/plan"' in page
    html = client.get("/playbooks/web-pb/plan?schedule_of=c0@alpha.example").get_data(as_text=True)
    assert 'id="plan-entering">1<' in html and "Schedule of c0@alpha.example" in html
    # Sent now, or at the window's next opening (the page plans on the real clock).
    assert re.search(r"<td><code>hello</code></td><td>email</td><td>c0@alpha.example</td>"
                     r"<td>(sends|postponed <span class=\"muted small\">\(outside the send window\))", html)



def test_only_those_who_may_edit_see_open_in_the_editor_on_the_plan(as_role, connectors):
    """An AE reads the plan but may not apply a version: the plan offers no editor link to
    them (as the playbook and version pages offer no Edit); a manager and an admin see it."""
    make_account("Alpha")
    _apply(as_role("manager"))
    editor_link = 'href="/playbooks/web-pb/edit?version=1">Open in the editor</a>'
    ae = as_role("ae").get("/playbooks/web-pb/plan").get_data(as_text=True)
    assert 'id="plan-entering"' in ae and "Open in the editor" not in ae
    for role in ("manager", "admin"):
        assert editor_link in as_role(role).get("/playbooks/web-pb/plan").get_data(as_text=True), role

def test_change_control_on_the_playbook_page(as_role, connectors):
    make("Zeta")
    client = as_role("manager")
    _apply(client)
    assert client.post("/playbooks/web-pb/activate").status_code == 302
    _apply(client, GOOD.replace("Hello", "Hi there").replace("  - wait: 3d\n", "  - id: pause\n    wait: 2d\n"))
    page = client.get("/playbooks/web-pb").get_data(as_text=True)
    assert "1 running enrollment(s) are on older versions" in page
    assert "1 active at v1 <code>hello</code> → <code>hello</code>" in page
    assert 'href="/playbooks/web-pb/diff?from=1"' in page

    diff = client.get("/playbooks/web-pb/diff?from=1").get_data(as_text=True)
    assert re.search(r'id="diff-added"><code>pause</code>', diff)
    assert re.search(r'id="diff-removed"><code>step-2</code>', diff)
    assert '<div><code>hello</code>: subject</div>' in diff
    assert '<span class="add">+      subject: &#34;Hi there {{ account.name }}&#34;</span>' in diff

    moved = client.post("/playbooks/web-pb/migrate", follow_redirects=True).get_data(as_text=True)
    assert "1 running enrollment(s) moved to version 2." in moved
    assert "running enrollment(s) are on older versions" not in moved

    cloned = client.post("/playbooks/web-pb/clone", data={"new_key": "web-pb-2", "name": "Second"},
                         follow_redirects=True).get_data(as_text=True)
    assert "Stored web-pb-2 as a copy of web-pb, a draft." in cloned and "Second" in cloned
    bad = client.post("/playbooks/web-pb/clone", data={"new_key": "Bad Key"}, follow_redirects=True)
    assert "Could not clone web-pb as &#39;Bad Key&#39;" in bad.get_data(as_text=True)

    sent = client.post("/playbooks/web-pb/test-send", data={"step": "hello", "account": "zeta.example"},
                       follow_redirects=True).get_data(as_text=True)
    assert "A test of hello ([Test] Hi there Zeta), rendered for c0@zeta.example at zeta.example, is on its way" in sent
    assert as_role("ae").post("/playbooks/web-pb/test-send", data={"step": "hello", "account": "x"}).status_code == 403


def test_each_step_result_opens_the_touches_behind_it(as_role, connectors):
    make_account("Alpha")
    make_account("Aleph", contacts=(("decision_maker", "CEO"), ("decision_maker", "CFO")))
    client = as_role("manager")
    _apply(client)
    client.post("/playbooks/web-pb/activate")
    dispatcher.dispatch(enqueue=False)
    row = _playbook()
    made = db.session.execute(select(Touch).where(Touch.playbook_id == row.id, Touch.step_id == "hello")).scalars().all()
    assert len(made) == 3
    db.session.add(Event(type="email_open", occurred_at=made[0].created_at, account_id=made[0].account_id,
                         touch_id=made[0].id, playbook_id=row.id, properties={}))
    db.session.commit()
    page = client.get("/playbooks/web-pb").get_data(as_text=True)
    opened = re.search(r'<tr data-step="hello">.*?data-result="opened"><a href="([^"]+)">1</a>', page, re.S)
    assert opened, page[page.find("step-results"):][:3000]
    listed = client.get(opened.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert re.findall(r'<tr data-touch="(\d+)">', listed) == [str(made[0].id)]
    searched = client.get("/touches?q=aleph&channel=email").get_data(as_text=True)
    assert len(re.findall(r'<tr data-touch="\d+">', searched)) == 2 and "Alpha<" not in searched
    assert client.get("/touches?status=nonsense&channel=fax").status_code == 200  # unknown filters are ignored


def test_the_flow_is_drawn_with_its_counts_on_the_page_and_in_the_plan(as_role, connectors):
    make_account("Alpha")
    client = as_role("manager")
    branching = GOOD.replace("  - wait: 3d\n", "  - wait: 3d\n  - id: fork\n    branch:\n      if: {tier: [2]}\n"
                                               "      then: tell-ae\n  - id: nudge\n    set_stage: engaged\n")
    assert _apply(client, branching).status_code == 302
    client.post("/playbooks/web-pb/activate")
    page = client.get("/playbooks/web-pb").get_data(as_text=True)
    # its counts are links (to the accounts behind them): a group of links, not an image
    svg = re.search(r'<svg class="pb-flow" role="group" aria-labelledby="flow-title flow-desc".*?</svg>', page, re.S)
    assert svg, "no flow drawn"
    drawn = svg.group(0)
    assert re.findall(r'<g class="flow-step" data-step="([^"]+)">', drawn) == ["hello", "step-2", "fork", "nudge",
                                                                               "tell-ae"]
    assert "<title id=\"flow-title\">Flow of web-pb" in drawn
    assert "From fork if to tell-ae." in drawn and "From fork else to nudge." in drawn  # the text alternative
    assert re.search(r'data-step="hello">.*?<a class="flow-count" href="/playbooks/web-pb/enrollments\?reached=hello" '
                     r'aria-label="1 accounts reached hello">.*?>1</text></a>', drawn, re.S)
    planned = client.get("/playbooks/web-pb/plan").get_data(as_text=True)
    assert 'class="pb-flow" role="img"' in planned and "Flow of web-pb with the accounts the plan expects" in planned


def test_the_playbook_page_shows_touches_a_cap_postponed_with_their_reason(as_role, connectors):
    client = as_role("manager")
    _apply(client)
    row = _playbook()
    version = db.session.execute(select(PlaybookVersion).where(PlaybookVersion.playbook_id == row.id)).scalar_one()
    account = make_account("Capped")
    e = Enrollment(playbook_id=row.id, version_id=version.id, account_id=account.id, state="active", step_index=1)
    db.session.add(e)
    db.session.flush()
    reason = "postponed: capped: at most 2 per contact within 1w"
    db.session.add(Touch(enrollment_id=e.id, playbook_id=row.id, account_id=account.id, contact_key=1,
                         step_id="hello", kind="email", channel="email", connector="outbox", status="scheduled",
                         error=reason))
    db.session.commit()
    page = client.get("/playbooks/web-pb").get_data(as_text=True)
    cell = re.search(r'<tr data-step="hello">.*?data-result="postponed"><a href="([^"]+)">1</a>', page, re.S)
    assert cell, page[page.find("step-results"):][:3000]
    assert "postponed: <a href=" in page and f"1 {reason}</a>" in page
    listed = client.get(cell.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert len(re.findall(r'<tr data-touch="\d+">', listed)) == 1 and reason in listed


def _touches_of(html: str, step: str) -> str:
    return re.search(rf'<tr data-step="{step}">.*?data-label="Touches">([^<]+)</td>', html, re.S).group(1)


def test_the_page_dry_run_simulates_a_migration_when_asked(as_role, connectors):
    make_account("Alpha")
    make_account("Beta")
    manager = as_role("manager")
    _apply(manager)
    assert manager.post("/playbooks/web-pb/activate").status_code == 302  # both wait at hello, on version 1
    v2 = GOOD.replace("Hello", "Hi there").replace("  - wait: 3d\n", "  - id: pause\n    wait: 2d\n")
    _apply(manager, v2)
    mapping = "2 active at v1 <code>hello</code> → <code>hello</code>"

    page = manager.get("/playbooks/web-pb").get_data(as_text=True)
    assert 'href="/playbooks/web-pb/plan?migrate=1"' in page  # offered next to "Move them to version 2"

    client = as_role("ae")  # a plan stores nothing: AEs may ask for it too
    plain = client.get("/playbooks/web-pb/plan").get_data(as_text=True)
    assert 'name="migrate" value="1">' in plain  # offered, not ticked
    assert 'id="plan-moving"' not in plain and mapping not in plain
    assert _touches_of(plain, "hello") == "0"  # already enrolled: without the migration nobody enters

    moved = client.get("/playbooks/web-pb/plan?migrate=1").get_data(as_text=True)
    assert 'name="migrate" value="1" checked>' in moved
    assert 'id="plan-moving">2<' in moved and 'id="plan-entering">0<' in moved
    assert mapping in moved
    assert _touches_of(moved, "hello") == "2"  # the moved enrollments' touches, on version 2
    assert "<strong>Subject:</strong> Hi there" in moved
    # The same service as the CLI's and the API's plan --migrate.
    expected = playbook_service.plan(v2, "web-pb.yaml", migrate=True)
    assert (expected["moving"], expected["migration"]) == (2, [
        {"version": 1, "step": "hello", "state": "active", "to": "hello", "enrollments": 2}])

    # The editor's plan offers it too.
    edited = client.post("/playbooks/_check", data={"source": v2, "action": "plan", "migrate": "1"})
    html = edited.get_data(as_text=True)
    assert edited.status_code == 200 and 'name="migrate" value="1" checked>' in html
    assert 'id="plan-moving">2<' in html and mapping in html and _touches_of(html, "hello") == "2"
    unticked = client.post("/playbooks/_check", data={"source": v2, "action": "plan"}).get_data(as_text=True)
    new_key = client.post("/playbooks/_check", data={"source": v2.replace("key: web-pb", "key: web-new"),
                                                     "action": "plan", "migrate": "1"}).get_data(as_text=True)
    assert 'id="plan-moving">0<' in new_key and "nothing would move" in new_key
    assert 'id="plan-moving"' not in unticked and _touches_of(unticked, "hello") == "0"

    # Nothing moved: the enrollments are still on version 1 until a manager moves them.
    assert "2 running enrollment(s) are on older versions" in manager.get("/playbooks/web-pb").get_data(as_text=True)
    after = manager.post("/playbooks/web-pb/migrate", follow_redirects=True).get_data(as_text=True)
    assert "2 running enrollment(s) moved to version 2." in after
    nothing = client.get("/playbooks/web-pb/plan?migrate=1").get_data(as_text=True)
    assert mapping not in nothing and "2 active at v2 <code>hello</code> → <code>hello</code>" in nothing
    assert 'id="plan-moving">2<' in nothing and _touches_of(nothing, "hello") == "2"  # running, on version 2


def test_each_touches_by_status_bar_opens_the_touches_it_counts(as_role, connectors):
    make_account("Alpha")
    make_account("Aleph", contacts=(("decision_maker", "CEO"), ("decision_maker", "CFO")))
    client = as_role("manager")
    _apply(client)
    client.post("/playbooks/web-pb/activate")
    dispatcher.dispatch(enqueue=False)
    row = _playbook()
    made = db.session.execute(select(Touch).where(Touch.playbook_id == row.id).order_by(Touch.id)).scalars().all()
    made[0].status, made[0].error = "failed", "boom"
    db.session.commit()
    expected: dict[str, set[str]] = {}
    for touch in made:
        expected.setdefault(touch.status, set()).add(str(touch.id))
    assert len(expected) >= 2
    page = client.get("/playbooks/web-pb").get_data(as_text=True)
    chart = re.search(r'<div class="touch-statuses">(.*?)</svg>', page, re.S).group(1)
    linked = re.findall(r'<a href="([^"]+)">\s*<g class="bar-row">\s*<title>(\w+): (\d+)</title>', chart)
    assert sorted(status for _, status, _ in linked) == sorted(expected)  # only the statuses with touches link
    for href, status, n in linked:
        listed = client.get(href.replace("&amp;", "&")).get_data(as_text=True)
        rows = set(re.findall(r'<tr data-touch="(\d+)">', listed))
        assert rows == expected[status] and len(rows) == int(n)
