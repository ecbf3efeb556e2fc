"""The ``slack`` connector: sales alerts posted to a Slack incoming webhook.

``POST`` JSON ``{"text", "blocks"}`` to the webhook URL; ``text`` is the alert message
(also the notification fallback), the blocks add the account and playbook. The URL
is the secret (``webhook_url``, writeOnly) and never appears in a message: errors name
only Slack's host. ``base_url``, when set to something other than Slack's own host,
replaces the scheme and host of the webhook URL (the path, which carries the token,
is kept): that is how tests and proxies point the connector elsewhere.

Slack answers 200 ``ok``. Its errors are plain strings: ``invalid_payload`` (400) fails
that alert only; ``action_prohibited`` (403), ``channel_not_found`` (404),
``channel_is_archived`` (410) and a revoked URL (``invalid_token``, ``no_service``)
fail the batch permanently; 429 is retried after ``Retry-After``; 5xx and timeouts
are retryable. Slack accepts about one message a second: ``rate_limit`` is (1, 1) and
a batch of several alerts is paced at one a second.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from connectors.base import (
    Connector,
    ConnectorError,
    PermanentError,
    Touch,
    TouchResult,
    finish_after_error,
)
from connectors.http import HttpClient

DEFAULT_BASE_URL = "https://hooks.slack.com"
SECTION_LIMIT = 3000

#: Slack's plain-string errors that mean the webhook itself can no longer post.
WEBHOOK_ERRORS = {
    "action_prohibited": "an admin has restricted posting to this channel",
    "channel_not_found": "the webhook's channel no longer exists; create a new incoming webhook",
    "channel_is_archived": "the webhook's channel is archived; unarchive it or create a new webhook",
    "invalid_token": "the webhook URL was revoked or is wrong; paste a new one",
    "no_service": "the webhook URL was revoked or is wrong; paste a new one",
    "no_team": "the webhook URL was revoked or is wrong; paste a new one",
    "team_disabled": "the Slack workspace is disabled",
    "no_active_hooks": "the webhook was disabled; enable it or create a new one",
}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackConnector(Connector):
    type = "slack"
    channels = ("alert",)
    max_batch = 10
    rate_limit = (1, 1)
    #: Seconds between two posts of one batch (Slack's one message a second).
    min_interval: float = 1.0
    settings_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Slack incoming webhook",
        "properties": {
            "webhook_url": {"type": "string", "format": "uri", "pattern": "^https?://", "writeOnly": True,
                            "description": "The incoming webhook's URL (https://hooks.slack.com/services/...)."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": 10},
            "base_url": {"type": "string", "format": "uri", "default": DEFAULT_BASE_URL},
        },
        "required": ["webhook_url"],
        "additionalProperties": False,
    }

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"webhook_url": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX", "base_url": base_url}

    def target(self) -> str:
        url = self.settings["webhook_url"]
        base = (self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        if base == DEFAULT_BASE_URL:
            return url
        parts = urlsplit(url)
        return base + parts.path + (f"?{parts.query}" if parts.query else "")

    def client(self) -> HttpClient:
        timeout = float(self.settings.get("timeout", 10))
        url = self.settings.get("webhook_url", "")
        return HttpClient("Slack", self.target(), secrets=[url, urlsplit(url).path],
                          timeout=(min(5.0, timeout), timeout))

    @staticmethod
    def message_for(touch: Touch) -> dict[str, Any]:
        message = str(touch.payload.get("message") or "").strip()
        account = touch.account or {}
        facts = [f"*{_escape(str(account.get('name') or account.get('domain') or 'account'))}*"]
        if account.get("domain") and account.get("name"):
            facts.append(_escape(str(account["domain"])))
        if touch.payload.get("to"):
            facts.append(f"for {_escape(str(touch.payload['to']))}")
        if touch.playbook.get("name"):
            facts.append(f"playbook {_escape(str(touch.playbook['name']))}")
        section = message if len(message) <= SECTION_LIMIT else message[: SECTION_LIMIT - 1] + "…"
        return {
            "text": message,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": section}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]},
            ],
        }

    def _post(self, client: HttpClient, body: dict[str, Any]) -> str | None:
        """Post one message; None on success, Slack's error string for a per-message refusal."""
        response = client.post("", json=body, expect=(200, 400), classify=self._classify)
        answer = response.text.strip()
        if response.status_code == 200 and answer == "ok":
            return None
        return answer or f"HTTP {response.status_code}"

    @staticmethod
    def _classify(response: Any) -> ConnectorError | None:
        answer = response.text.strip()
        if response.status_code != 429 and answer in WEBHOOK_ERRORS:
            return PermanentError(f"Slack refused the webhook ({answer}): {WEBHOOK_ERRORS[answer]}")
        return None

    def send(self, batch: list[Touch]) -> list[TouchResult]:
        results: list[TouchResult] = []
        with self.client() as client:
            last = 0.0
            for index, touch in enumerate(batch):
                if not str(touch.payload.get("message") or "").strip():
                    results.append(TouchResult.failure(touch, f"touch {touch.key}: the alert has no message"))
                    continue
                wait = self.min_interval - (time.monotonic() - last)
                if last and wait > 0:
                    time.sleep(wait)
                try:
                    error = self._post(client, self.message_for(touch))
                except ConnectorError as exc:
                    return finish_after_error(results, batch[index:], exc)
                last = time.monotonic()
                results.append(TouchResult.success(touch) if error is None else
                               TouchResult.failure(touch, f"Slack refused the message ({error})"))
        return results

    def test(self) -> str:
        body = {"text": f"ABM connector test: '{self.name}' can post alerts here."}
        with self.client() as client:
            error = self._post(client, body)
        if error is not None:
            raise PermanentError(f"Slack refused the test message ({error})")
        return "posted a test message to the webhook's channel"
