"""The KPI dashboard and spend pages, with the hand-computed June dataset."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from abm.db import db
from abm.models import Cost, Opportunity
from abm.services import kpi_glossary, kpi_trends
from tests.kpis.test_kpis import NOW, build_june

JUNE = "from=2026-06-01&to=2026-06-30"


def test_the_dashboard_shows_the_figures_for_every_role(june, as_role):
    for role in ("ae", "manager", "admin"):
        page = as_role(role).get(f"/kpis?{JUNE}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "From target to won" in html and "Lift over the held-out control group" in html
        assert "cost per lead $81.00" in html           # 243 of spend over 3 leads
        assert "$15,000.00" in html                      # pipeline influenced, each opportunity once
        # each figure's name says what it counts: the table's engaged and the funnel's are told apart
        assert "Accounts engaged after a touch" in html and "Reached accounts with any engagement in the period" in html
        assert "s ago" in html                           # the answer's age
        assert "not enough accounts yet: about" in html  # pb-a's lift sentence
        assert ("Record spend" in html) == (role != "ae")


def test_group_tabs_and_the_accounts_behind_a_figure(june, as_role):
    c = as_role("ae")
    html = c.get(f"/kpis?group_by=channel&{JUNE}").get_data(as_text=True)
    assert "<th scope=\"row\">ads</th>" in html and "$51.00" in html
    behind = c.get(f"/kpis/accounts?metric=reached&group_by=playbook&group=pb-a&{JUNE}")
    text = behind.get_data(as_text=True)
    assert behind.status_code == 200 and "Acme" in text and "Globex" in text and "Initech" not in text
    bad = c.get("/kpis?from=2026-07-01&to=2026-06-01")
    assert bad.status_code == 200 and "from must be before to" in bad.get_data(as_text=True)


def test_spend_by_form_and_by_csv(june, as_role):
    assert as_role("ae").get("/kpis/spend").status_code == 403
    m = as_role("manager")
    ok = m.post("/kpis/spend", data={"playbook": "pb-c", "amount": "20", "currency": "usd", "date": "2026-06-03"})
    assert ok.status_code == 302
    bad = m.post("/kpis/spend", data={"amount": "x", "date": "2026-06-03"})
    assert bad.status_code == 422 and "must be a non-negative number" in bad.get_data(as_text=True)
    csv_body = ("playbook,channel,amount,date\n"
                "pb-a,,10,2026-06-04\n"
                ",ads,oops,2026-06-05\n"
                ",,5,2026-06-06\n"
                "pb-b,,7.5,2026-06-07\n")
    resp = m.post("/kpis/spend", data={"file": (io.BytesIO(csv_body.encode()), "spend.csv")},
                  content_type="multipart/form-data")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "row 3, amount: must be a non-negative number" in text
    assert "row 4, playbook: name at least one of playbook, channel or product" in text
    sources = sorted((c.playbook_key, str(c.amount), c.source) for c in db.session.query(Cost).filter(
        Cost.source != "api"))
    assert sources == [("pb-a", "10.00", "csv"), ("pb-b", "7.50", "csv")]
    unknown = m.post("/kpis/spend", data={"file": (io.BytesIO(b"amount,colour\n1,red\n"), "s.csv")},
                     content_type="multipart/form-data")
    assert "unknown column &#39;colour&#39;" in unknown.get_data(as_text=True)


@pytest.mark.browser
def test_the_dashboard_in_a_real_browser(live_server, browser_page, make_live_user, new_page):
    build_june()
    user = make_live_user("manager")
    live_server.login(browser_page, user)
    browser_page.goto(f"{live_server.url}/kpis?{JUNE}")
    assert browser_page.get_by_role("heading", name="Shared KPIs").is_visible()
    assert browser_page.locator("svg.lift").count() == 9  # 3 playbooks x engaged, opportunity, won
    browser_page.screenshot(path=str(live_server.tmp / "kpis.png"), full_page=True)
    browser_page.locator("table.kpi-table tr", has_text="pb-a").get_by_role("link", name="2").first.click()
    browser_page.wait_for_load_state()
    assert "Acme" in browser_page.content() and "Globex" in browser_page.content()
    assert all(u.startswith(live_server.url) for u in live_server.requests), "nothing is loaded from elsewhere"
    phone = new_page(mobile=True)
    live_server.login(phone, user)
    phone.goto(f"{live_server.url}/kpis?{JUNE}")
    phone.screenshot(path=str(live_server.tmp / "kpis-phone.png"), full_page=True)


def test_each_funnel_step_links_to_its_accounts(june, as_role):
    c = as_role("manager")
    html = c.get(f"/kpis?{JUNE}").get_data(as_text=True)
    assert "metric=funnel" in html and "group=won" in html
    won = c.get(f"/kpis/accounts?metric=funnel&group=won&group_by=playbook&{JUNE}").get_data(as_text=True)
    assert "Acme" in won and "Globex" not in won
    target = c.get(f"/kpis/accounts?metric=funnel&group=target&group_by=playbook&playbook=pb-c&{JUNE}")
    assert "Initech" in target.get_data(as_text=True) and "Acme" not in target.get_data(as_text=True)


def test_the_models_side_by_side_and_the_glossary(june, as_role):
    c = as_role("ae")
    page = c.get(f"/kpis/models?group_by=playbook&metric=leads&{JUNE}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Time decay" in html and "Markov" in html
    # every model's column adds up to the 3 leads
    assert html.count("<td>3</td>") >= 7
    glossary = c.get("/kpis/glossary").get_data(as_text=True)
    assert "Accounts engaged after a touch" in glossary and "Anderl" in glossary
    dash = c.get(f"/kpis?model=u_shaped&{JUNE}").get_data(as_text=True)
    assert "attribution: u shaped" in dash
    assert "unknown attribution model" in c.get(f"/kpis?model=nope&{JUNE}").get_data(as_text=True)


def test_the_docs_glossary_is_the_pages_glossary():
    text = kpi_glossary.DOCS.read_text()
    assert kpi_glossary.markdown() in text, "run python -m abm.services.kpi_glossary"
    assert kpi_glossary.money(1234.5) == "$1,234.50" and kpi_glossary.money(-3, "EUR") == "-€3.00"
    assert kpi_glossary.money(7, "SEK") == "SEK 7.00" and kpi_glossary.money(None) == "–"


def test_every_kpi_week_by_week_with_labelled_axes(june, as_role, monkeypatch):
    data = kpi_trends.weekly(6, now=NOW)  # weeks of 05-25 to 06-29 (Monday 29 June to Tuesday 30 June so far)
    by_week = {r["week"]: r for r in data["rows"]}
    assert list(by_week) == ["2026-05-25", "2026-06-01", "2026-06-08", "2026-06-15", "2026-06-22", "2026-06-29"]
    assert (by_week["2026-06-01"]["touches"], by_week["2026-06-01"]["leads"]) == (3, 1)  # T1-T3; c3 on 06-01
    assert by_week["2026-06-08"]["leads"] == 2 and by_week["2026-06-15"]["pipeline_influenced"] == 10000.0  # O1 (06-20)
    assert by_week["2026-06-22"]["pipeline_influenced"] == 5000.0  # O2 (06-25)
    monkeypatch.setattr("abm.services.kpi_trends.utcnow", lambda: NOW)
    page = as_role("ae").get("/kpis/trends?weeks=6")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and html.count("<svg") >= 10
    assert "$10,000.00" in html and ">$0.00<" in html  # the pipeline chart's top and bottom of its y axis
    assert ">05-25<" in html and ">06-29<" in html  # the x axis: first and last weeks
    csv_text = as_role("ae").get("/kpis/trends?weeks=6&format=csv").get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("week,touches,accounts_reached")


def test_every_kpi_week_by_week_for_each_group(june, as_role, api, monkeypatch):
    data = kpi_trends.weekly(6, now=NOW, group_by="channel")
    series = {g["group"]: {r["week"]: r for r in g["rows"]} for g in data["groups"]}
    assert sorted(series) == ["(unassigned)", "ads", "email"] and all(len(s) == 6 for s in series.values())
    assert series["(unassigned)"]["2026-06-08"]["cost"] == 70.0  # pb-a's spend names no channel: 7 days of 300/30
    # email: T1 and T3 (06-02, 06-03); ads: T2 (06-05), credited c1 and c4 (06-10, 06-12) by last touch
    assert (series["email"]["2026-06-01"]["touches"], series["ads"]["2026-06-01"]["touches"]) == (2, 1)
    assert series["ads"]["2026-06-08"]["leads"] == 2 and series["email"]["2026-06-08"]["leads"] == 0
    assert series["ads"]["2026-06-15"]["pipeline_influenced"] == 10000.0  # O1 (06-20), Acme touched by both
    assert series["email"]["2026-06-22"]["pipeline_influenced"] == 5000.0  # O2 (06-25), T4 at Initech
    assert series["email"]["2026-05-25"]["lead_to_opportunity_rate"] is None  # no lead: no rate, not 0
    monkeypatch.setattr("abm.services.kpi_trends.utcnow", lambda: NOW)
    page = as_role("ae").get("/kpis/trends?weeks=6&group_by=channel")
    html = page.get_data(as_text=True)
    charts = html.count('<svg class="chart columns trend"')
    assert page.status_code == 200 and charts == 3 * len(kpi_trends.GROUP_FIGURES)
    assert 'aria-label="Pipeline influenced, ads per week"' in html and "$10,000.00" in html
    assert 'aria-label="Leads that became opportunities, email per week"' in html
    csv_text = as_role("ae").get("/kpis/trends?weeks=6&group_by=channel&format=csv").get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("channel,week,touches") and len(csv_text.splitlines()) == 1 + 3 * 6
    segment = as_role("ae").get("/kpis/trends?weeks=6&group_by=segment").get_data(as_text=True)
    assert "(no segment)" in segment
    client = api("manager")
    answer = client.get("/api/v1/kpis/trends?weeks=6&group_by=tier")
    assert answer.status_code == 200 and answer.json["group_by"] == "tier" and answer.json["groups"]
    assert client.get("/api/v1/kpis/trends?group_by=colour").status_code == 422


def test_the_default_view_shows_a_new_opportunity_within_two_minutes(june, as_role, monkeypatch):
    """The dashboard as it opens (no period chosen: the last 90 days): an opportunity
    recorded after a reader looked shows to the next reader a minute later, at most."""
    clock = {"now": NOW}
    for where in ("abm.services.rollups.utcnow", "abm.services.kpis.utcnow", "abm.web.kpis.utcnow"):
        monkeypatch.setattr(where, lambda: clock["now"])
    reader = as_role("ae")
    assert "$15,000.00" in reader.get("/kpis").get_data(as_text=True)  # O1 and O2 (O3 was never touched)
    db.session.add(Opportunity(account_id=june["Globex"], name="Globex expansion", amount=1234.56,
                               created_at=NOW + timedelta(seconds=5)))  # Globex: T3 (pb-a) on 3 June
    db.session.commit()
    clock["now"] = NOW + timedelta(seconds=20)
    html = reader.get("/kpis").get_data(as_text=True)
    assert "$15,000.00" in html and "20 s ago" in html  # the stored answer, its age shown
    clock["now"] = NOW + timedelta(seconds=81)  # over a minute after the answer: computed again
    html = reader.get("/kpis").get_data(as_text=True)
    assert "$16,234.56" in html and "0 s ago" in html
