"""``abm connectors list`` and ``abm connectors test NAME`` against real local servers."""

from __future__ import annotations

import logging
import socket

from abm.services import connectors as service
from tests.connectors.fakes.generic import generic_app
from tests.connectors.fakes.slack import slack_app
from tests.connectors.harness import serve

HOOK_SECRET = "cli-hook-secret-0123456789"
SLACK_TOKEN = "WRONGTOKEN1234567890"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_list(runner):
    assert "no connector is configured" in runner.invoke(args=["connectors", "list"]).output
    service.ensure_demo_connectors()
    service.update("log", {"rate_limit": "600/60"})
    lines = runner.invoke(args=["connectors", "list"]).output.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CHANNELS", "ENABLED", "DEFAULT", "FOR", "RATE", "LIMIT",
                                "UNIT", "COST"]
    assert lines[1].split() == ["log", "log", "email,ads,alert,task,webhook,crm", "yes",
                                "ads,alert,task,webhook", "600/60", "0"]
    assert lines[2].split() == ["outbox", "outbox", "email,alert", "yes", "email", "1000/1", "0"]


def test_reachable_unreachable_and_bad_key(runner, caplog):
    caplog.set_level(logging.DEBUG)
    with serve(generic_app(200, "ok")) as receiver:
        service.create({"type": "webhook", "name": "hook",
                        "settings": {"url": receiver.base_url + "/in", "secret": HOOK_SECRET}})
        result = runner.invoke(args=["connectors", "test", "hook"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("hook: ok: the webhook answered HTTP 200")
        assert len(receiver.requests) == 1 and receiver.requests[0].headers.get("Webhook-Signature")

    service.update("hook", {"settings": {"url": f"http://127.0.0.1:{closed_port()}/in", "secret": HOOK_SECRET}})
    result = runner.invoke(args=["connectors", "test", "hook"])
    assert result.exit_code == 1
    assert "hook: test failed:" in result.output and "could not connect to" in result.output
    assert "Traceback" not in result.output

    with serve(slack_app()) as slack:
        service.create({"type": "slack", "name": "sales-alerts", "settings": {
            "webhook_url": f"https://hooks.slack.com/services/T000/B000/{SLACK_TOKEN}", "base_url": slack.base_url}})
        result = runner.invoke(args=["connectors", "test", "sales-alerts"])
    assert result.exit_code == 1
    assert "sales-alerts: test failed:" in result.output and "revoked or is wrong" in result.output
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("abm", "connectors")))
    for secret in (HOOK_SECRET, SLACK_TOKEN):
        assert secret not in result.output and secret not in ours

    unknown = runner.invoke(args=["connectors", "test", "nope"])
    assert unknown.exit_code == 1 and "no connector named 'nope' (configured: hook, sales-alerts)" in unknown.output


def test_the_api_test_endpoint_answers_in_a_sentence(api):
    with serve(generic_app(401, '{"message": "bad credentials"}')) as receiver:
        admin = api("admin")
        admin.post("/api/v1/connectors", json={"type": "webhook", "name": "hook", "settings": {
            "url": receiver.base_url + "/in", "secret": HOOK_SECRET}})
        answer = admin.post("/api/v1/connectors/hook/test")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["ok"] is False and "bad credentials" in body["message"]
    assert admin.post("/api/v1/connectors/nope/test").status_code == 404
