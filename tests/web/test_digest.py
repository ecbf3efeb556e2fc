"""The weekly digest: each seller's accounts that warmed up and why, new people engaging,
what marketing runs at each, links back; the manager's covers the team; sent by the
workers on the reader's local Monday morning, once, through the SMTP connector and read
at a real SMTP server (aiosmtpd); a seller turns it off. In a real Chromium, the whole
journey: the scheduler's job on a moved clock, the email's links followed by the seller."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from rq import Queue

from abm.db import db
from abm.models import Account, Contact, Enrollment, Playbook, PlaybookVersion
from abm.redis_conn import get_redis
from abm.services import connectors as connector_service
from abm.services import digest, engine_hooks, events
from tests.connectors.fakes.slack import slack_api_app
from tests.connectors.fakes.smtp_server import smtp_server
from tests.connectors.harness import serve
from workers import digest_jobs, scheduler
from workers.runner import AppSimpleWorker

MONDAY_9_PARIS = datetime(2026, 6, 22, 7, 5, tzinfo=UTC)  # 09:05 in Paris, 07:05 UTC


@pytest.fixture(autouse=True)
def _quiet_engine(monkeypatch):
    monkeypatch.setattr(engine_hooks, "engagement_changed", lambda *args, **kwargs: None)


def _line(etype, at, **fields):
    return events.stamp({"type": etype, "occurred_at": at.isoformat(), **fields})


def _world(quick_user):
    sam = quick_user("ae", email="sam@example.com", name="Sam")
    sam.timezone = "Europe/Paris"
    kim = quick_user("ae", email="kim@example.com", name="Kim")
    kim.timezone = "America/New_York"  # her Monday morning is later
    boss = quick_user("manager", email="boss@example.com", name="Boss")
    boss.timezone = "Europe/Paris"
    acme = Account(name="Acme", domain="acme.example", stage="aware", owner_id=sam.id)
    quiet = Account(name="Quiet", domain="quiet.example", stage="target", owner_id=sam.id)
    hooli = Account(name="Hooli", domain="hooli.example", stage="engaged", owner_id=kim.id)
    db.session.add_all([acme, quiet, hooli])
    db.session.flush()
    db.session.add(Contact(account_id=acme.id, email="jane@acme.example", first_name="Jane", last_name="Doe",
                           title="CISO", buying_role="champion"))
    playbook = Playbook(key="intro", name="Intro sequence", status="active")
    db.session.add(playbook)
    db.session.flush()
    version = PlaybookVersion(playbook_id=playbook.id, version=1, source="", compiled={})
    db.session.add(version)
    db.session.flush()
    db.session.add(Enrollment(playbook_id=playbook.id, version_id=version.id, account_id=acme.id))
    db.session.commit()
    now = MONDAY_9_PARIS
    events.store([_line("meeting", now - timedelta(days=2), email="jane@acme.example"),
                  _line("form_fill", now - timedelta(days=1), email="jane@acme.example"),
                  _line("meeting", now - timedelta(days=3), account_domain="hooli.example"),
                  _line("web_visit", now - timedelta(days=30), account_domain="quiet.example")], now=now)
    return sam, kim, boss


def test_each_seller_gets_their_digest_on_their_monday_morning(pages, quick_user):
    sam, kim, boss = _world(quick_user)
    admin = quick_user("admin")
    with smtp_server() as server:
        connector_service.create({"name": "mail", "type": "smtp", "default": ["email"], "settings": {
            "host": server.host, "port": server.port, "security": "none", "from_email": "abm@vendor.example",
            "timeout": 5}}, admin.id)
        assert digest_jobs.send_weekly_digests(MONDAY_9_PARIS - timedelta(days=1)) == 0  # a Sunday
        assert digest_jobs.send_weekly_digests(MONDAY_9_PARIS) == 2  # Sam and Boss, in Paris
        assert digest_jobs.send_weekly_digests(MONDAY_9_PARIS + timedelta(hours=1)) == 0  # once a week
        assert digest_jobs.send_weekly_digests(MONDAY_9_PARIS + timedelta(hours=6)) == 1  # Kim: 09:05 in New York
        mails = {m.rcpt_tos[0]: message_from_bytes(m.raw, policy=policy.default) for m in server.messages}
    assert sorted(mails) == ["boss@example.com", "kim@example.com", "sam@example.com"]
    sam_mail = mails["sam@example.com"]
    assert sam_mail["Subject"] == "This week: 1 of your accounts warmed up, 1 new people engaging"
    text = sam_mail.get_body(("plain",)).get_content()
    assert re.search(r"- Acme: cold -> warm \(score 3\d\.\d\)", text)  # a meeting and a form fill, decayed
    assert "Why: 1 meeting, 1 form fill, mostly Jane Doe" in text
    assert "Marketing running: Intro sequence" in text
    assert re.search(r"https?://\S+/accounts/\d+", text) and "Hooli" not in text and "Quiet" not in text
    assert "- Jane Doe, CISO at Acme" in text
    html = sam_mail.get_body(("html",)).get_content()
    assert ">Acme</strong></a>: cold → warm" in html
    team = mails["boss@example.com"].get_body(("plain",)).get_content()
    assert "Acme" in team and "Hooli" in team and "Sam" in team and "Kim" in team  # the team's, with the sellers


def test_where_slack_is_configured_the_seller_also_gets_a_direct_message(pages, quick_user):
    sam, _kim, _boss = _world(quick_user)
    admin = quick_user("admin")
    with smtp_server() as mail, serve(slack_api_app(token="xoxb-good", users={"sam@example.com": "U0SAM"})) as slack:
        connector_service.create({"name": "mail", "type": "smtp", "default": ["email"], "settings": {
            "host": mail.host, "port": mail.port, "security": "none", "from_email": "abm@vendor.example",
            "timeout": 5}}, admin.id)
        connector_service.create({"name": "sales", "type": "slack", "default": ["alert"], "settings": {
            "bot_token": "xoxb-good", "api_url": slack.base_url + "/api", "deliver_to": "direct_message",
            "channel": "C0ALERTS", "timeout": 5}}, admin.id)
        assert digest_jobs.send_weekly_digests(MONDAY_9_PARIS) == 2
        posted = slack.app.config["POSTED"]
    direct = [p for p in posted if p["channel"] == "DU0SAM"]
    assert len(direct) == 1 and "1 of your accounts warmed up" in direct[0]["text"]
    assert sorted(m.rcpt_tos[0] for m in mail.messages) == ["boss@example.com", "sam@example.com"]


def test_a_seller_turns_the_digest_off_and_on(as_role, quick_user):
    client = as_role("ae")
    client.user.timezone = "Europe/Paris"
    db.session.commit()
    html = client.get("/engagement/mine").get_data(as_text=True)
    assert "Weekly digest by email: <strong>on</strong>" in html
    resp = client.post("/engagement/mine/digest", data={"on": "0"}, follow_redirects=True)
    assert "Your weekly digest is off." in resp.get_data(as_text=True)
    assert digest.due(MONDAY_9_PARIS) == []
    client.post("/engagement/mine/digest", data={"on": "1"})
    assert [u.email for u, _ in digest.due(MONDAY_9_PARIS)] == [client.user.email]


def test_a_seller_sets_their_own_time_zone(as_role):
    client = as_role("ae")
    resp = client.post("/engagement/mine/timezone", data={"timezone": "America/Los_Angeles"}, follow_redirects=True)
    assert "Your time zone is now America/Los_Angeles." in resp.get_data(as_text=True)
    db.session.expire_all()
    assert client.user.timezone == "America/Los_Angeles"
    assert digest.due(MONDAY_9_PARIS) == []  # 00:05 in Los Angeles
    assert [u.email for u, _ in digest.due(MONDAY_9_PARIS + timedelta(hours=9))] == [client.user.email]
    bad = client.post("/engagement/mine/timezone", data={"timezone": "Atlantis/Capital"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="err-my-timezone"' in html and 'value="Atlantis/Capital"' in html
    db.session.expire_all()
    assert client.user.timezone == "America/Los_Angeles"


@pytest.mark.browser
def test_in_a_browser_a_seller_turns_the_digest_off(live_server, new_page, make_live_user):
    seller = make_live_user("ae", email="sam@example.com")
    page = new_page()
    live_server.login(page, seller)
    page.goto(live_server.url + "/engagement/mine")
    page.get_by_role("button", name="Turn it off").click()
    page.wait_for_url("**/engagement/mine")
    assert "Your weekly digest is off." in page.locator(".flash").inner_text()
    assert page.get_by_role("button", name="Turn it on").is_visible()
    assert not live_server.js_errors


def _run_the_schedulers_digest_job(app) -> None:
    """What `abm scheduler` and `abm worker` do each hour: the digest job, as the scheduler
    registers it, enqueued and run by the app's worker (in an app context of its own, on
    the app's clock)."""
    conn = get_redis()
    [job] = [j for j in scheduler.build(conn).get_jobs() if j.func is digest_jobs.send_weekly_digests]
    job.enqueue(conn)
    queue = Queue(job.queue_name, connection=conn)
    worker = AppSimpleWorker([queue], connection=conn)
    worker.flask_app = app
    worker.work(burst=True, logging_level="ERROR")
    assert queue.failed_job_registry.get_job_ids() == []


def _mails(server, start: int = 0) -> dict[str, object]:
    return {m.rcpt_tos[0]: message_from_bytes(m.raw, policy=policy.default) for m in server.messages[start:]}


@pytest.mark.browser
def test_in_a_browser_a_seller_follows_their_digest_and_turns_it_off(live_server, new_page, make_live_user):
    """The journey end to end: the scheduler's job on Monday morning in Paris (a moved
    clock), the email read at a real SMTP server, its links followed by the logged-in
    seller, the digest turned off there, and the next Monday only the manager's comes."""
    app = live_server.app
    app.config["BASE_URL"] = live_server.url
    clock = {"now": MONDAY_9_PARIS - timedelta(hours=2)}  # 07:05 in Paris: not yet
    app.config["ABM_CLOCK"] = lambda: clock["now"]
    sam, _kim, boss = _world(make_live_user)
    admin = make_live_user("admin")
    with smtp_server() as server:
        connector_service.create({"name": "mail", "type": "smtp", "default": ["email"], "settings": {
            "host": server.host, "port": server.port, "security": "none", "from_email": "abm@vendor.example",
            "timeout": 5}}, admin.id)
        _run_the_schedulers_digest_job(app)
        assert server.messages == []
        clock["now"] = MONDAY_9_PARIS
        _run_the_schedulers_digest_job(app)
        first = _mails(server)
        assert sorted(first) == ["boss@example.com", "sam@example.com"]
        team = first["boss@example.com"].get_body(("plain",)).get_content()
        assert "Your team's week" in team and "Acme" in team and "Hooli" in team and "Sam" in team

        page = new_page()
        live_server.login(page, sam)
        page.set_content(first["sam@example.com"].get_body(("html",)).get_content())  # the email, as a mail client shows it
        page.get_by_role("listitem").filter(has_text="cold → warm").get_by_role("link", name="Acme").click()
        page.wait_for_url(re.compile(r"/accounts/\d+$"))
        assert page.get_by_role("heading", name="Acme", level=1).is_visible()
        assert "Jane Doe" in page.inner_text("main")

        page.set_content(first["sam@example.com"].get_body(("html",)).get_content())
        page.get_by_role("link", name="Turn it off on My accounts").click()
        page.wait_for_url("**/engagement/mine")
        page.get_by_role("button", name="Turn it off").click()
        page.wait_for_url("**/engagement/mine")
        assert "Your weekly digest is off." in page.locator(".flash").inner_text()

        sent = len(server.messages)
        clock["now"] = MONDAY_9_PARIS + timedelta(days=7)
        _run_the_schedulers_digest_job(app)
        assert sorted(_mails(server, sent)) == ["boss@example.com"]  # the manager's still comes; Sam's not
    assert not live_server.js_errors
