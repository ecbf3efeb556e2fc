"""The Outbox page: the .eml files the outbox connector wrote, newest first, and one
email shown with its headers, its HTML part sandboxed, and its text part."""

from __future__ import annotations

import os
import re

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Account, Contact, Enrollment, PlaybookVersion
from abm.services import connectors
from abm.services import playbooks as service
from abm.web import outbox as outbox_page
from connectors.base import ConnectorContext, Touch
from connectors.outbox import OutboxConnector, eml_name
from tests.engine.conftest import make_account, run_worker
from workers import dispatcher

PLAYBOOK = """version: 1
key: outbox-pb
name: Outbox playbook
audience:
  where: {tier: [1]}
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi</p>"
"""


@pytest.fixture
def outbox_dir(app, tmp_path):
    path = tmp_path / "outbox"
    app.config["OUTBOX_DIR"] = str(path)
    return path


def _email(key: str, to: str, subject: str, html: str | None = None) -> Touch:
    return Touch(
        id=1, kind="email", channel="email", account={"name": "Acme", "domain": "acme.example"},
        contact={"email": to, "first_name": "Jane", "last_name": "Doe"},
        payload={"subject": subject, "unsubscribe_url": "https://abm.test/u/TOKEN",
                 "html": html or '<p>Hi Jane, read <a href="https://vendor.example/guide">our guide</a>.</p>'},
        key=key)


def _write(directory, touch: Touch, mtime: float | None = None):
    connector = OutboxConnector("outbox", {"from_email": "news@vendor.example", "tracking": False},
                                ConnectorContext(outbox_dir=str(directory)))
    [result] = connector.send([touch])
    assert result.ok, result.error
    path = directory / eml_name(touch.key)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _enrollment() -> Enrollment:
    connectors.ensure_demo_connectors()
    db.session.commit()
    row, _ = service.apply(PLAYBOOK)
    account = make_account("Acme")
    version = db.session.execute(select(PlaybookVersion)).scalar_one()
    enrollment = Enrollment(playbook_id=row.id, version_id=version.id, account_id=account.id)
    db.session.add(enrollment)
    db.session.commit()
    return enrollment


def _rows(html: str) -> list[tuple[str, str, str, str]]:
    return [(to, subject, account, playbook) for to, subject, account, playbook in re.findall(
        r'<td data-label="To">([^<]*)</td>\s*<td class="primary" data-label="Subject"><a href="[^"]+">([^<]*)</a></td>\s*'
        r'<td data-label="Account">(?:<a href="[^"]+">)?([^<]*)(?:</a>)?(?:<span class="muted">—</span>)?</td>\s*'
        r'<td data-label="Playbook">(?:<a href="[^"]+">)?([^<]*)', html)]


def test_outbox_lists_emails_newest_first_with_account_and_playbook(as_role, outbox_dir):
    enrollment = _enrollment()
    contact = db.session.execute(select(Contact)).scalars().first()
    _write(outbox_dir, _email(f"{enrollment.id}:hello:{contact.id}", contact.email, "Hello Acme"), mtime=2_000_000_000)
    _write(outbox_dir, _email("999:intro:5", "bob@other.example", "Older, unknown touch"), mtime=1_900_000_000)
    (outbox_dir / ".tmp-x.part").write_bytes(b"half written")
    (outbox_dir / "notes.txt").write_text("not an email")

    client = as_role("manager")
    html = client.get("/outbox").get_data(as_text=True)
    assert _rows(html) == [
        (f"Jane Doe &lt;{contact.email}&gt;", "Hello Acme", "Acme", "outbox-pb"),
        ("Jane Doe &lt;bob@other.example&gt;", "Older, unknown touch", "", ""),
    ]
    assert "2 in all" in html
    assert 'href="/playbooks/outbox-pb"' in html and f'href="/accounts/{enrollment.account_id}"' in html


def test_outbox_pages_go_from_newest_to_oldest(as_role, outbox_dir, monkeypatch):
    client = as_role("manager")
    assert "The outbox is empty" in client.get("/outbox").get_data(as_text=True)  # no folder yet
    monkeypatch.setattr(outbox_page, "PAGE_SIZE", 2)
    for n, when in enumerate((1_700_000_000, 1_900_000_000, 1_800_000_000)):
        _write(outbox_dir, _email(f"{n}:s:{n}", f"p{n}@acme.example", f"Email {n}"), mtime=when)
    first = client.get("/outbox").get_data(as_text=True)
    assert [r[1] for r in _rows(first)] == ["Email 1", "Email 2"]
    assert 'href="/outbox?page=2">Older</a>' in first and "3 in all" in first
    second = client.get("/outbox?page=2").get_data(as_text=True)
    assert [r[1] for r in _rows(second)] == ["Email 0"]
    assert 'href="/outbox?page=1">Newer</a>' in second and "Older</a>" not in second
    assert _rows(client.get("/outbox?page=7").get_data(as_text=True)) == []


def test_one_email_is_shown_with_headers_sandboxed_html_and_text(as_role, outbox_dir):
    hostile = ('<p>Hi Jane</p><script>parent.document.title="owned"</script>'
               '<img src="https://tracker.example/pixel.gif"><a href="https://vendor.example/guide">guide</a>')
    _write(outbox_dir, _email("12:hello:3", "jane@acme.example", "Your guide", html=hostile))
    client = as_role("admin")
    link = re.search(r'<a href="(/outbox/[^"]+)">Your guide</a>', client.get("/outbox").get_data(as_text=True)).group(1)
    page = client.get(link)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<dt>List-Unsubscribe</dt><dd>&lt;https://abm.test/u/TOKEN&gt;</dd>" in html
    assert "<dt>X-ABM-Touch</dt><dd>12:hello:3</dd>" in html
    assert "<dt>From</dt><dd>news@vendor.example</dd>" in html
    frame = re.search(r'<iframe class="email-frame" sandbox="" src="([^"]+)"', html)
    assert frame, "the HTML part must be framed with an empty sandbox"
    assert "<script>parent" not in html  # the HTML never enters the page itself
    text = re.search(r'<pre class="email-text">(.*?)</pre>', html, re.S).group(1)
    assert "Hi Jane" in text and "guide (https://vendor.example/guide)" in text

    part = client.get(frame.group(1))
    assert part.status_code == 200 and part.mimetype == "text/html"
    csp = part.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "script-src" not in csp
    assert part.headers["X-Content-Type-Options"] == "nosniff"
    assert "<p>Hi Jane</p>" in part.get_data(as_text=True)

    raw = client.get(link + "/raw")
    assert raw.mimetype == "message/rfc822" and b"Subject: Your guide" in raw.data


def test_outbox_roles_bad_names_and_plain_text_emails(as_role, outbox_dir, app):
    _write(outbox_dir, _email("1:a:1", "jane@acme.example", "Hello"))
    ae = as_role("ae")
    assert ae.get("/outbox").status_code == 403
    manager = as_role("manager")
    link = re.search(r'<a href="(/outbox/[^"]+)">Hello</a>', manager.get("/outbox").get_data(as_text=True)).group(1)
    assert ae.get(link).status_code == 403 and ae.get(link + "/html").status_code == 403

    box = link.split("/")[2]
    for bad in (f"/outbox/{box}/..%2Fsecret.eml", f"/outbox/{box}/missing.eml", f"/outbox/{box}/notes.txt",
                "/outbox/0000000000/1_a_1.eml"):
        resp = manager.get(bad)
        assert resp.status_code == 404, bad
        assert "Traceback" not in resp.get_data(as_text=True)

    # An alert is a plain-text email: no HTML part, no frame.
    alert = Touch(id=2, kind="alert", channel="alert", account={"name": "Acme"}, contact=None,
                  payload={"to": "ae@seller.example", "message": "Acme is hot"}, key="2:tell-ae:0")
    _write(outbox_dir, alert)
    html = manager.get(f"/outbox/{box}/{eml_name(alert.key)}").get_data(as_text=True)
    assert "This email has no HTML part." in html and "<iframe" not in html and "Acme is hot" in html
    assert manager.get(f"/outbox/{box}/{eml_name(alert.key)}/html").status_code == 404


def test_an_outbox_connector_with_its_own_folder_is_listed_too(as_role, outbox_dir, tmp_path):
    other = tmp_path / "campaign-box"
    connectors.create({"type": "outbox", "name": "campaign", "settings": {"directory": str(other)}, "default": []})
    db.session.commit()
    _write(other, _email("3:x:1", "zoe@globex.example", "From the campaign box"))
    html = as_role("manager").get("/outbox").get_data(as_text=True)
    assert "From the campaign box" in html and str(other) in html
    assert "The outbox is empty" not in html
    assert db.session.execute(select(Account)).first() is None  # listing writes nothing


@pytest.mark.browser
def test_in_a_browser_the_email_renders_sandboxed_and_fetches_nothing(live_server, new_page, make_live_user):
    directory = live_server.tmp / "outbox"
    live_server.app.config["OUTBOX_DIR"] = str(directory)
    hostile = ('<html><body><h2 style="color:#2450c8">Your fraud report</h2><p>Hi Jane</p>'
               '<script>document.body.setAttribute("data-ran", "yes")</script>'
               '<img src="https://tracker.example/pixel.gif" alt="">'
               '<p><a href="https://vendor.example/guide">Read the guide</a></p></body></html>')
    _write(directory, _email("5:hello:1", "jane@acme.example", "Your fraud report", html=hostile))
    page = new_page()
    failed = []
    page.on("requestfailed", lambda request: failed.append((request.url, request.failure)))
    live_server.login(page, make_live_user("manager"))
    page.goto(live_server.url + "/playbooks")
    page.locator("nav.nav").get_by_role("link", name="Outbox", exact=True).click()
    page.wait_for_url("**/outbox")
    page.screenshot(path=live_server.tmp / "outbox-list.png", full_page=True)
    page.get_by_role("link", name="Your fraud report").click()
    page.wait_for_selector("iframe.email-frame")
    body = page.frame_locator("iframe.email-frame").locator("body")
    assert "Hi Jane" in body.inner_text()
    assert body.get_attribute("data-ran") is None  # no script runs in the frame
    assert "Read the guide (https://vendor.example/guide)" in page.locator("pre.email-text").inner_text()
    page.screenshot(path=live_server.tmp / "outbox-email.png", full_page=True)
    page.locator("iframe.email-frame").screenshot(path=live_server.tmp / "outbox-frame.png")
    # The tracking pixel was tried and refused by the frame's CSP, before any network.
    outside = [u for u in live_server.requests if not u.startswith(live_server.url)]
    assert outside == ["https://tracker.example/pixel.gif"]
    assert [(url, why) for url, why in failed if url in outside] == [(outside[0], "csp")]


TWO_STEPS = """version: 1
key: outbox-two
name: Two emails
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    email: {to: {roles: [decision_maker]}, subject: "Hello {{ account.name }}", body: "<p>Hi</p>"}
  - id: again
    email: {to: {roles: [decision_maker]}, subject: "Again {{ account.name }}", body: "<p>Hi again</p>"}
"""


def _subjects(html: str) -> list[str]:
    return re.findall(r'data-label="Subject"><a href="/outbox/[0-9a-f]+/[^"]+\.eml">([^<]*)</a>', html)


def test_the_outbox_is_searched_filtered_and_paged_by_the_touches_behind_its_emails(app, as_role, outbox_dir,
                                                                                  monkeypatch):
    connectors.ensure_demo_connectors()
    db.session.commit()
    for name in ("Acme", "Birch", "Cedar"):
        make_account(name)
    make_account("Other", tier=2)
    service.apply(TWO_STEPS)
    service.activate("outbox-two")
    dispatcher.dispatch(enqueue=True)
    run_worker(app)
    assert len(list(outbox_dir.glob("*.eml"))) == 6  # three accounts, two emails each

    client = as_role("manager")
    every = client.get("/outbox").get_data(as_text=True)
    assert "6 in all" in every
    by_step = client.get("/outbox?playbook=outbox-two&step=again").get_data(as_text=True)
    assert sorted(_subjects(by_step)) == ["Again Acme", "Again Birch", "Again Cedar"]
    assert client.get("/outbox?account=birch.example").status_code == 200
    assert sorted(_subjects(client.get("/outbox?account=birch.example").get_data(as_text=True))) == [
        "Again Birch", "Hello Birch"]
    assert sorted(_subjects(client.get("/outbox?q=ceda").get_data(as_text=True))) == ["Again Cedar", "Hello Cedar"]
    assert _subjects(client.get("/outbox?status=failed").get_data(as_text=True)) == []
    assert "No email matches" in client.get("/outbox?q=nobody").get_data(as_text=True)

    monkeypatch.setattr(outbox_page, "PAGE_SIZE", 4)
    first = client.get("/outbox?playbook=outbox-two").get_data(as_text=True)
    older = re.search(r'href="(/outbox\?cursor=[^"]+)" *>Older|id="next-page" href="([^"]+)"', first)
    assert older, first
    second = client.get((older.group(1) or older.group(2)).replace("&amp;", "&")).get_data(as_text=True)
    seen = _subjects(first) + _subjects(second)
    assert len(_subjects(first)) == 4 and len(seen) == 6 and len(set(seen)) == 6
    assert "Older</a>" not in second and "Newest</a>" in second
    # A filter value too long or unknown is cut or refused, never a 500.
    assert client.get("/outbox?step=" + "x" * 5000).status_code == 200
    assert client.get("/outbox?playbook=nope").status_code == 404
