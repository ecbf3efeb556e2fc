"""The account executive's pages: my accounts, the stage by engagement matrix, the
engagement sections of the account page, the website snippet page; then the same in a
real headless browser at laptop and phone widths, with screenshots."""

from __future__ import annotations

import html as html_lib
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest

from abm.db import db, utcnow
from abm.models import Account, Alert, Contact, Enrollment, Playbook, PlaybookVersion, StageChange, Touch
from abm.services import engine_hooks, events, sales_view
from abm.services import settings as settings_service
from abm.web.engagement import ago
from tests.web import browser

PHONE = browser.PHONE


def _line(etype, days_ago=0.0, now=None, **fields):
    e = {"type": etype, "occurred_at": ((now or utcnow()) - timedelta(days=days_ago)).isoformat(), **fields}
    return events.stamp(e)


@pytest.fixture(autouse=True)
def _quiet_engine(monkeypatch):
    """The drain tells the engine about engagement; the engine's own tests cover that."""
    monkeypatch.setattr(engine_hooks, "engagement_changed", lambda *args, **kwargs: None)


def seed(owner, other):
    """Four accounts of ``owner`` and one of ``other``, with contacts, a playbook touch, a
    stage change, an alert and events stored through the drain's own path.

    With the default weights (half-life 30 days, warm 20, hot 50):
    Acme (aware) is hot and rose most this week; Globex (engaged) is warm but fell;
    Umbrella (target) is cold and rose; Initech (opportunity) has nothing: cold.
    Hooli (mqa, the other owner's) is hot.
    """
    now = utcnow()
    accounts = {
        "Acme": Account(name="Acme", domain="acme.example", stage="aware", tier=1, owner_id=owner.id),
        "Globex": Account(name="Globex", domain="globex.example", stage="engaged", tier=2, owner_id=owner.id),
        "Umbrella": Account(name="Umbrella", domain="umbrella.example", stage="target", owner_id=owner.id),
        "Initech": Account(name="Initech", domain="initech.example", stage="opportunity", owner_id=owner.id),
        "Hooli": Account(name="Hooli", domain="hooli.example", stage="mqa", owner_id=other.id),
    }
    db.session.add_all(accounts.values())
    db.session.flush()
    acme = accounts["Acme"]
    jane = Contact(account_id=acme.id, email="jane@acme.example", first_name="Jane", last_name="Doe",
                   buying_role="champion")
    bob = Contact(account_id=acme.id, email="bob@acme.example", first_name="Bob", last_name="Roe",
                  buying_role="decision_maker")
    kim = Contact(account_id=acme.id, email="kim@acme.example", first_name="Kim", buying_role="user")
    pb = Playbook(key="intro", name="Intro sequence", status="active")
    db.session.add_all([jane, bob, kim, pb])
    db.session.flush()
    version = PlaybookVersion(playbook_id=pb.id, version=1, source="", compiled={})
    db.session.add(version)
    db.session.flush()
    enrollment = Enrollment(playbook_id=pb.id, version_id=version.id, account_id=acme.id, step_index=1,
                            entered_at=now - timedelta(days=5))
    db.session.add(enrollment)
    db.session.flush()
    touch = Touch(enrollment_id=enrollment.id, playbook_id=pb.id, account_id=acme.id, contact_id=jane.id,
                  contact_key=jane.id, step_id="hello", kind="email", channel="email", status="sent",
                  payload={"subject": "Hello from us"}, sent_at=now - timedelta(days=2),
                  created_at=now - timedelta(days=2))
    db.session.add(touch)
    db.session.add(StageChange(account_id=acme.id, from_stage="target", to_stage="aware", source="api",
                               changed_at=now - timedelta(days=3)))
    db.session.add(Alert(account_id=accounts["Initech"].id, kind="level_up", level="warm",
                         message="Initech warmed up", status="open"))
    db.session.commit()
    events.store([
        _line("meeting", 20, now, email="bob@acme.example"),                                   # 15.75
        _line("meeting", 1, now, email="jane@acme.example"),                                   # 24.43
        _line("form_fill", 0, now, email="jane@acme.example"),                                 # 15
        _line("web_visit", 0, now, email="jane@acme.example", url="https://acme.example/pricing"),  # 8
        _line("email_click", 0, now, touch_id=touch.id, url="https://us.example/case"),        # 3, Intro
        _line("meeting", 12, now, account_domain="globex.example"),
        _line("meeting", 12, now, account_domain="globex.example"),                            # 37.9
        _line("form_fill", 2, now, account_domain="umbrella.example"),                         # 14.3
        _line("meeting", 0, now, account_domain="hooli.example", quantity=3),                  # 75
    ], now=now)
    db.session.expire_all()
    return {name: db.session.get(Account, a.id) for name, a in accounts.items()} | {
        "jane": jane, "bob": bob, "playbook": pb, "touch": touch}


def _rows(html: str) -> list[str]:
    return re.findall(r'<td class="primary" data-label="Account"><a href="/accounts/\d+">([^<]+)</a>', html)


def _row(html: str, account_id: int) -> str:
    return re.search(rf'<tr data-account-id="{account_id}">(.*?)</tr>', html, re.S).group(1)


# -- My accounts --------------------------------------------------------------------

def test_my_accounts_by_score_and_by_change_this_week(as_role, quick_user):
    client = as_role("ae")
    w = seed(client.user, quick_user("ae", email="other@example.com"))
    html = client.get("/engagement/mine").get_data(as_text=True)
    assert "<h1>My accounts" in html
    assert _rows(html) == ["Acme", "Globex", "Umbrella", "Initech"]  # Hooli is someone else's

    acme = _row(html, w["Acme"].id)
    assert '<span class="pill stage">aware</span>' in acme
    assert re.search(r'<span class="pill eng-hot" title="0% of the score from passive exposure[^"]*" '
                     r'data-driven-by="active">hot<span class="driver"> · active</span></span>', acme)
    assert f"{w['Acme'].score:.1f}" in acme
    assert 'class="chart sparkline"' in acme and "last 30 days" in acme
    assert re.search(r'class="change up">\+4\d\.\d<', acme)  # 66 now against 18.5 a week ago
    assert ">2 days ago</time>" in acme
    assert 'data-driven-by="active">warm<span class="driver"> · active</span>' in _row(html, w["Globex"].id)
    assert re.search(r'class="change down">−\d\.\d<', _row(html, w["Globex"].id))
    initech = _row(html, w["Initech"].id)
    assert 'class="change flat">0<' in initech and 'class="alerts-count"' in initech and ">1</span>" in initech
    assert ">never<" in initech
    assert f'href="/accounts/{w["Acme"].id}"' in acme

    by_change = client.get("/engagement/mine?sort=change").get_data(as_text=True)
    assert _rows(by_change) == ["Acme", "Umbrella", "Initech", "Globex"]
    assert 'class="active" aria-current="true" data-sort="change"' in by_change


def test_managers_pick_an_owner_and_account_executives_may_not(as_role, quick_user):
    ae = quick_user("ae", email="sam@example.com", name="Sam")
    other = quick_user("ae", email="other@example.com")
    seed(ae, other)
    manager = as_role("manager")
    html = manager.get(f"/engagement/mine?owner={ae.id}").get_data(as_text=True)
    assert "<h1>Accounts of Sam" in html and _rows(html) == ["Acme", "Globex", "Umbrella", "Initech"]
    assert f'<option value="{ae.id}" selected>Sam</option>' in html
    assert _rows(manager.get("/engagement/mine?owner=other@example.com").get_data(as_text=True)) == ["Hooli"]
    assert "You own no account yet" in manager.get("/engagement/mine").get_data(as_text=True)
    missing = manager.get("/engagement/mine?owner=nobody@example.com")
    assert missing.status_code == 404 and "nobody@example.com" in missing.get_data(as_text=True)

    client = as_role("ae", user=other)
    refused = client.get(f"/engagement/mine?owner={ae.id}")
    assert refused.status_code == 403 and "own accounts" in refused.get_data(as_text=True)
    assert "<select name=\"owner\"" not in client.get("/engagement/mine").get_data(as_text=True)


def test_last_touch_reads_as_a_person_would_say_it():
    now = utcnow()
    assert [ago(now - timedelta(days=d, hours=1), now) for d in (0, 1, 6, 13, 20, 59, 75, 400)] == [
        "today", "1 day ago", "6 days ago", "13 days ago", "2 weeks ago", "8 weeks ago", "2 months ago",
        "13 months ago"]
    assert ago(None, now) == "never"


# -- the matrix ---------------------------------------------------------------------

def _cell(html: str, stage: str, level: str) -> tuple[str, int]:
    row = re.search(rf'<tr data-stage="{stage}">(.*?)</tr>', html, re.S).group(1)
    m = re.search(rf'data-level="{level}">\s*<a href="([^"]+)"[^>]*>([\d,]+)</a>', row)
    return html_lib.unescape(m.group(1)), int(m.group(2).replace(",", ""))


def test_matrix_counts_named_cells_and_links_land_on_the_filtered_list(as_role, quick_user):
    client = as_role("ae")
    seed(client.user, quick_user("ae", email="other@example.com"))
    html = client.get("/engagement").get_data(as_text=True)  # an AE sees their own by default
    assert 'class="active" aria-current="true" data-scope="mine"' in html
    assert _cell(html, "aware", "hot")[1] == 1 and _cell(html, "engaged", "warm")[1] == 1
    assert _cell(html, "opportunity", "cold")[1] == 1 and _cell(html, "mqa", "hot")[1] == 0
    assert re.search(r'<span class="n">1</span> <span class="what">hot account not yet in opportunity</span>', html)
    assert re.search(r'<span class="n">1</span> <span class="what">opportunity gone cold</span>', html)
    assert re.search(r'class="cell lv-hot act" data-level="hot">\s*<a href="/accounts\?stage=aware', html)

    href, _ = _cell(html, "aware", "hot")
    assert href == "/accounts?stage=aware&engagement=hot&owner=me"
    assert _rows(client.get(href).get_data(as_text=True)) == ["Acme"]
    hot_link = html_lib.unescape(re.search(r'href="([^"]+)" data-cell="hot_not_in_opportunity"', html).group(1))
    assert hot_link == "/accounts?stage=target,aware,engaged,mqa&engagement=hot&owner=me"
    landed = client.get(hot_link).get_data(as_text=True)
    assert _rows(landed) == ["Acme"]
    assert "1 account matches, in stages target, aware, engaged, mqa, engagement hot." in landed
    assert '<option value="target,aware,engaged,mqa" selected>' in landed  # the filter form keeps it
    cold_link = html_lib.unescape(re.search(r'href="([^"]+)" data-cell="opportunities_gone_cold"', html).group(1))
    assert _rows(client.get(cold_link).get_data(as_text=True)) == ["Initech"]

    everyone = client.get("/engagement?owner=all").get_data(as_text=True)
    assert _cell(everyone, "mqa", "hot")[1] == 1
    assert re.search(r'<span class="n">2</span> <span class="what">hot accounts not yet in opportunity</span>', everyone)
    hot_all = html_lib.unescape(re.search(r'href="([^"]+)" data-cell="hot_not_in_opportunity"', everyone).group(1))
    assert sorted(_rows(client.get(hot_all).get_data(as_text=True))) == ["Acme", "Hooli"]


def test_a_manager_sees_everyone_by_default(as_role, quick_user):
    seed(quick_user("ae"), quick_user("ae"))
    html = as_role("manager").get("/engagement").get_data(as_text=True)
    assert 'class="active" aria-current="true" data-scope="all"' in html
    assert "5 accounts by stage and engagement" in html
    assert 'href="/engagement/snippet"' in html


# -- the account page ---------------------------------------------------------------

def test_account_page_breakdown_timeline_coverage_and_playbooks(as_role, quick_user):
    client = as_role("ae")
    w = seed(client.user, quick_user("ae"))
    html = client.get(f"/accounts/{w['Acme'].id}").get_data(as_text=True)
    assert f"Score {w['Acme'].score:.1f}" in html

    section = html[html.index('class="card score-breakdown"'):html.index('class="card account-timeline"')]
    bars = dict(re.findall(r"<title>([a-z ]+): ([\d.,]+)</title>", section))
    assert bars["meeting"] == "40.2" and bars["form fill"] == "15" and bars["web visit"] == "8"
    assert bars["email click"] == "3"
    contacts = re.findall(r"<tr><td>([^<]+?) <span class=\"muted small\">([a-z ]+)</span></td>\s*"
                          r"<td class=\"num\">(\d+)</td><td class=\"num points\">([\d.]+)</td>", section)
    # Jane: a meeting yesterday, a form fill, a pricing visit and a click; Bob: a meeting 20 days ago
    assert [c[:3] for c in contacts] == [("Jane Doe", "champion", "4"), ("Bob Roe", "decision maker", "1")]
    assert float(contacts[0][3]) == pytest.approx(25 * 2 ** (-1 / 30) + 15 + 8 + 3, abs=0.06)
    assert float(contacts[1][3]) == pytest.approx(25 * 2 ** (-20 / 30), abs=0.06)
    assert "Intro sequence</td>" in section and "(not from a playbook)" in section
    event_rows = re.findall(r'<tr data-event-id="\d+">(.*?)</tr>', section, re.S)
    assert len(event_rows) == 5 and "meeting" in event_rows[-1] and f">{contacts[1][3]}<" in event_rows[-1]

    timeline = html[html.index('class="card account-timeline"'):html.index('class="card contacts"')]
    kinds = re.findall(r'data-kind="(\w+)"', timeline)
    assert kinds == ["event", "event", "event", "event", "touch", "stage", "event"]  # newest first
    assert "“Hello from us”" in timeline and "to Jane Doe" in timeline and "playbook Intro sequence" in timeline
    assert "target → <strong>aware</strong>" in timeline

    coverage = html[html.index('class="card coverage"'):html.index('class="card account-playbooks"')]
    assert "1 of 6 roles reached, 2 engaged in the last 90 days" in coverage
    champion = re.search(r'<tr data-role="champion">(.*?)</tr>', coverage, re.S).group(1)
    assert re.findall(r'<td class="num">(?:<span class="pill ok">)?(\d+)', champion) == ["1", "1", "1"]
    user = re.search(r'<tr data-role="user">(.*?)</tr>', coverage, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)', user) == ["1", "0", "0"]

    playbooks = html[html.index('class="card account-playbooks"'):]
    assert 'data-playbook="intro"' in playbooks and "Intro sequence" in playbooks and "step 2" in playbooks


def test_an_account_with_nothing_yet_says_so(as_role):
    client = as_role("ae")
    account = Account(name="Quiet", domain="quiet.example", stage="target", owner_id=client.user.id)
    db.session.add(account)
    db.session.commit()
    html = client.get(f"/accounts/{account.id}").get_data(as_text=True)
    assert "No engagement recorded yet" in html and "Nothing yet: no touch, event or stage change." in html
    assert "In no playbook." in html and "0 of 6 roles reached" in html


# -- the snippet page and the navigation ---------------------------------------------

def test_snippet_page_gives_the_tag_for_managers_only(as_role):
    manager = as_role("manager")
    html = manager.get("/engagement/snippet").get_data(as_text=True)
    assert 'id="no-sites"' in html and 'id="snippet-tag"' not in html  # no site set up: no tag to paste
    key = settings_service.update({"sites": [{"name": "www", "origins": ["https://www.example.com"]}]})[
        "sites"][0]["key"]
    html = manager.get("/engagement/snippet").get_data(as_text=True)
    tag = html_lib.unescape(re.search(r'<code id="snippet-tag">(.*?)</code>', html).group(1))
    # ABM_BASE_URL of the tests, and the site's key
    assert tag == f'<script src="http://abm.test/t/snippet.js" data-site="{key}" async></script>'
    assert "Visits" in html and "Known visitors" in html and "Form fills" in html
    assert "calls no third-party service" in " ".join(html.split())
    served = manager.get("/t/snippet.js")  # what the tag loads: no address of anyone else in it
    assert served.status_code == 200 and not re.search(r"https?://", served.get_data(as_text=True))
    assert as_role("ae").get("/engagement/snippet").status_code == 403


def test_the_snippet_page_says_what_is_stored_for_how_long_and_who_is_known(as_role):
    """No "stay anonymous": the page says a visitor from a tracked link or a form is recorded
    as the contact (visits stitched), the IP address is stored and for how long, with the
    workspace's values."""
    manager = as_role("manager")
    text = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", manager.get("/engagement/snippet")
                                             .get_data(as_text=True))).split())
    assert "stay anonymous" not in text
    assert "IP address" in text and "keeps its full address for 7 days" in text
    assert "keeps the address it was asked about for 7 days" in text
    assert "recorded as that contact" in text and "in the 30 days before are then attributed to them" in text
    assert "never a person's" in text and "/24" in text and "IPinfo" in text
    ident = {**settings_service.current()["identification"], "raw_ip_days": 3, "stitch_days": 14,
             "lookup_ip_days": 10, "enabled": False}
    settings_service.update({"identification": ident})
    db.session.commit()
    text = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", manager.get("/engagement/snippet")
                                             .get_data(as_text=True))).split())
    assert "for 3 days" in text and "for 10 days" in text and "in the 14 days before" in text
    assert "Identification is off in this workspace" in text and "IPinfo" not in text
    admin_text = " ".join(as_role("admin").get("/admin/in-market").get_data(as_text=True).split())
    assert "keeps the address it was asked about for 10 days" in admin_text


def test_navigation_names_my_accounts_and_engagement(as_role):
    client = as_role("ae")
    html = client.get("/engagement/mine").get_data(as_text=True)
    assert re.search(r'<a href="/engagement/mine" class="active" aria-current="page">My accounts</a>', html)
    html = client.get("/engagement").get_data(as_text=True)
    assert re.search(r'<a href="/engagement" class="active" aria-current="page">Engagement</a>', html)
    html = as_role("admin").get("/engagement/snippet").get_data(as_text=True)
    assert re.search(r'class="active" aria-current="page">Engagement</a>', html)


# -- a real browser -------------------------------------------------------------------

def _shots_dir(live) -> Path:
    """Where screenshots go: ``ABM_SCREENSHOTS`` when set (to keep and look at them), else
    the test's tmp dir."""
    folder = Path(os.environ.get("ABM_SCREENSHOTS") or live.tmp)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wider_than_the_screen(page) -> list[str]:
    """The elements that stick out past the right edge of the viewport, outside any box
    that scrolls or clips them (a phone zooms out to show them, so ``innerWidth`` grows
    with them: compare with the viewport we set)."""
    return page.evaluate("""(width) => {
        const clipped = el => { for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
            if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; };
        return [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > width + 1 && !clipped(el))
            .map(el => el.tagName.toLowerCase() + (typeof el.className === 'string' && el.className
                                                   ? '.' + el.className.trim().split(/ +/).join('.') : ''))
            .slice(0, 8); }""", page.viewport_size["width"])


@pytest.mark.browser
def test_in_a_browser_an_ae_reads_and_clicks_through(live_server, new_page, make_live_user, monkeypatch):
    monkeypatch.setattr(engine_hooks, "engagement_changed", lambda *args, **kwargs: None)
    ae = make_live_user("ae", email="sam@example.com", name="Sam Seller")
    w = seed(ae, make_live_user("ae"))
    shots = _shots_dir(live_server)

    page = new_page()
    live_server.login(page, ae)
    nav = page.locator("nav.nav")
    nav.get_by_role("link", name="My accounts", exact=True).click()
    page.wait_for_url("**/engagement/mine")
    assert page.locator("table.my-accounts tbody tr td.primary a").all_inner_texts() == [
        "Acme", "Globex", "Umbrella", "Initech"]
    assert page.locator("svg.sparkline").count() == 4
    page.screenshot(path=shots / "my-accounts-desktop.png", full_page=True)
    page.get_by_role("link", name="Change this week").click()
    page.wait_for_url("**sort=change")
    assert page.locator("table.my-accounts tbody tr td.primary a").first.inner_text() == "Acme"
    assert page.locator("table.my-accounts tbody tr td.primary a").last.inner_text() == "Globex"

    nav.get_by_role("link", name="Engagement", exact=True).click()
    page.wait_for_url("**/engagement")
    assert "1 hot account not yet in opportunity" in page.locator(".callouts").inner_text()
    page.screenshot(path=shots / "matrix-desktop.png", full_page=True)
    page.locator('tr[data-stage="opportunity"] td[data-level="cold"] a').click()
    page.wait_for_url("**/accounts?stage=opportunity&engagement=cold&owner=me")
    assert page.locator("table.accounts td.primary a").all_inner_texts() == ["Initech"]

    page.goto(live_server.url + "/engagement")
    page.locator('a[data-cell="hot_not_in_opportunity"]').click()
    page.wait_for_url("**/accounts?stage=**")
    page.get_by_role("link", name="Acme", exact=True).click()
    page.wait_for_url(f"**/accounts/{w['Acme'].id}")
    assert page.get_by_role("heading", name=re.compile(r"^Score \d+\.\d hot · active$")).is_visible()
    assert page.locator("svg.bars .bar-row").count() == 4
    assert page.locator(".account-timeline li").count() == 7
    assert page.locator(".coverage tr[data-role=champion]").is_visible()
    page.screenshot(path=shots / "account-desktop.png", full_page=True)

    phone = new_page(PHONE["width"], PHONE["height"], mobile=True)
    live_server.login(phone, ae)
    for path, name in (("/engagement/mine", "my-accounts"), ("/engagement", "matrix"),
                       (f"/accounts/{w['Acme'].id}", "account")):
        phone.goto(live_server.url + path)
        assert _wider_than_the_screen(phone) == [], f"{path} is wider than a phone"
        phone.screenshot(path=shots / f"{name}-phone.png", full_page=True)
    assert all(url.startswith(live_server.url) for url in live_server.requests)


@pytest.mark.browser
def test_in_a_browser_the_snippet_page_copies_the_tag(live_server, new_page, make_live_user):
    admin = make_live_user("admin")
    page = new_page()

    settings_service.update({"sites": [{"name": "www", "origins": ["https://www.example.com"]}]})
    live_server.login(page, admin)
    page.goto(live_server.url + "/engagement/snippet")
    tag = page.locator("#snippet-tag").inner_text()
    assert re.fullmatch(r'<script src="https?://[^"]+/t/snippet\.js" data-site="[\w-]{20,64}" async></script>', tag)
    page.screenshot(path=_shots_dir(live_server) / "snippet-desktop.png", full_page=True)


def test_my_accounts_filters_pages_and_the_saved_default(as_role, quick_user, monkeypatch):
    client = as_role("ae")
    w = seed(client.user, quick_user("ae", email="other@example.com"))
    html = client.get("/engagement/mine?q=glob").get_data(as_text=True)
    assert _rows(html) == ["Globex"] and "1 account matching the filters" in html
    assert _rows(client.get("/engagement/mine?level=hot").get_data(as_text=True)) == ["Acme"]
    assert _rows(client.get("/engagement/mine?stage=target&tier=").get_data(as_text=True)) == ["Umbrella"]
    assert _rows(client.get("/engagement/mine?tier=2").get_data(as_text=True)) == ["Globex"]
    html = client.get("/engagement/mine?changed=week&sort=change").get_data(as_text=True)
    assert _rows(html) == ["Acme", "Umbrella"]  # Globex and Initech had nothing this week
    assert "No account matches these filters." in client.get("/engagement/mine?q=zzz").get_data(as_text=True)

    resp = client.post("/engagement/mine/default", data={"level": "hot", "sort": "change", "bogus": "x"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/engagement/mine?level=hot&sort=change"
    html = client.get("/engagement/mine").get_data(as_text=True)  # no filter asked: the saved default
    assert _rows(html) == ["Acme"] and "(your saved default)" in html
    assert _rows(client.get("/engagement/mine?sort=score").get_data(as_text=True)) == [
        "Acme", "Globex", "Umbrella", "Initech"]  # asking for anything sets the default aside

    monkeypatch.setattr(sales_view, "PAGE_SIZE", 2)
    html = client.get("/engagement/mine?sort=score").get_data(as_text=True)
    assert "4 accounts, page 1 of 2" in html and _rows(html) == ["Acme", "Globex"]
    assert 'href="/engagement/mine?sort=score&amp;page=2" rel="next"' in html
    assert _rows(client.get("/engagement/mine?sort=score&page=2").get_data(as_text=True)) == ["Umbrella", "Initech"]
    assert _rows(client.get("/engagement/mine?sort=score&page=99").get_data(as_text=True)) == ["Umbrella", "Initech"]
    assert w["Acme"].id


def test_the_level_pill_and_the_breakdown_say_what_drove_the_score(as_role, quick_user):
    client = as_role("ae")
    umbrella = Account(name="Ads Only", domain="adsonly.example", stage="target", owner_id=client.user.id)
    db.session.add(umbrella)
    db.session.commit()
    events.store([_line("ad_impression", 1, account_domain="adsonly.example", quantity=5000),
                  _line("email_click", 0, account_domain="adsonly.example")])
    html = client.get(f"/accounts/{umbrella.id}").get_data(as_text=True)
    assert re.search(r"<strong>3\.0</strong> from active engagement \(clicks, visits, forms, replies, meetings\) ·\s+"
                     r"<strong>1[45]\.\d</strong> from passive exposure \(ad impressions, email opens\), "
                     r"at most 15 points per 30 days\.", html)
    assert 'data-driven-by="passive">cold' not in html  # cold says nothing of what drove it

    heat = dict(settings_service.current()["heat"], passive_cap={"points": None, "days": 30})
    settings_service.update({"heat": heat})
    events.store([_line("ad_impression", 0.5, account_domain="adsonly.example", quantity=5000)])
    html = client.get("/engagement/mine").get_data(as_text=True)
    assert re.search(r'<span class="pill eng-hot" title="9\d% of the score from passive exposure[^"]*" '
                     r'data-driven-by="passive">hot<span class="driver"> · passive</span></span>', html)
