"""The weekly KPI report: built from the hand-computed June dataset, sent by the worker's
job through the SMTP connector, and read at a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

from abm.db import db
from abm.models import Touch
from abm.services import connectors as connector_service
from abm.services import kpi_report
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
    assert 'aria-label="Leads credited per week"' in html and "background:#2b6cb0" in html  # the bars
    assert "not enough accounts yet: about" in html  # pb-a's lift against its held-out account
    assert "Leads credited: 0 | 0 | 1 | 2 | 0" in text
    assert db.session.query(Touch).count() == 5  # the report is no marketing touch: the KPIs do not count it
