"""The KPI dashboard and spend pages, with the hand-computed June dataset."""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from abm.db import db
from abm.models import Account, Cost, Opportunity
from abm.services import kpi_glossary, kpi_trace, kpi_trends, kpis
from abm.services import settings as settings_service
from abm.web import kpis as kpi_pages
from tests.kpis.test_kpis import NOW, build_june

JUNE = "from=2026-06-01&to=2026-06-30"


def test_the_dashboard_shows_the_figures_for_every_role(june, as_role):
    for role in ("ae", "manager", "admin"):
        page = as_role(role).get(f"/kpis?{JUNE}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "From target to won" in html and "Lift over the held-out control group" in html
        assert re.search(r"cost per lead <a [^>]+>\$81\.00</a>", html)  # 243 of spend over 3 leads
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


def test_a_long_account_list_shows_the_highest_scores_and_exports_them_all(june, as_role, monkeypatch):
    monkeypatch.setattr(kpi_pages, "ACCOUNTS_ON_PAGE", 1)
    db.session.query(Account).filter_by(name="Globex").update({"score": 80.0})
    db.session.commit()
    c = as_role("ae")
    url = f"/kpis/accounts?metric=reached&group_by=playbook&group=pb-a&{JUNE}"
    text = c.get(url).get_data(as_text=True)
    assert "2 accounts" in text and "the 1 highest scores shown" in text
    assert "Globex" in text and "Acme" not in text
    csv_text = c.get(url + "&format=csv").get_data(as_text=True)
    assert "Globex" in csv_text and "Acme" in csv_text


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


def _table(html: str) -> list[list[str]]:
    """The KPI table's rows as the reader sees them: the group, then each cell's text."""
    body = html.split('<table class="table kpi-table">', 1)[1].split("</tbody>", 1)[0].split("<tbody>", 1)[1]
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)
        rows.append([re.sub(r"<[^>]+>", "", c).strip() for c in cells])
    return rows


def _export_href(html: str) -> str:
    return html_lib.unescape(re.search(r'<a class="button" href="([^"]+)">Export CSV</a>', html).group(1))


@pytest.mark.parametrize("filters", [
    "", "days=30", "days=365", JUNE, "to=2026-06-20", "from=2026-06-05", f"{JUNE}&model=first_touch",
    f"{JUNE}&model=u_shaped&group_by=channel", f"{JUNE}&playbook=pb-a", f"{JUNE}&product=vault",
    f"{JUNE}&product=gateway&playbook=pb-b&group_by=product", "days=30&group_by=channel&model=even",
])
def test_export_csv_is_the_figures_on_screen_for_every_filter(june, as_role, api, monkeypatch, filters):
    """The dashboard's Export CSV carries every filter of the page: its rows are the table's
    rows, and the API's JSON for the same filters."""
    for where in ("abm.services.rollups.utcnow", "abm.services.kpis.utcnow", "abm.web.kpis.utcnow"):
        monkeypatch.setattr(where, lambda: NOW)
    reader = as_role("ae")
    html = reader.get(f"/kpis?{filters}").get_data(as_text=True)
    href = _export_href(html)
    assert href.startswith("/api/v1/kpis?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}
    wanted = {k: v[0] for k, v in parse_qs(filters).items()}
    for key in ("model", "playbook", "product", "group_by", "from", "to"):
        if key in wanted:
            assert params[key] == wanted[key], (key, href)
    exported = reader.get(href)
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    # the API's JSON for the same query holds the same figures
    answer = api("ae", user=reader.user).get(href.replace("format=csv", "format=json"))
    assert answer.status_code == 200
    groups = answer.json["groups"]
    assert [r["group"] for r in rows] == [g["group"] for g in groups]
    for row, group in zip(rows, groups, strict=True):
        for key, value in group.items():
            assert row[key] == ("" if value is None else str(value)), (key, row[key], value)
    # and the page's table shows those figures, row by row
    shown = _table(html)
    if not rows:
        assert len(shown) == 1 and "No touches" in shown[0][0]
        return
    money = {"cost": 5, "cost_per_lead": 6, "pipeline_influenced": 10, "revenue_influenced": 11}
    assert [s[0] for s in shown] == [r["group"] for r in rows]
    for cells, row in zip(shown, rows, strict=True):
        assert cells[1] == "{:,}".format(int(row["touches"]))
        assert cells[2] == row["accounts_reached"] and cells[3] == row["engaged_accounts"]
        assert cells[4] == "{:g}".format(float(row["leads"])) and cells[7] == "{:g}".format(float(row["opportunities"]))
        for key, i in money.items():
            assert cells[i] == kpi_glossary.money(float(row[key]) if row[key] else None), (key, cells[i], row[key])


def test_the_models_pages_export_is_its_period_and_filters(june, as_role, monkeypatch):

    for where in ("abm.services.rollups.utcnow", "abm.services.kpis.utcnow", "abm.web.kpis.utcnow"):
        monkeypatch.setattr(where, lambda: NOW)
    reader = as_role("ae")
    html = reader.get("/kpis/models?days=30&metric=leads&group_by=channel&product=gateway").get_data(as_text=True)
    href = _export_href(html)
    assert "from=2026-06-01" in href and "to=2026-06-30" in href and "product=gateway" in href
    rows = list(csv.DictReader(io.StringIO(reader.get(href).get_data(as_text=True))))
    assert {r["group"] for r in rows} >= {"ads"} and "last_touch" in rows[0]


def _svg(html: str, label: str) -> str:
    start = html.index(f'aria-label="{label}')
    return html[html.rindex("<svg", 0, start):html.index("</svg>", start)]


@pytest.mark.parametrize("currency, top, half, zero", [("USD", "$10,000.00", "$5,000.00", "$0.00"),
                                                         ("EUR", "€10,000.00", "€5,000.00", "€0.00")])
def test_the_dashboards_money_charts_show_values_with_the_currency(june, as_role, currency, top, half, zero):
    """The pipeline chart has a y axis with values, and the cost-per-lead bars their amounts,
    both with the workspace currency's symbol."""
    settings_service.update({"currency": currency})
    db.session.commit()
    html = as_role("ae").get(f"/kpis?{JUNE}").get_data(as_text=True)
    pipeline = _svg(html, "Pipeline influenced per period slice")
    axis = re.findall(r'<text class="axis-label y"[^>]*>([^<]*)</text>', pipeline)
    assert axis == [zero, half, top]  # O1 (10,000, 20 June) is the highest slice, O2 (5,000) another
    assert f"highest {top}" in pipeline and f": {top}</title>" in pipeline
    cpl = _svg(html, "Cost per lead by playbook")
    shown = dict(re.findall(r"<title>([^:<]+): ([^<]*)</title>", cpl))
    data = kpis.compute("playbook", kpis.Period.parse("2026-06-01", "2026-06-30"))
    expected = {g["group"]: kpi_glossary.money(g["cost_per_lead"], currency) for g in data["groups"]
                if g["cost_per_lead"] is not None}
    assert expected and shown == expected
    values = re.findall(r'<text class="bar-value"[^>]*>([^<]*)</text>', cpl)
    assert values == list(expected.values()) and all(v.startswith(zero[0]) for v in values)


def _links(html: str) -> dict[str, str]:
    """The page's links by their text (the last one of a text wins)."""
    return {re.sub(r"<[^>]+>", "", text).strip(): html_lib.unescape(href)
            for href, text in re.findall(r'<a href="([^"]+)">(.*?)</a>', html, re.S)}


def _count(client, href: str) -> int:
    return int(re.search(r'<p class="muted">(\d+) (?:accounts|opportunities)', client.get(href).get_data(
        as_text=True)).group(1))


def test_every_figure_of_the_dashboard_opens_the_rows_behind_it(june, as_role):
    """The totals (leads, cost per lead, opportunities, won), each group's cost per lead and
    the coverage figures (target, reached, engaged, each buying role) link to their list,
    and the list holds what the figure counts."""
    reader = as_role("ae")
    html = reader.get(f"/kpis?{JUNE}").get_data(as_text=True)
    data = kpis.compute("playbook", kpis.Period.parse("2026-06-01", "2026-06-30"))
    totals, coverage = data["totals"], kpis.coverage(kpis.Period.parse("2026-06-01", "2026-06-30"))
    stats = html[html.index('<div class="grid kpi-stats">'):html.index('<div class="grid cols-2">')]
    assert stats.count('<p class="stat-value"><a href=') == 4  # leads, cost, pipeline, revenue
    links = _links(stats)

    leads = links[str(totals["leads"])]
    assert "metric=leads" in leads and "group=" not in leads
    listed = reader.get(leads).get_data(as_text=True)
    # the accounts of the three leads: c1 and c4 at Acme, c3 at Initech
    assert "Acme" in listed and "Initech" in listed and "Globex" not in listed and "Leads: all groups" in listed
    assert _count(reader, links[f"{totals['opportunities']} opportunities"]) == totals["opportunities"]
    assert _count(reader, links[f"{totals['won']} won"]) == totals["won"]
    costs = links[kpi_glossary.money(totals["cost_per_lead"])]  # the spend behind cost per lead's cost
    rows = list(csv.DictReader(io.StringIO(reader.get(costs + "&format=csv").get_data(as_text=True))))
    assert abs(sum(float(r["amount"]) for r in rows) - totals["cost"]) < 0.01

    table = html[html.index('<table class="table kpi-table">'):]
    for g in data["groups"]:
        if g["cost_per_lead"] is not None:
            assert re.search(rf'href="/kpis/costs\?group={re.escape(g["group"])}[^"]*">{re.escape(kpi_glossary.money(g["cost_per_lead"]))}</a>',
                             table.replace("&amp;", "&"))

    card = html[html.index("<h2>Coverage</h2>"):]
    card = card[:card.index("</section>")]
    hrefs = [html_lib.unescape(h) for h in re.findall(r'<a href="([^"]+)">', card)]
    for part, value in [("target", coverage["target_accounts"]), ("reached", coverage["reached"]),
                        ("engaged", coverage["engaged"])] + [(r["role"], r["accounts"]) for r in coverage["roles"]]:
        href = next(h for h in hrefs if f"group={part}&" in h + "&")
        assert "metric=coverage" in href and _count(reader, href) == value, part
    api_answer = reader.get(f"/api/v1/kpis/accounts?metric=coverage&group=reached&group_by=playbook&{JUNE}")
    assert api_answer.status_code == 200 and api_answer.json["count"] == coverage["reached"]
    period = kpis.Period.parse("2026-06-01", "2026-06-30")
    for metric in ("reached", "engaged", "leads", "opportunities", "won"):  # without a group: every group's
        everyone = reader.get(f"/api/v1/kpis/accounts?metric={metric}&group_by=playbook&{JUNE}")
        each = set()
        for g in data["groups"]:
            each |= set(kpi_trace.accounts_behind(metric, "playbook", g["group"], period))
        assert everyone.status_code == 200 and set(everyone.json["account_ids"]) == each, metric
