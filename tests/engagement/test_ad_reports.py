"""Ad-platform company engagement reports become account events."""

from __future__ import annotations

import io

from sqlalchemy import func, select

from abm.db import db
from abm.models import Account, Event
from abm.services import ad_reports

LINKEDIN = (
    "Company Engagement Report (in UTC)\n"
    "Report Start: 11/1/2026, Report End: 11/3/2026\n"
    "\n"
    "Date,Company Name,Company Website,Impressions,Clicks\n"
    "11/01/2026,Acme,https://www.acme.com,\"1,200\",7\n"
    "11/02/2026,Acme,acme.com,300,0\n"
    "11/02/2026,Globex Corp,,50,1\n"
    "11/02/2026,Nobody Inc,,10,0\n"
    "2026-13-40,Acme,acme.com,1,1\n"
    "11/03/2026,Initech,initech.com,80,2\n"
    "11/03/2026,Acme,acme.com,-5,1\n"
)


def test_a_linkedin_report_becomes_account_events_once(app, world):
    globex = world["globex"]
    globex.name = "Globex Corp"
    db.session.commit()
    result = ad_reports.import_report(io.BytesIO(LINKEDIN.encode("utf-8-sig")), source="linkedin")
    assert result.rows == 7
    assert [(e["row"], e["column"]) for e in result.errors] == [(8, "name"), (9, "date"), (11, "impressions")]
    assert "no account is named 'Nobody Inc'" in result.errors[0]["message"]
    # acme: 2 days of impressions + 1 day of clicks; globex: 1+1; initech (kept, unmatched): 1+1
    assert result.events == 7 and result.unmatched == 2
    acme_impressions = db.session.execute(select(func.sum(Event.quantity)).where(
        Event.account_id == world["acme"].id, Event.type == "ad_impression")).scalar_one()
    assert acme_impressions == 1500
    again = ad_reports.import_report(io.BytesIO(LINKEDIN.encode()), source="linkedin")
    assert again.events == 0 and again.duplicates == 7
    assert db.session.execute(select(func.count(Event.id))).scalar_one() == 7
    db.session.expire_all()
    # 1,500 impressions at 0.1 and 7 clicks at 3, decayed from early November
    assert db.session.get(Account, world["acme"].id).score > 0


def test_a_report_without_a_usable_header_says_so(app):
    result = ad_reports.import_report(io.BytesIO(b"foo,bar\n1,2\n"))
    assert result.events == 0 and "header" in result.errors[0]["message"]


def test_the_cli_reports_rows_and_exits_1_on_errors(app, runner, world, tmp_path):
    path = tmp_path / "report.csv"
    path.write_text(LINKEDIN)
    out = runner.invoke(args=["engagement", "import-ads", str(path)])
    assert out.exit_code == 1
    assert "7 rows: 5 events stored" in out.output  # "Globex Corp" is not an account name here
    assert "row 8, column name" in out.output
    assert "row 9, column date" in out.output


def test_the_api_takes_a_report_as_csv_or_file(app, api, world):
    m = api("manager")
    resp = m.post("/api/v1/imports/ad-engagement?source=linkedin", data=LINKEDIN.encode(), content_type="text/csv")
    assert resp.status_code == 200 and resp.json["rows"] == 7 and len(resp.json["errors"]) == 4
    assert api("ae").post("/api/v1/imports/ad-engagement", data=b"x", content_type="text/csv").status_code == 403
    bad = m.post("/api/v1/imports/ad-engagement", data=b"foo,bar\n1,2\n", content_type="text/csv")
    assert bad.status_code == 422 and "header" in bad.json["error"]["message"]
