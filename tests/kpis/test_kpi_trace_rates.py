"""The rates, the medians and the pipeline chart open the rows behind them, the lists
lead back to the dashboard as it was, and the pipeline chart follows the filters.

On the June dataset of tests/kpis/test_kpis.py, with two rows more: c5 at Globex fills a
form on 20 June (the last touch before it is T3, pb-a's email; Globex never has an
opportunity) and O4, 3,000 at Acme, created on 22 June and lost on 27 June (the last
touch before it is T2, pb-b's ads). By hand, last touch:

- pb-a: 1 lead (c5), which did not become an opportunity: 0%.
- pb-b: leads c1 and c4, both followed by O1: 100%; closed O1 (won) and O4 (lost): 50%.
- pb-c: lead c3, followed by O2: 100%; no closed opportunity.
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from abm import metrics
from abm.db import db
from abm.models import Contact, Event, Opportunity
from abm.services import kpi_trace, kpis
from tests.kpis.test_kpis import PERIOD, at

JUNE = "from=2026-06-01&to=2026-06-30"


@pytest.fixture
def june_plus(june):
    c5 = Contact(account_id=june["Globex"], email="c5@globex.com", buying_role="user")
    db.session.add(c5)
    db.session.flush()
    db.session.add_all([
        Event(type="form_fill", contact_id=c5.id, account_id=june["Globex"], occurred_at=at(6, 20, 9)),
        Opportunity(account_id=june["Acme"], name="O4", amount=Decimal(3000), created_at=at(6, 22),
                    closed_at=at(6, 27), won=False, product="gateway"),
    ])
    db.session.commit()
    return june


def _rate(rows: list[dict], marked: str) -> float | None:
    credit = sum(r["credit"] for r in rows)
    return round(sum(r["credit"] for r in rows if r[marked]) / credit, 4) if credit else None


def test_the_rates_by_hand_and_the_rows_behind_them(june_plus):
    groups = {g["group"]: g for g in kpis.compute("playbook", PERIOD)["groups"]}
    assert [(g, groups[g]["lead_to_opportunity_rate"], groups[g]["opportunity_to_won_rate"])
            for g in ("pb-a", "pb-b", "pb-c")] == [("pb-a", 0.0, None), ("pb-b", 1.0, 0.5), ("pb-c", 1.0, None)]
    assert [(r["contact"], r["credit"], r["became_opportunity"])
            for r in kpi_trace.leads_behind("playbook", "pb-a", PERIOD)] == [("c5@globex.com", 1.0, False)]
    assert [(r["name"], r["credit"], r["won"]) for r in kpi_trace.closed_behind("playbook", "pb-b", PERIOD)] == [
        ("O1", 1.0, True), ("O4", 1.0, False)]


@pytest.mark.parametrize("model", ["last_touch", "linear", "u_shaped"])
@pytest.mark.parametrize("group_by", ["playbook", "channel", "segment"])
def test_each_rate_and_median_equals_the_rows_it_opens(june_plus, model, group_by):
    """A rate is the credit of the rows marked over the credit of all the rows listed; the
    median days to opportunity, the median of the listed opportunities' days."""
    for g in kpis.compute(group_by, PERIOD, model=model)["groups"]:
        leads = kpi_trace.leads_behind(group_by, g["group"], PERIOD, model=model)
        closed = kpi_trace.closed_behind(group_by, g["group"], PERIOD, model=model)
        opps = kpi_trace.opportunities_behind(group_by, g["group"], PERIOD)
        where = (model, group_by, g["group"])
        assert _rate(leads, "became_opportunity") == g["lead_to_opportunity_rate"], where
        assert abs(sum(r["credit"] for r in leads) - g["leads"]) < 1e-4, where
        assert _rate(closed, "won") == g["opportunity_to_won_rate"], where
        days = metrics.median([o["days_from_first_touch"] for o in opps])
        expected = g["median_days_first_touch_to_opportunity"]
        assert (days is None) == (expected is None) and (days is None or abs(days - expected) <= 0.01), where


def test_stage_velocity_opens_the_moves_it_counts(june_plus):
    velocity = {v["stage"]: v for v in kpis.stage_velocity(PERIOD)}
    assert (velocity["target"]["moves"], velocity["target"]["median_days"]) == (2, 33.0)  # 35 (Acme) and 31 (Globex)
    every = kpi_trace.stage_moves(PERIOD)
    assert len(every) == sum(v["moves"] for v in velocity.values())
    for stage, v in velocity.items():
        moves = kpi_trace.stage_moves(PERIOD, stage)
        assert len(moves) == v["moves"] and all(m["from_stage"] == stage for m in moves), stage
        assert metrics.median([m["days_in_stage"] for m in moves]) == v["median_days"], stage
    assert sorted((m["account"], m["to_stage"], m["days_in_stage"]) for m in kpi_trace.stage_moves(PERIOD, "target")) == [
        ("Acme", "engaged", 35.0), ("Globex", "aware", 31.0)]


def test_the_pipeline_chart_follows_the_playbook_and_product_filters(june_plus):
    """In thirds of June: O1 (10,000, 20 June) and O4 (3,000, 22 June) at Acme, touched by
    pb-a and pb-b ("gateway"); O2 (5,000, 25 June) at Initech, touched by pb-c ("vault")."""
    def series(playbook=None, product=None):
        ids = kpis.playbook_ids_for(playbook, product)
        return [(s["pipeline"], s["revenue"]) for s in kpis.pipeline_series(PERIOD, 3, playbook_ids=ids)]

    assert series() == [(0.0, 0.0), (10000.0, 10000.0), (8000.0, 0.0)]
    assert series("pb-a") == series("pb-b") == series(product="gateway") == [(0.0, 0.0), (10000.0, 10000.0),
                                                                                (3000.0, 0.0)]
    assert series("pb-c") == series(product="vault") == [(0.0, 0.0), (0.0, 0.0), (5000.0, 0.0)]
    assert series("pb-c", "gateway") == [(0.0, 0.0)] * 3


def _columns(html: str) -> list[tuple[str, str]]:
    start = html.index('aria-label="Pipeline influenced per period slice')
    svg = html[html.rindex("<svg", 0, start):html.index("</svg>", start)]
    return [(html_lib.unescape(href), title) for href, title in re.findall(
        r'<a href="([^"]+)"[^>]*>\s*<rect class="column"[^>]*><title>([^<]*)</title>', svg)]


@pytest.mark.parametrize("filters, hand", [
    ("", {"2026-06-18": "$10,000.00", "2026-06-21": "$3,000.00", "2026-06-23": "$5,000.00"}),
    ("&playbook=pb-a", {"2026-06-18": "$10,000.00", "2026-06-21": "$3,000.00"}),
    ("&product=vault", {"2026-06-23": "$5,000.00"}),
])
def test_each_pipeline_column_follows_the_filters_and_opens_its_opportunities(june_plus, as_role, filters, hand):
    """Twelve slices of 2.5 days: O1 (20 June 10:00) falls in the one from 18 June 12:00, O4
    (22 June) in the one from 21 June, O2 (25 June) in the one from 23 June 12:00."""
    reader = as_role("ae")
    columns = _columns(reader.get(f"/kpis?{JUNE}{filters}").get_data(as_text=True))
    assert len(columns) == kpis.PIPELINE_SLICES
    shown = dict(title.split(": ") for _, title in columns)
    assert {d: v for d, v in shown.items() if v != "$0.00"} == hand
    for href, title in columns:
        rows = list(csv.DictReader(io.StringIO(reader.get(href + "&format=csv").get_data(as_text=True))))
        total = sum(float(r["amount"]) for r in rows)
        assert f"${total:,.2f}" == title.split(": ")[1], (href, rows)
        assert all(r["created_at"][:10] >= title[:10] for r in rows)
    assert "slice must be a number" in reader.get(f"/kpis/opportunities?slice=12&{JUNE}").get_data(as_text=True)


def _cell_links(html: str, group: str) -> list[str]:
    table = html[html.index('<table class="table kpi-table">'):]
    row = re.search(rf'<th scope="row">{re.escape(group)}</th>(.*?)</tr>', table, re.S).group(1)
    return [html_lib.unescape(h) for h in re.findall(r'<a href="([^"]+)">', row)]


def test_the_dashboards_rates_medians_and_velocity_link_to_their_rows(june_plus, as_role):
    reader = as_role("ae")
    html = reader.get(f"/kpis?{JUNE}&model=linear").get_data(as_text=True)
    data = {g["group"]: g for g in kpis.compute("playbook", PERIOD, model="linear")["groups"]}

    def listed(href):
        return list(csv.DictReader(io.StringIO(reader.get(href + "&format=csv").get_data(as_text=True))))

    for group, g in data.items():
        links = _cell_links(html, group)
        lead_links = [h for h in links if h.startswith("/kpis/leads?")]
        closed_links = [h for h in links if "metric=closed" in h]
        days_links = [h for h in links if "metric=days" in h]
        assert len(lead_links) == (g["lead_to_opportunity_rate"] is not None), group
        assert len(closed_links) == (g["opportunity_to_won_rate"] is not None), group
        assert len(days_links) == (g["median_days_first_touch_to_opportunity"] is not None), group
        for href in lead_links:
            rows = [{**r, "credit": float(r["credit"]), "became_opportunity": r["became_opportunity"] == "True"}
                    for r in listed(href)]
            assert "model=linear" in href and _rate(rows, "became_opportunity") == g["lead_to_opportunity_rate"]
        for href in closed_links:
            rows = [{**r, "credit": float(r["credit"]), "won": r["won"] == "True"} for r in listed(href)]
            assert _rate(rows, "won") == g["opportunity_to_won_rate"], group
        for href in days_links:
            days = metrics.median([float(r["days_from_first_touch"]) for r in listed(href)])
            assert abs(days - g["median_days_first_touch_to_opportunity"]) <= 0.01, group
    page = reader.get(next(h for h in _cell_links(html, "pb-a") if h.startswith("/kpis/leads?"))).get_data(
        as_text=True)
    assert "c5@globex.com" in page and "Leads that became opportunities: pb-a" in page

    card = html[html.index("<h2>Stage velocity</h2>"):]
    card = card[:card.index("</section>")]
    velocity = {v["stage"]: v for v in kpis.stage_velocity(PERIOD)}
    hrefs = [html_lib.unescape(h) for h in re.findall(r'<a href="([^"]+)">', card)]
    for stage, v in velocity.items():
        href = next((h for h in hrefs if f"stage={stage}&" in h + "&"), None)
        assert (href is not None) == bool(v["moves"]), stage
        if href:
            moves = listed(href)
            assert len(moves) == v["moves"] and metrics.median([float(m["days_in_stage"]) for m in moves]) == v[
                "median_days"], stage
    assert "33 d" in card  # the median days in target, with its unit


@pytest.mark.parametrize("path", [
    "/kpis/accounts?metric=leads&group=pb-b", "/kpis/opportunities?metric=revenue", "/kpis/costs?group=pb-a",
    "/kpis/leads?group=pb-b", "/kpis/opportunities?metric=closed&group=pb-b", "/kpis/moves?stage=target",
    "/kpis/opportunities?slice=7",
])
@pytest.mark.parametrize("filters", [
    f"{JUNE}&group_by=channel&model=u_shaped&playbook=pb-b&product=gateway", "days=30&group_by=product",
])
def test_back_to_the_kpis_keeps_the_filters(june_plus, as_role, path, filters):
    page = as_role("ae").get(f"{path}&{filters}").get_data(as_text=True)
    href = html_lib.unescape(re.search(r'<a class="button" href="([^"]+)">Back to the KPIs</a>', page).group(1))
    assert urlsplit(href).path == "/kpis"
    assert {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()} == {
        k: v[0] for k, v in parse_qs(filters).items()}


def test_every_list_exports_escaped_csv(june_plus, as_role):
    """The new lists export through the one CSV helper: a contact whose address begins like
    a formula is written as text."""
    contact = db.session.query(Contact).filter_by(email="c5@globex.com").one()
    contact.email = "=HYPERLINK(1)@globex.com"
    db.session.commit()
    reader = as_role("ae")
    text = reader.get(f"/kpis/leads?group_by=playbook&group=pb-a&{JUNE}&format=csv").get_data(as_text=True)
    assert text.startswith("contact_id,contact,account_id,account,lead_at,credit,became_opportunity")
    assert "'=HYPERLINK(1)@globex.com" in text
    moves = reader.get(f"/kpis/moves?{JUNE}&format=csv")
    assert moves.mimetype == "text/csv" and moves.get_data(as_text=True).startswith(
        "account_id,account,from_stage,to_stage,moved_at,days_in_stage")
    assert "unknown stage" in reader.get(f"/kpis/moves?stage=nope&{JUNE}").get_data(as_text=True)


@pytest.mark.parametrize("path, kept", [
    ("/kpis/trends?group_by=channel&model=linear&playbook=pb-b&product=gateway",
     {"group_by": "channel", "model": "linear", "playbook": "pb-b", "product": "gateway"}),
    ("/kpis/trends?model=linear", {"model": "linear"}),
    (f"/kpis/models?metric=won&group_by=channel&model=u_shaped&playbook=pb-b&{JUNE}",
     {"group_by": "channel", "model": "u_shaped", "playbook": "pb-b", "from": "2026-06-01", "to": "2026-06-30"}),
])
def test_the_trends_and_models_pages_lead_back_with_their_filters(june_plus, as_role, path, kept):
    page = as_role("ae").get(path).get_data(as_text=True)
    href = html_lib.unescape(re.search(r'<a class="button" href="([^"]+)">Back to the KPIs</a>', page).group(1))
    assert urlsplit(href).path == "/kpis" and {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()} == kept


def test_each_figures_name_says_what_it_counts(june_plus, as_role):
    """Three "engaged" counts on one page, each named for what it counts; the channel
    card's rates by their glossary names; velocity in days."""
    html = as_role("ae").get(f"/kpis?{JUNE}").get_data(as_text=True)
    for name in ("Accounts engaged after a touch", "Reached accounts with any engagement in the period",
                 "Accounts engaged after entering", "Accounts with a won deal after entering"):
        assert name in html, name
    assert '<span class="lift-metric">Engaged</span>' not in html and 'aria-label="engaged:' not in html
    card = html[html.index("<h2>Conversion by channel</h2>"):]
    card = card[:card.index("</section>")]
    assert "<th>Leads that became opportunities</th><th>Closed opportunities won</th>" in card and "→" not in card
    assert "marketing touches sent" in html


@pytest.mark.parametrize("group_by", ["playbook", "channel", "segment", "owner"])
def test_each_touch_count_opens_the_touches_it_counts(june_plus, as_role, group_by):
    """The touch count of every group and of all opens the touches it counts; by hand,
    pb-a's June touches are T1 (Acme, 2 June) and T3 (Globex, 3 June), newest first."""
    reader = as_role("ae")
    html = reader.get(f"/kpis?{JUNE}&group_by={group_by}").get_data(as_text=True)
    data = kpis.compute(group_by, PERIOD)
    for g in data["groups"]:
        [href] = [h for h in _cell_links(html, g["group"]) if h.startswith("/kpis/touches?")] or [None]
        rows = list(csv.DictReader(io.StringIO(reader.get(href + "&format=csv").get_data(as_text=True))))
        assert len(rows) == g["touches"] and len({r["touch_id"] for r in rows}) == len(rows), g["group"]
    total = re.search(r'<a href="([^"]+)">[\d,]+ marketing touches sent</a>', html).group(1)
    listed = reader.get(html_lib.unescape(total) + "&format=csv").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(listed)))) == data["totals"]["touches"]
    if group_by == "playbook":
        count, rows = kpi_trace.touches_behind("playbook", "pb-a", PERIOD)
        assert count == 2 and [(r["account"], r["sent_at"][:10]) for r in rows] == [
            ("Globex", "2026-06-03"), ("Acme", "2026-06-02")]
        page = reader.get(f"/kpis/touches?{JUNE}&group_by=playbook&group=pb-a").get_data(as_text=True)
        assert "2 touches" in page and "Globex" in page


def test_the_touch_list_counts_all_and_lists_the_newest(june_plus):
    count, rows = kpi_trace.touches_behind("playbook", None, PERIOD, limit=1)
    assert count == kpis.compute("playbook", PERIOD)["totals"]["touches"] > 1 and len(rows) == 1


def test_the_api_serves_the_same_rows_behind_each_figure(june_plus, as_role):
    """The rows behind the rates, the medians, velocity and touch counts over the API are
    the lists the pages open; an unknown stage or grouping is a 422 naming its field."""
    reader = as_role("ae")

    def items(path):
        answer = reader.get(f"/api/v1/kpis/{path}&{JUNE}")
        assert answer.status_code == 200, (path, answer.json)
        return answer.json["items"]

    assert items("leads?group_by=playbook&group=pb-b&model=linear") == kpi_trace.leads_behind(
        "playbook", "pb-b", PERIOD, model="linear")
    assert items("opportunities?group_by=playbook&group=pb-b&metric=closed") == kpi_trace.closed_behind(
        "playbook", "pb-b", PERIOD)
    assert [(o["name"], o["won"]) for o in items("opportunities?group_by=playbook&group=pb-b&metric=closed")] == [
        ("O1", True), ("O4", False)]
    assert items("moves?stage=target") == kpi_trace.stage_moves(PERIOD, "target")
    assert items("touches?group_by=playbook&group=pb-a") == kpi_trace.touches_behind("playbook", "pb-a", PERIOD)[1]
    assert reader.get(f"/api/v1/kpis/touches?group_by=playbook&group=pb-a&{JUNE}").json["count"] == 2
    bad = reader.get(f"/api/v1/kpis/moves?stage=nope&{JUNE}")
    assert bad.status_code == 422 and "stage" in str(bad.json)
    assert reader.get(f"/api/v1/kpis/touches?group_by=colour&{JUNE}").status_code == 422
