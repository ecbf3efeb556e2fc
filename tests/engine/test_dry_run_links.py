"""The dry run shows what an email will look like without handing out real,
never-expiring unsubscribe links: the placeholders never unsubscribe anyone."""

from __future__ import annotations

import json
import re

from abm import tracking
from tests.engine.conftest import make_account

PLAYBOOK = """version: 1
key: links
name: Links
audience:
  where: {tier: [1]}
holdout: 0%
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Hello {{ account.name }}"
      body: '<p>Hi</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
"""


def test_the_plan_shows_placeholder_unsubscribe_links(app, api, sent_log):
    make_account("Alpha")
    plan = api("ae").post("/api/v1/playbooks/plan", data=PLAYBOOK.encode(), content_type="application/yaml")
    assert plan.status_code == 200, plan.get_json()
    [rendered] = plan.get_json()["rendered"]
    payload = rendered["rendered"]
    assert payload["unsubscribe_url"] == "http://abm.test/u/placeholder-not-a-real-link"
    assert 'href="http://abm.test/u/placeholder-not-a-real-link"' in payload["html"]
    assert "<http://abm.test/u/placeholder-not-a-real-link>" in payload["headers"]["List-Unsubscribe"]
    tokens = re.findall(r"/u/([A-Za-z0-9_.-]+)", json.dumps(payload))
    assert tokens and all(tracking.read_unsubscribe(token) is None for token in tokens)
