"""`abm metrics`: what operators scrape, after real sends and a retry (Prometheus' text format,
parsed back with prometheus_client's own parser)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

import connectors.registry as registry
from abm import telemetry
from abm.commands.metrics import registry_for
from abm.db import db
from abm.models import Touch
from abm.redis_conn import get_redis
from abm.services import alerts, connectors, delivery, events
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


FAULTS = """version: 1
key: every-series
name: Every series
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    email: {connector: paced, to: {roles: [decision_maker]}, subject: "Hi", body: "<p>Hi</p>"}
  - id: notify
    webhook: {connector: busy, payload: {n: 1}}
  - id: call
    task: {connector: refused, to: owner, title: "Call {{ account.name }}"}
"""


@pytest.fixture
def test_types(app):
    registry.BUILTIN.update(slowlog="tests.engine.slow_connector:SlowLogConnector",
                            flaky="tests.engine.slow_connector:FlakyConnector")
    registry.reset_cache()
    yield
    for name in ("slowlog", "flaky"):
        registry.BUILTIN.pop(name, None)
    registry.reset_cache()


def test_every_series_abm_metrics_exposes_moves_with_what_the_engine_did(
        app, sent_log, clock, worker, make_user, test_types, tmp_path):
    """Each of the families (queue depth, sent, failed, retried, postponed, the lag
    histogram, the drain's backlog, leases recovered, rate-limit waits and their seconds)
    counts a real event of the engine: nothing is read from a fixture."""
    get_redis().delete(telemetry.COUNTS_KEY, telemetry.LAG_KEY, telemetry.WAITS_KEY, telemetry.RECOVERED_KEY)
    for name, kind, extra in (("paced", "slowlog", {"rate_limit": "1/1", "settings": {"path": str(tmp_path / "p"),
                                                                                        "delay": 0}}),
                              ("busy", "flaky", {"settings": {"path": str(tmp_path / "b"), "mode": "retryable"}}),
                              ("refused", "flaky", {"settings": {"path": str(tmp_path / "r"), "mode": "permanent"}})):
        connectors.create({"type": kind, "name": name, **extra})
    owner = make_user("ae", email="ae@seller.example")
    accounts = [make_account(f"M{i}", owner=owner) for i in range(6)]
    service.apply(FAULTS)
    service.activate("every-series", now=clock())
    # Four intent alerts for one account: alerts.cap (3 a day) postpones the fourth.
    alerts.on_intent([{"type": "intent", "account_id": accounts[0].id, "occurred_at": clock(),
                       "properties": {"topic": t, "score": 90}} for t in ("a", "b", "c", "d")], clock())
    dispatcher.dispatch(now=clock())
    events.push([{"type": "web_visit", "occurred_at": clock().isoformat(), "email": "x@m0.example",
                  "url": "https://m0.example/"}])
    before = _scrape(app)
    assert before[("abm_queue_depth", (("queue", "touches"),))] >= 4  # paced, busy, refused, the alerts
    assert before[("abm_drain_backlog", ())] == 1
    assert before[("abm_touches_postponed", (("connector", "log"),))] == 1

    # A worker took the six emails and died: recovery hands them on once the lease is out.
    emails = sorted(db.session.execute(select(Touch.id).where(Touch.connector == "paced")).scalars())
    assert len(delivery.claim_rows(emails, clock(), ("id",))) == 6
    db.session.commit()
    clock.advance(delivery.lease() + timedelta(seconds=1))
    assert dispatcher.recover(now=clock()) == 6
    worker()

    after = _scrape(app)
    labels = (("connector", "paced"),)
    assert after[("abm_touches_sent_total", labels)] == 6
    assert after[("abm_touches_sent_total", (("connector", "log"),))] == 3  # the alerts not postponed
    assert after[("abm_touches_retried_total", (("connector", "busy"),))] == 6
    assert after[("abm_touches_failed_total", (("connector", "refused"),))] == 6
    assert after[("abm_touch_lag_seconds_count", ())] == 9
    assert after[("abm_touch_lag_seconds_bucket", (("le", "+Inf"),))] == 9
    assert after[("abm_touch_lag_seconds_sum", ())] >= 6 * delivery.lease().total_seconds()  # the emails' wait
    assert after[("abm_leases_recovered_total", ())] == 6
    # 1/1 and five touches a call: the second call of the six emails waited for its token.
    assert after[("abm_ratelimit_waits_total", labels)] >= 1
    assert after[("abm_ratelimit_wait_seconds_total", labels)] > 0.5
    assert after[("abm_queue_depth", (("queue", "touches"),))] == 0
    assert after[("abm_drain_backlog", ())] == 1
    assert after[("abm_touches_postponed", (("connector", "log"),))] == 1
    families = {name for name, _ in after}
    assert {f"abm_{n}" for n in ("queue_depth", "touches_sent_total", "touches_failed_total", "touches_retried_total",
                                 "touches_postponed", "touch_lag_seconds_count", "drain_backlog",
                                 "leases_recovered_total", "ratelimit_waits_total",
                                 "ratelimit_wait_seconds_total")} <= families
