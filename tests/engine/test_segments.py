"""Segments: saved audiences counted against an independent SQL query, their members
with reasons, CSV, use in playbooks and as SQL for others to join."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select, text

from abm.db import db
from abm.services import playbooks as playbook_service
from abm.services import segments
from tests.engine.conftest import make_account
from tests.engine.test_api_cli import _clients

CONDITION = """tier: [1]
any:
  - industry: [fintech]
  - employees: {gt: 500}
"""
INDEPENDENT = "SELECT count(*) FROM accounts WHERE tier = 1 AND (industry = 'fintech' OR employees > 500)"


def _seed():
    for n in range(30):
        make_account(f"Seg{n:02d}", tier=1 + n % 2, industry=("fintech", "retail", "=cmd")[n % 3],
                     employees=100 * n)


def test_a_segment_counts_what_an_independent_query_counts(app, runner, tmp_path, sent_log):
    _seed()
    path = tmp_path / "big-fintech.yaml"
    path.write_text(CONDITION)
    saved = runner.invoke(args=["segment", "save", "big-fintech", str(path), "--description", "Tier 1 fit"])
    expected = db.session.execute(text(INDEPENDENT)).scalar_one()
    assert saved.exit_code == 0 and f"big-fintech: created, {expected} account(s) now" in saved.output
    assert 0 < expected < 30
    row = segments.get("big-fintech")
    assert segments.count(row) == expected
    members = db.session.execute(select(func.count()).select_from(
        segments.membership_query("big-fintech").subquery())).scalar_one()
    assert members == expected
    rows = db.session.execute(segments.memberships()).all()
    assert {r.segment for r in rows} == {"big-fintech"} and len(rows) == expected

    listed = runner.invoke(args=["segment", "list"])
    assert "big-fintech" in listed.output and f" {expected} " in listed.output

    path.write_text("tier: [1]\nindustri: [fintech]\n")
    bad = runner.invoke(args=["segment", "save", "big-fintech", str(path)])
    assert bad.exit_code == 1
    assert "big-fintech.yaml:2:1 industri: unknown account field 'industri'; did you mean 'industry'?" in bad.output
    assert segments.count(segments.get("big-fintech")) == expected  # unchanged


def test_members_reasons_csv_and_the_api(app, sent_log):
    _seed()
    manager, ae = _clients(app)
    created = manager.post("/api/v1/segments", json={"name": "big-fintech", "condition": CONDITION})
    assert created.status_code == 201
    expected = db.session.execute(text(INDEPENDENT)).scalar_one()
    assert created.get_json()["count"] == expected
    assert ae.post("/api/v1/segments", json={"name": "x", "condition": "tier: [1]"}).status_code == 403
    bad = manager.post("/api/v1/segments", json={"name": "y", "condition": "tier: [one]"})
    assert bad.status_code == 422 and bad.get_json()["error"]["details"][0]["line"] == 1

    page = ae.get("/api/v1/segments/big-fintech/members?limit=100").get_json()
    assert len(page["items"]) == expected
    by_name = {m["name"]: m for m in page["items"]}
    assert by_name["Seg00"]["reasons"] == ["tier is one of 1", "industry is one of \"fintech\""]
    assert by_name["Seg26"]["reasons"] == ["tier is one of 1", "employees > 500"]  # industry "=cmd"

    exported = ae.get("/api/v1/segments/big-fintech/members.csv")
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert len(rows) == expected
    assert all(not r["name"].startswith("=") for r in rows)


def test_a_playbook_audience_names_a_segment(app, sent_log, clock):
    _seed()
    segments.save("big-fintech", CONDITION)
    source = """version: 1
key: seg-pb
name: Segment playbook
audience: {segment: big-fintech}
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hi"
      body: "<p>Hi</p>"
"""
    expected = db.session.execute(text(INDEPENDENT)).scalar_one()
    plan = playbook_service.plan(source, now=clock())
    assert plan["entering"] == expected
    assert [f["label"] for f in plan["funnel"]][1:] == ["tier is one of 1",
                                                        "industry is one of \"fintech\" or employees > 500"]
    playbook_service.apply(source)
    assert playbook_service.activate("seg-pb", now=clock())["enrolled"] == expected
    unknown = playbook_service.validate(source.replace("big-fintech", "big-fintec"))
    assert [e.message for e in unknown.errors] == ["unknown segment 'big-fintec'; did you mean 'big-fintech'?"]


