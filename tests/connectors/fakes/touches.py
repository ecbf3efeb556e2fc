"""Touches as the worker would hand them to a connector."""

from __future__ import annotations

import itertools
from typing import Any

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
