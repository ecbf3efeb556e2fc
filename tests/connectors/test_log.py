"""The log connector records every touch, in memory and as JSON lines."""

from __future__ import annotations

import json

from connectors.log import LogConnector
from tests.connectors.fakes.touches import alert_touch, email_touch, webhook_touch


def test_records_every_touch_of_every_channel_and_succeeds(tmp_path):
    LogConnector.clear("log-a")
    path = tmp_path / "sent.jsonl"
    conn = LogConnector("log-a", {"path": str(path)})
    touches = [email_touch("x@acme.example"), alert_touch(), webhook_touch()]
    results = conn.send(touches)

    assert all(r.ok for r in results)
    assert [r.touch_id for r in results] == [t.id for t in touches]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["key"] for line in lines] == [t.key for t in touches]
    assert lines[0]["to"] == "x@acme.example" and lines[1]["to"] == "ae@seller.example"
    assert lines[2]["payload"]["payload"]["event"] == "hot_account"
    assert [r["kind"] for r in LogConnector.recorded("log-a")] == ["email", "alert", "webhook"]


def test_memory_keeps_the_last_n_per_connector_name_across_instances():
    LogConnector.clear("log-b")
    for _ in range(3):
        LogConnector("log-b", {"keep": 2}).send([email_touch()])
    LogConnector("log-other", {}).send([email_touch()])
    assert len(LogConnector.recorded("log-b")) == 2
    assert len(LogConnector.recorded("log-other")) >= 1


def test_test_reports_where_records_go(tmp_path):
    assert "memory" in LogConnector("l", {}).test()
    assert str(tmp_path / "x.jsonl") in LogConnector("l", {"path": str(tmp_path / "x.jsonl")}).test()
