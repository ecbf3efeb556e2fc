"""Touches as the worker would hand them to a connector, and the settings checks the connector tests share."""

from __future__ import annotations

import itertools
import socket
from typing import Any

from jsonschema import Draft202012Validator

from connectors.base import Touch

_ids = itertools.count(1000)

ACCOUNT = {"id": 7, "name": "Acme Corp", "domain": "acme.example", "owner": "ae@seller.example"}


def email_touch(email: str = "jane@acme.example", *, html: str | None = None, text: str | None = None,
                subject: str = "Hello from us", tracking: dict | None = None, **payload: Any) -> Touch:
    touch_id = next(_ids)
    body = {
        "subject": subject,
        "html": html if html is not None else
        '<html><body><p>Hi Jane,</p><p>Read <a href="https://vendor.example/guide?a=1&amp;b=2">our guide</a>.</p>'
        '<p><a href="https://abm.example/u/TOKEN">Unsubscribe</a></p></body></html>',
        "unsubscribe_url": "https://abm.example/u/TOKEN",
    }
    if text is not None:
        body["text"] = text
    if tracking is not None:
        body["tracking"] = tracking
    body.update(payload)
    return Touch(
        id=touch_id, kind="email", channel="email", account=ACCOUNT,
        contact={"id": touch_id, "email": email, "first_name": "Jane", "last_name": "Doe"},
        payload=body, key=f"enr{touch_id}:step-1:{touch_id}",
        playbook={"key": "tier1", "name": "Tier 1"},
    )


def alert_touch(message: str = "Acme Corp is hot: 3 clicks today", to: str = "ae@seller.example") -> Touch:
    touch_id = next(_ids)
    return Touch(id=touch_id, kind="alert", channel="alert", account=ACCOUNT, contact=None,
                 payload={"to": to, "message": message}, key=f"enr{touch_id}:tell-ae:-",
                 playbook={"key": "tier1", "name": "Tier 1"})


def webhook_touch(payload: dict | None = None) -> Touch:
    touch_id = next(_ids)
    return Touch(id=touch_id, kind="webhook", channel="webhook", account=ACCOUNT, contact=None,
                 payload={"payload": payload or {"event": "hot_account", "domain": "acme.example"}},
                 key=f"enr{touch_id}:notify:-", playbook={"key": "tier1", "name": "Tier 1"})


def audience_touch(touch_id: int, list_name: str = "Target accounts", action: str = "add",
                   contacts: list[dict] | None = None, contact: dict | None = None, **account: Any) -> Touch:
    account = {"name": f"Company {touch_id}", "domain": f"company{touch_id}.com", "country": "US", **account}
    if contacts is not None:
        account["contacts"] = contacts
    return Touch(id=touch_id, kind="audience", channel="ads", account=account, contact=contact,
                 payload={"list": list_name, "action": action}, key=f"e{touch_id}:s1:")


def task_touch(touch_id: int, crm_id: str, title: str = "Call them", to: str | None = None,
               due: str | None = "2026-12-01", **account: Any) -> Touch:
    return Touch(id=touch_id, kind="task", channel="task",
                 account={"name": f"Company {touch_id}", "domain": f"company{touch_id}.com",
                          "crm_id": crm_id, **account},
                 contact=None, payload={"to": to, "title": title, "due": due}, key=f"e{touch_id}:s2:")


def closed_port_url() -> str:
    """A loopback URL nobody listens on (for 'unreachable host')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def schema_errors(cls, settings: dict) -> list[str]:
    validator = Draft202012Validator(cls.settings_schema)
    return [e.message for e in validator.iter_errors(settings)]


def assert_schema_shape(cls, valid: dict, secrets: set[str]) -> None:
    Draft202012Validator.check_schema(cls.settings_schema)
    assert cls.settings_schema["additionalProperties"] is False
    assert set(cls.secret_fields()) == secrets
    assert schema_errors(cls, valid) == []
    assert schema_errors(cls, {**valid, "surprise": 1}), "unknown keys must be errors"
    assert cls.settings_schema["properties"]["base_url"]["default"].startswith("https://")
