"""`abm metrics`: what operators scrape, after real sends and a retry (Prometheus' text format,
parsed back with prometheus_client's own parser)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from abm.commands.metrics import registry_for
from abm.services import playbooks as service
from tests.engine.conftest import make_account
from workers import dispatcher

PLAYBOOK = """version: 1
key: seen
name: Seen
audience:
  where: {tier: [1]}
steps:
  - id: hello
    email: {to: {roles: [decision_maker]}, subject: "Hi", body: "<p>Hi</p>"}
"""


def _scrape(app) -> dict:
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry_for(app)).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_sent_touches_lag_and_queue_depth_are_scraped(app, sent_log, clock, worker):
    for i in range(3):
        make_account(f"M{i}")
    service.apply(PLAYBOOK)
    service.activate("seen", now=clock())
    dispatcher.dispatch(now=clock())
    before = _scrape(app)
    assert before[("abm_queue_depth", (("queue", "touches"),))] == 1
    worker()
    after = _scrape(app)
    assert after[("abm_touches_sent_total", (("connector", "log"),))] == 3
    assert after[("abm_touch_lag_seconds_count", ())] == 3
    assert after[("abm_queue_depth", (("queue", "touches"),))] == 0
    assert after[("abm_drain_backlog", ())] == 0
