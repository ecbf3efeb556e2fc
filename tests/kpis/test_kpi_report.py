"""The weekly KPI report: built from the hand-computed June dataset, sent by the worker's
job through the SMTP connector, and read at a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy

from PIL import Image

from abm.db import db
from abm.models import Touch
from abm.services import connectors as connector_service
from abm.services import kpi_charts, kpi_glossary, kpi_report
from abm.services import settings as settings_service
from tests.connectors.fakes.smtp_server import smtp_server
from workers import report_jobs

MONDAY = datetime(2026, 6, 22, 7, tzinfo=UTC)  # the report on 15-21 June, against 18 May to 14 June


def test_the_report_compares_the_week_with_the_four_before(june):
    report = kpi_report.build(MONDAY)
    assert (report["week_start"], report["week_end"]) == ("2026-06-15", "2026-06-21")
    assert report["weeks"] == ["2026-05-18", "2026-05-25", "2026-06-01", "2026-06-08", "2026-06-15"]
    trend = {row["key"]: row["values"] for row in report["trend"]}
    # touches: T4 (05-20), T1 T3 T2 (06-02..05); leads: c3 (06-01), c1 (06-10) and c4 (06-12); O3 on 06-15 was
    # never touched, so no opportunity is credited to the week of 06-15 (O1 and O2 came later)
    assert trend["touches"] == [1.0, 0.0, 3.0, 0.0, 0.0]
    assert trend["leads"] == [0.0, 0.0, 1.0, 2.0, 0.0]
    assert [lift["playbook"] for lift in report["lifts"]] == ["pb-a"]  # the one playbook with a holdout


def test_the_worker_sends_it_once_a_week_to_the_listed_people(june, make_user):
    admin = make_user("admin")
    with smtp_server() as server:
        connector_service.create({"name": "mail", "type": "smtp", "settings": {
            "host": server.host, "port": server.port, "security": "none", "from_email": "kpis@vendor.example",
            "timeout": 5}}, admin.id)
        settings_service.update({"kpi_report": {"recipients": ["cmo@vendor.example", "cro@vendor.example"],
                                                "weekday": "mon", "connector": "mail"}}, admin.id)
        assert report_jobs.send_weekly_kpi_report(datetime(2026, 6, 23, 7, tzinfo=UTC)) == 0  # a Tuesday
        assert report_jobs.send_weekly_kpi_report(MONDAY) == 2
        assert report_jobs.send_weekly_kpi_report(MONDAY.replace(hour=9)) == 0  # once a week
        assert sorted(r for m in server.messages for r in m.rcpt_tos) == ["cmo@vendor.example", "cro@vendor.example"]
        mail = message_from_bytes(server.messages[0].raw, policy=policy.default)
    assert mail["Subject"] == "KPIs, week of 2026-06-15"
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert "Leads credited" in html and "By playbook" in html and "By channel" in html
    _the_charts_are_inline_pictures_the_html_shows(mail, html)
    assert "not enough accounts yet: about" in html  # pb-a's lift against its held-out account
    assert "Leads credited: 0 | 0 | 1 | 2 | 0" in text
    assert db.session.query(Touch).count() == 5  # the report is no marketing touch: the KPIs do not count it


def _the_charts_are_inline_pictures_the_html_shows(mail, html: str) -> None:
    """multipart/alternative (text, then multipart/related: the HTML and its PNG parts);
    every <img> points at a part by Content-ID, every part is shown, each a real PNG."""
    assert mail.get_content_type() == "multipart/alternative"
    related = mail.get_payload()[1]
    assert related.get_content_type() == "multipart/related"
    images = {part["Content-ID"].strip("<>"): part for part in related.iter_parts()
              if part.get_content_maintype() == "image"}
    shown = dict(re.findall(r'<img src="cid:([^"]+)" alt="([^"]+)"', html))
    assert set(shown) == set(images) and len(images) == 11  # 9 figures week by week, leads by playbook and channel
    for part in images.values():
        assert part.get_content_type() == "image/png" and part.get_content_disposition() == "inline"
        picture = Image.open(io.BytesIO(part.get_content()))
        assert picture.format == "PNG" and picture.size[0] == 640
        assert len(picture.convert("RGB").getcolors(maxcolors=1 << 16)) > 2  # drawn, not blank
    leads = next(alt for cid, alt in shown.items() if cid.startswith("leads."))
    assert "week of 2026-06-08: 2" in leads and "week of 2026-06-15: 0" in leads  # the values, for text readers
    cost = next(alt for cid, alt in shown.items() if cid.startswith("cost."))
    assert "$" in cost and "week of 2026-05-18: $" in cost  # money with its currency symbol


def test_each_chart_has_its_values_on_the_axis_with_the_currency_symbol():
    chart = kpi_charts.weekly("Cost", ["2026-06-01", "2026-06-08"], [141.0, 2500.5],
                              lambda v: kpi_glossary.money(v, "EUR"))
    assert chart.png.startswith(b"\x89PNG") and chart.axis_labels[0] == "€0.00"
    assert all(label.startswith("€") for label in chart.axis_labels) and len(chart.axis_labels) >= 3
    assert chart.alt == "Cost, week by week: week of 2026-06-01: €141.00; week of 2026-06-08: €2,500.50"
    ranked = kpi_charts.ranking("Leads credited by playbook", ["pb-b", "pb-c"], [2.0, 1.0], kpi_glossary.count)
    assert ranked.axis_labels[0] == "0" and ranked.alt == "Leads credited by playbook: pb-b: 2; pb-c: 1"
