"""`abm import accounts|contacts FILE`: the row-level report and the exit status."""

from __future__ import annotations

import json

from sqlalchemy import select

from abm.db import db
from abm.models import Account, Contact


def write(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_import_accounts_reports_rows_and_exits_1_on_rejected_rows(runner, tmp_path):
    path = write(tmp_path, "accounts.csv", "\ufeffAccount Name;Website;Segment\nAcme;acme.com;ENT\n"
                                           "Broken;not a domain;SMB\nBeta;beta.io;\n")
    result = runner.invoke(args=["import", "accounts", path])
    assert result.exit_code == 1
    assert f"{path}: 3 rows: 2 accounts created, 0 updated, 0 unchanged, 0 skipped, 1 rejected" in result.output
    assert f"{path}:3: domain: 'not a domain' is not a domain name; row not imported" in result.output
    assert "'Segment' -> attributes.segment" in result.output
    assert sorted(db.session.execute(select(Account.domain)).scalars()) == ["acme.com", "beta.io"]
    assert "importing" not in result.output  # no progress bar outside a terminal


def test_import_clean_file_exits_0_and_json_report(runner, tmp_path):
    path = write(tmp_path, "a.csv", "Company name\tCompany Domain Name\nÉcole Polytechnique\tpolytechnique.edu\n",
                 "cp1252")
    result = runner.invoke(args=["import", "accounts", path, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["created"] == 1 and report["encoding"] == "windows-1252" and report["delimiter"] == "\t"
    assert db.session.execute(select(Account.name)).scalar_one() == "École Polytechnique"


def test_import_contacts_reports_skips_and_unlinked(runner, tmp_path, make_user):
    runner.invoke(args=["import", "accounts", write(tmp_path, "a.csv", "Domain\nacme.com\n")])
    path = write(tmp_path, "c.csv", 'Email,First Name,Notes\nann@acme.com,Ann,"line one\nline two"\n'
                                    "ann@acme.com,Annie,\njo@gmail.com,Jo,\n")
    result = runner.invoke(args=["import", "contacts", path])
    assert result.exit_code == 0, result.output
    assert "3 rows: 2 contacts created, 0 updated, 0 unchanged, 1 skipped, 0 rejected" in result.output
    assert f"{path}:2: email: skipped: row 3 has the same email (ann@acme.com); the last row wins" in result.output
    assert "1 new contacts have no account" in result.output
    assert db.session.execute(select(Contact.first_name).where(Contact.email == "ann@acme.com")).scalar_one() == "Annie"


def test_file_without_usable_header_is_an_error(runner, tmp_path):
    path = write(tmp_path, "c.csv", "x@acme.com,Ann\n")
    result = runner.invoke(args=["import", "contacts", path])
    assert result.exit_code == 1
    assert f"Error: {path}: no usable header" in result.output and "Traceback" not in result.output


def test_missing_file_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(args=["import", "accounts", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
