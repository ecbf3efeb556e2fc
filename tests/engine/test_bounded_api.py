"""Bounded work over HTTP: plan and validate answer whatever they are given, each limit
located; bodies over their limit are a 413 that says which limit, before being read."""

from __future__ import annotations

import io

import pytest

from abm.services import dry_run
from abm.services import playbooks as service
from tests.engine.conftest import make_account

PLAYBOOK = """version: 1
key: bounded-api
name: Bounded
audience:
  where: {tier: [1]}
holdout: 0%%
steps:
  - id: invite
    email:
      to: {titles: ["%(title)s"]}
      subject: "Hi {{ account.name }}"
      body: "%(body)s"
"""


def _post_yaml(client, path, text):
    return client.post(f"/api/v1{path}", data=text.encode(), content_type="application/yaml")


@pytest.mark.timeout(60)
def test_plan_with_a_catastrophic_title_pattern_answers(app, api, sent_log):
    make_account("Alpha", contacts=(("decision_maker", "a" * 40 + "x"), ("champion", "VP Z")))
    plan = _post_yaml(api("ae"), "/playbooks/plan", PLAYBOOK % {"title": "(.|.)*Z", "body": "<p>Hi</p>"})
    assert plan.status_code == 200, plan.get_json()
    assert plan.get_json()["steps"][0]["touches"] == 1
    assert plan.get_json()["rendered"][0]["contact"] == "c1@alpha.example"


@pytest.mark.timeout(60)
def test_validate_and_plan_name_the_loop_limit_and_the_line(app, api, sent_log):
    make_account("Alpha")
    body = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    source = PLAYBOOK % {"title": "CISO", "body": body}
    ae = api("ae")
    for path in ("/playbooks/validate", "/playbooks/plan"):
        answer = _post_yaml(ae, path, source)
        assert answer.status_code == 422, answer.get_json()
        [detail] = answer.get_json()["error"]["details"]
        assert (detail["line"], detail["path"]) == (12, "steps[0].email.body")
        assert "10,000 iterations" in detail["message"]


class _Endless(io.RawIOBase):
    """A request body of ``size`` bytes made as it is read (never held whole)."""

    def __init__(self, size: int):
        self.size, self.position, self.served = size, 0, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.position

    def seek(self, offset, whence=0):
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = b"a" * n
        self.position += n
        self.served += n
        return n


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path, content_type, limit", [
    ("/api/v1/playbooks/validate", "application/yaml", 256 * 1024),
    ("/api/v1/events", "application/json", 4 * 1024 * 1024),
])
def test_a_200_mb_body_is_a_located_413_before_it_is_read(app, api, path, content_type, limit):
    size = 200 * 1024 * 1024
    body = _Endless(size)
    answer = api("admin").post(path, input_stream=body, content_length=size, content_type=content_type)
    assert answer.status_code == 413
    error = answer.get_json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["details"] == [{"path": "(body)", "message": f"the body may be at most {limit:,} bytes"}]
    assert body.served == 0


def test_a_json_body_just_over_its_limit_is_refused(app, api):
    events = [{"type": "web_visit", "email": "a@alpha.example", "url": "https://x.example/" + "p" * 5000}] * 1000
    answer = api("admin").post("/api/v1/events", json={"events": events})
    assert answer.status_code == 413


HOSTILE = """version: 1
key: hostile
name: Hostile for some accounts
audience:
  where: {tier: [1]}
holdout: 0%
steps:
  - id: invite
    email:
      to: {roles: [decision_maker]}
      subject: "Hi {{ account.name }}"
      body: "{% if account.name.startswith('Slow') %}%(heavy)s{% endif %}<p>Hi</p>"
  - wait: 2d
  - id: again
    email:
      to: {roles: [decision_maker]}
      subject: "Again"
      body: "<p>Again</p>"
"""
#: Each render of this runs until the sandbox's time limit (1 s); the sample account
#: validation renders against is not "Slow", so the playbook validates.
SLOW = "{% for i in range(9000) %}{{ ('ab' * 130000)|replace('a', 'c')|length }}{% endfor %}"
LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"


@pytest.mark.timeout(60)
def test_a_plan_that_runs_out_of_time_says_which_limit_and_the_step_and_line(app, api, sent_log, monkeypatch):
    monkeypatch.setattr(service, "PLAN_SECONDS", 2.0)
    for i in range(6):
        make_account(f"Slow{i}")
    answer = _post_yaml(api("ae"), "/playbooks/plan", HOSTILE.replace("%(heavy)s", SLOW))
    assert answer.status_code == 200, answer.get_json()
    plan = answer.get_json()
    limit = plan["limit"]
    assert (limit["limit"], limit["value"], limit["file"], limit["step"], limit["line"]) == \
        ("time", "2 s", "playbook.yaml", "invite", 8)
    assert any("step 'invite' (playbook.yaml, line 8): time limit: the whole plan of 2 s" in w
               for w in plan["warnings"])
    # what the deadline stopped is undercounted, never reported as failed touches
    assert not any("altogether" in reason for reason in plan["steps"][0]["failed"])


def test_a_huge_audience_is_simulated_on_an_evenly_spread_sample_and_says_so(app, api, sent_log, monkeypatch):
    monkeypatch.setattr(dry_run, "MAX_SIMULATED_ACCOUNTS", 3)
    for i in range(9):
        make_account(f"Acme{i}")
    answer = _post_yaml(api("ae"), "/playbooks/plan", HOSTILE.replace("%(heavy)s", ""))
    assert answer.status_code == 200, answer.get_json()
    plan = answer.get_json()
    assert (plan["entering"], plan["simulated"], plan["steps"][0]["touches"]) == (9, 3, 3)
    assert plan["limit"] is None
    assert any("3 of the 9 entering accounts are simulated" in w and "account limit" in w for w in plan["warnings"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["/playbooks/validate", "/playbooks/plan"])
def test_a_playbook_of_very_many_steps_is_a_located_422(app, api, path):
    steps = "".join(f"  - wait: {i + 1}d\n" for i in range(150))
    answer = _post_yaml(api("ae"), path, HOSTILE.split("  - id: invite")[0] + steps)
    assert answer.status_code == 422
    [detail] = answer.get_json()["error"]["details"]
    assert detail["line"] == 108 and "at most 100 steps (step limit)" in detail["message"]
