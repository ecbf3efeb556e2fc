"""The import page: managers upload a CSV and read created/updated/skipped and the
row/column/reason of each problem."""

from __future__ import annotations

import io
import re

from sqlalchemy import select

from abm.db import db
from abm.models import Account, Contact

ACCOUNTS_CSV = (
    "Company Name,Website,Tier,Employees\n"
    "Acme,acme.example,1,1200\n"
    "Globex,globex.example,two,300\n"
    "Nowhere,not a domain,1,10\n"
)


def _upload(client, kind: str, text: str, name: str = "file.csv"):
    return client.post("/imports", data={"kind": kind, "file": (io.BytesIO(text.encode()), name)},
                       content_type="multipart/form-data")


def _errors(html: str) -> list[tuple[str, str, str]]:
    return re.findall(r'<td class="num" data-label="Row">(\d+)</td><td data-label="Column"><code>([^<]*)</code>'
                      r'</td><td data-label="Problem">([^<]*)</td>', html)


def test_manager_imports_accounts_and_reads_the_report(as_role):
    client = as_role("manager")
    assert "Upload a CSV file" in client.get("/imports").get_data(as_text=True)
    resp = _upload(client, "accounts", ACCOUNTS_CSV, "crm-export.csv")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Report for crm-export.csv (accounts)" in html
    assert re.search(r'<span class="stat-value">2</span><br><span class="muted">created</span>', html)
    errors = _errors(html)
    assert ("3", "tier") == errors[0][:2] or any(e[:2] == ("3", "tier") for e in errors)
    assert any(e[0] == "4" and e[1] in ("domain", "website", "Website") for e in errors)
    names = set(db.session.execute(select(Account.name)).scalars())
    assert names == {"Acme", "Globex"}

    again = _upload(client, "accounts", "domain,name\nacme.example,Acme Corp\n").get_data(as_text=True)
    assert re.search(r'<span class="stat-value">1</span><br><span class="muted">updated</span>', again)
    assert "No problems found" in again


def test_contacts_import(as_role):
    client = as_role("admin")
    db.session.add(Account(name="Acme", domain="acme.example", stage="target"))
    db.session.commit()
    html = _upload(client, "contacts", "email,first name,buying role\njane@acme.example,Jane,champion\n"
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
    assert resp.status_code == 422 and "choose accounts or contacts" in resp.get_data(as_text=True)


def test_account_executives_may_not_import(as_role):
    client = as_role("ae")
    assert client.get("/imports").status_code == 403
    assert _upload(client, "accounts", ACCOUNTS_CSV).status_code == 403
    assert db.session.execute(select(Account)).first() is None
