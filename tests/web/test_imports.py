"""The import page: managers upload a CSV and read created/updated/skipped and the
row/column/reason of each problem."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Account, Contact, ImportFile
from tests.imports.jobs import run_import_jobs

ACCOUNTS_CSV = (
    "Company Name,Website,Tier,Employees\n"
    "Acme,acme.example,1,1200\n"
    "Globex,globex.example,two,300\n"
    "Nowhere,not a domain,1,10\n"
)


def _upload(client, kind: str, text: str, name: str = "file.csv"):
    return client.post("/imports", data={"kind": kind, "file": (io.BytesIO(text.encode()), name)},
                       content_type="multipart/form-data")


def _imported(client, kind: str, text: str, name: str = "file.csv"):
    """Upload, see the run's page wait for a worker, run the job as a worker does; the run's page then."""
    resp = _upload(client, kind, text, name)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    waiting = client.get(resp.headers["Location"])
    assert "Waiting for a worker" in waiting.get_data(as_text=True)
    status = client.get(resp.headers["Location"] + "/status").get_json()
    assert status["status"] == "queued" and status["progress"] == 0
    run_import_jobs()
    assert client.get(resp.headers["Location"] + "/status").get_json()["status"] == "done"
    return client.get(resp.headers["Location"])


def _errors(html: str) -> list[tuple[str, str, str]]:
    return re.findall(r'<td class="num" data-label="Row">(\d+)</td><td data-label="Column"><code>([^<]*)</code>'
                      r'</td><td data-label="Problem">([^<]*)</td>', html)


def test_manager_imports_accounts_and_reads_the_report(as_role):
    client = as_role("manager")
    assert "Upload a CSV file" in client.get("/imports").get_data(as_text=True)
    resp = _imported(client, "accounts", ACCOUNTS_CSV, "crm-export.csv")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Report for crm-export.csv (accounts)" in html
    assert re.search(r'<span class="stat-value">2</span><br><span class="muted">created</span>', html)
    errors = _errors(html)
    assert ("3", "tier") == errors[0][:2] or any(e[:2] == ("3", "tier") for e in errors)
    assert any(e[0] == "4" and e[1] in ("domain", "website", "Website") for e in errors)
    names = set(db.session.execute(select(Account.name)).scalars())
    assert names == {"Acme", "Globex"}

    again = _imported(client, "accounts", "domain,name\nacme.example,Acme Corp\n").get_data(as_text=True)
    assert re.search(r'<span class="stat-value">1</span><br><span class="muted">updated</span>', again)
    assert "No problems found" in again


def test_contacts_import(as_role):
    client = as_role("admin")
    db.session.add(Account(name="Acme", domain="acme.example", stage="target"))
    db.session.commit()
    html = _imported(client, "contacts", "email,first name,buying role\njane@acme.example,Jane,champion\n"
                                         "broken-email,Bob,user\n").get_data(as_text=True)
    assert "Report for file.csv (contacts)" in html
    assert any(e[0] == "3" and e[1] == "email" for e in _errors(html))
    jane = db.session.execute(select(Contact).where(Contact.email == "jane@acme.example")).scalar_one()
    assert jane.buying_role == "champion" and jane.account.domain == "acme.example"


def test_unusable_uploads_are_field_errors(as_role):
    client = as_role("manager")
    resp = client.post("/imports", data={"kind": "accounts"}, content_type="multipart/form-data")
    assert resp.status_code == 422 and "choose a CSV file" in resp.get_data(as_text=True)
    resp = _upload(client, "accounts", "foo,bar\n1,2\n", "junk.csv")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "junk.csv:" in html and 'class="field-errors"' in html
    resp = _upload(client, "people", "email\na@b.example\n")
    assert resp.status_code == 422 and "choose accounts, contacts or intent" in resp.get_data(as_text=True)


def test_account_executives_may_not_import(as_role):
    client = as_role("ae")
    assert client.get("/imports").status_code == 403
    assert _upload(client, "accounts", ACCOUNTS_CSV).status_code == 403
    assert db.session.execute(select(Account)).first() is None


def test_the_history_lists_past_imports_with_their_reports(as_role):
    client = as_role("manager")
    _imported(client, "accounts", ACCOUNTS_CSV, "first.csv")
    _imported(client, "accounts", "domain\nnew.example\n", "second.csv")
    html = client.get("/imports").get_data(as_text=True)
    rows = re.findall(r'<td data-label="File">([^<]*)</td>.*?<td class="num" data-label="Created">(\d*)</td>', html,
                      re.S)
    assert rows == [("second.csv", "1"), ("first.csv", "2")]
    link = re.search(r'<a href="(/imports/\d+)">', html).group(1)
    assert "Report for second.csv (accounts)" in client.get(link).get_data(as_text=True)


def test_each_sample_file_downloads_and_imports_without_a_problem(as_role):
    client = as_role("manager")
    for kind in ("accounts", "contacts"):
        resp = client.get(f"/imports/sample/{kind}.csv")
        assert resp.status_code == 200 and resp.mimetype == "text/csv"
        assert f'filename="sample-{kind}.csv"' in resp.headers["Content-Disposition"]
        html = _imported(client, kind, resp.get_data(as_text=True), f"sample-{kind}.csv").get_data(as_text=True)
        assert "No problems found" in html and re.search(r'<span class="stat-value">3</span><br>'
                                                         r'<span class="muted">created</span>', html)
    assert client.get("/imports/sample/people.csv").status_code == 404
    jane = db.session.execute(select(Contact).where(Contact.email == "jane.doe@acme.example")).scalar_one()
    assert jane.account.domain == "acme.example"


def test_manager_imports_an_intent_file_and_reads_what_became_of_each_row(as_role):
    client = as_role("manager")
    db.session.add(Account(name="Acme", domain="acme.example", stage="target"))
    db.session.commit()
    assert 'value="intent"' in client.get("/imports").get_data(as_text=True)
    html = _imported(client, "intent", "Domain,Company Name,Topic,Composite Score,Week\n"
                                       "acme.example,Acme,Zero Trust,78,2026-11-23\n"
                                       "acme.example,Acme,SASE,high,2026-11-23\n"
                                       "newco.example,NewCo,Zero Trust,91,2026-11-23\n", "surge.csv").get_data(as_text=True)
    assert "Report for surge.csv (intent)" in html
    assert re.search(r'<span class="stat-value">2</span><br><span class="muted">created</span>', html)
    assert [e[:2] for e in _errors(html)] == [("3", "score")]
    assert "1 intent signals are for domains that match no account yet" in html
    history = client.get("/imports").get_data(as_text=True)
    assert re.search(r'<td data-label="File">surge.csv</td>\s*<td data-label="Kind">intent</td>', history)
    resp = _upload(client, "intent", "Domain,Score\nacme.example,70\n", "wrong.csv")
    assert resp.status_code == 422 and "wrong.csv: the header has no topic, week column" in resp.get_data(as_text=True)


def test_the_intent_sample_file_downloads_and_imports_without_a_problem(as_role):
    client = as_role("manager")
    resp = client.get("/imports/sample/intent.csv")
    assert resp.status_code == 200 and 'filename="sample-intent.csv"' in resp.headers["Content-Disposition"]
    html = _imported(client, "intent", resp.get_data(as_text=True), "sample-intent.csv").get_data(as_text=True)
    assert "No problems found" in html and re.search(r'<span class="stat-value">4</span><br>'
                                                     r'<span class="muted">created</span>', html)


def test_a_failed_import_says_why(as_role):
    client = as_role("manager")
    resp = _upload(client, "accounts", "domain\na.example\n")
    db.session.execute(ImportFile.__table__.delete())  # the file is gone before a worker reads it
    db.session.commit()
    run_import_jobs()
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "The import failed" in html and "the file of this import is gone" in html


@pytest.mark.browser
def test_the_run_page_follows_the_import_and_shows_its_report_when_it_ends(live_server, browser_page,
                                                                          make_live_user):
    """In Chromium: the upload opens the run's page, which waits for a worker; when a worker has run the
    import, the page shows the report by itself (it polls), with no error in the page's scripts."""
    live_server.login(browser_page, make_live_user("manager"))
    browser_page.goto(live_server.url + "/imports")
    sample = live_server.tmp / "accounts.csv"
    sample.write_text("Domain,Name\nacme.example,Acme\nglobex.example,Globex\n")
    browser_page.set_input_files("input[type=file]", str(sample))
    browser_page.get_by_role("button", name="Import").click()
    browser_page.get_by_role("heading", name="Waiting for a worker").wait_for()
    run_import_jobs()
    browser_page.get_by_role("heading", name="Report for accounts.csv (accounts)").wait_for(timeout=10_000)
    assert "No problems found" in browser_page.content()
    assert live_server.js_errors == []
