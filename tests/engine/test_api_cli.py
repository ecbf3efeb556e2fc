"""The playbook API and the ``abm playbook`` commands."""

from __future__ import annotations

import json
import re

from abm.auth import issue_token
from abm.db import db
from abm.services import playbooks as service
from abm.services.users import create_user
from playbooks import json_schema
from tests.engine.conftest import make_account
from workers import dispatcher

GOOD = """version: 1
key: api-pb
name: API playbook
audience:
  where: {tier: [1]}
holdout: 0%
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p>"
"""

BAD = """version: 1
key: bad-pb
name: Bad
audience:
  where: {tier: [1]}
steps:
  - id: hello
    email:
      to: {roles: [decision-maker]}
      subject: "Hi"
      body: "x"
"""


def _post_yaml(client, path, text):
    return client.post(f"/api/v1{path}", data=text.encode(), content_type="application/yaml")


def test_api_apply_versions_roles_and_life_cycle(app, sent_log, clock, worker):
    make_account("Alpha")
    make_account("Beta", tier=2)
    manager, ae = _clients(app)
    assert _post_yaml(ae, "/playbooks", GOOD).status_code == 403
    first = _post_yaml(manager, "/playbooks", GOOD)
    assert first.status_code == 201 and first.get_json() == {"key": "api-pb", "version": 1, "status": "draft"}
    second = _post_yaml(manager, "/playbooks", GOOD.replace("Hello", "Hi there"))
    assert second.get_json()["version"] == 2

    bad = _post_yaml(manager, "/playbooks", BAD)
    assert bad.status_code == 422
    detail = bad.get_json()["error"]["details"][0]
    assert (detail["line"], detail["path"]) == (9, "steps[0].email.to.roles[0]")
    assert "decision_maker" in detail["message"]

    body = ae.get("/api/v1/playbooks/api-pb").get_json()
    assert [v["version"] for v in body["versions"]] == [1, 2] and body["status"] == "draft"
    source = ae.get("/api/v1/playbooks/api-pb/source?version=1")
    assert source.status_code == 200 and source.get_data(as_text=True) == GOOD
    assert ae.get("/api/v1/playbooks/nope").status_code == 404

    plan = _post_yaml(ae, "/playbooks/plan", GOOD)
    assert plan.status_code == 200 and plan.get_json()["entering"] == 1
    assert plan.get_json()["rendered"][0]["rendered"]["subject"] == "Hello Alpha"
    assert _post_yaml(ae, "/playbooks/validate", BAD).status_code == 422

    assert ae.post("/api/v1/playbooks/api-pb/activate").status_code == 403
    activated = manager.post("/api/v1/playbooks/api-pb/activate")
    assert activated.status_code == 200 and activated.get_json()["enrolled"] == 1
    enrollments = ae.get("/api/v1/playbooks/api-pb/enrollments?state=active").get_json()["items"]
    assert [(e["account"], e["version"], e["step"]) for e in enrollments] == [("Alpha", 2, "hello")]

    dispatcher.dispatch(now=clock())
    worker()
    touches = ae.get("/api/v1/touches?playbook=api-pb&status=sent").get_json()["items"]
    assert [t["subject"] for t in touches] == ["Hi there Alpha"]
    assert ae.get("/api/v1/touches?status=failed").get_json()["items"] == []
    assert manager.post("/api/v1/playbooks/api-pb/resume").status_code == 409
    assert manager.post("/api/v1/playbooks/api-pb/pause").get_json()["status"] == "paused"
    assert manager.post("/api/v1/playbooks/api-pb/archive").get_json()["status"] == "archived"


def _clients(app):
    out = []
    for role in ("manager", "ae"):
        user = create_user(email=f"{role}@example.com", role=role, password="password123", name=role)
        token = issue_token(user, "t")
        db.session.commit()
        c = app.test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        out.append(c)
    return out


def test_cli_validate_plan_apply_life_cycle(app, runner, sent_log, tmp_path):
    make_account("Alpha")
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BAD)

    result = runner.invoke(args=["playbook", "validate", str(good), str(bad)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(str(bad))]
    assert lines and all(re.match(rf"{re.escape(str(bad))}:\d+:\d+ \S+: .+", line) for line in lines)
    assert f"{bad}:9:" in lines[0]
    assert runner.invoke(args=["playbook", "validate", str(good)]).exit_code == 0

    planned = runner.invoke(args=["playbook", "plan", str(good)])
    assert planned.exit_code == 0, planned.output
    assert "accounts entering: 1, held out: 0" in planned.output
    assert "subject: Hello Alpha" in planned.output

    applied = runner.invoke(args=["playbook", "apply", str(good)])
    assert applied.exit_code == 0 and "version 1 stored" in applied.output
    assert runner.invoke(args=["playbook", "apply", str(bad)]).exit_code == 1
    activated = runner.invoke(args=["playbook", "activate", "api-pb"])
    assert activated.exit_code == 0 and "active" in activated.output and "enrolled 1" in activated.output
    assert "paused" in runner.invoke(args=["playbook", "pause", "api-pb"]).output
    assert "active" in runner.invoke(args=["playbook", "resume", "api-pb"]).output
    missing = runner.invoke(args=["playbook", "pause", "nope"])
    assert missing.exit_code == 1 and "not found" in missing.output


NOBODY = GOOD.replace("key: api-pb", "key: nobody").replace("where: {tier: [1]}",
                                                            "where: {tier: [1], industry: [mining]}")


def test_a_playbook_that_would_enroll_nobody_says_which_condition_left_nobody(app, runner, sent_log, tmp_path):
    make_account("Alpha")
    make_account("Beta", tier=2)
    source = tmp_path / "nobody.yaml"
    source.write_text(NOBODY)
    planned = runner.invoke(args=["playbook", "plan", str(source)])
    assert planned.exit_code == 0, planned.output
    assert re.search(r"\s2\s+accounts in the workspace\n\s+1\s+tier is one of 1\n\s+0\s+industry is one of "
                     r'"mining"', planned.output)
    assert "no account would enter: none is left after \u201cindustry is one of \"mining\"\u201d" in planned.output

    assert runner.invoke(args=["playbook", "apply", str(source)]).exit_code == 0
    refused = runner.invoke(args=["playbook", "activate", "nobody"])
    assert refused.exit_code == 1 and "would enroll no account" in refused.output

    assert service.get("nobody").status == "draft"
    manager, _ = _clients(app)
    answer = manager.post("/api/v1/playbooks/nobody/activate")
    assert answer.status_code == 409
    assert [f["kept"] for f in answer.get_json()["error"]["funnel"]] == [2, 1, 0, 0]
    started = runner.invoke(args=["playbook", "activate", "nobody", "--allow-empty"])
    assert started.exit_code == 0 and "nobody: active (enrolled 0, held_out 0)" in started.output


def test_the_playbook_schema_at_its_url_and_from_the_cli(app, runner):
    served = app.test_client().get(json_schema.SCHEMA_PATH)  # no login: editors fetch it
    # its $id is the URL it is served at, under the deployment's ABM_BASE_URL
    assert served.status_code == 200
    assert served.get_json()["$id"] == app.config["BASE_URL"] + "/api/v1/playbook-schema.json"
    printed = runner.invoke(args=["playbook", "schema"])
    assert printed.exit_code == 0 and json.loads(printed.output) == served.get_json()
    assert "wait_until" in served.get_json()["$defs"]["step"]["properties"]
