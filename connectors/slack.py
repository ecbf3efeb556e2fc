"""The ``slack`` connector: sales alerts in Slack, by incoming webhook or by bot token.

Two modes, by the settings given:

- **Incoming webhook** (``webhook_url``, the simple mode): ``POST`` JSON ``{"text",
  "blocks"}`` to the webhook URL; the owner is named by email in the message's context
  line. The URL is the secret and never appears in a message: errors name only Slack's
  host. ``base_url``, when set to something other than Slack's own host, replaces the
  scheme and host of the webhook URL (the path, which carries the token, is kept).
  Slack answers 200 ``ok``; its errors are plain strings: ``invalid_payload`` (400)
  fails that alert only; ``action_prohibited`` (403), ``channel_not_found`` (404),
  ``channel_is_archived`` (410) and a revoked URL (``invalid_token``, ``no_service``)
  fail the batch permanently.
- **Bot token** (``bot_token``, scopes ``chat:write`` and ``users:read.email``; plus
  ``im:write`` for direct messages): the owner (the alert's ``to``, an email) is looked
  up with ``users.lookupByEmail``. With ``deliver_to: channel`` the alert is posted to
  ``channel`` with the owner mentioned (``<@U123>``, a notification for them); with
  ``deliver_to: direct_message`` it is sent to the owner alone (``conversations.open``,
  then ``chat.postMessage``), or to ``channel`` when Slack knows no user with that email
  (and fails that alert when there is no channel). The Web API answers 200 with
  ``{"ok": false, "error"}`` for its errors: ``invalid_auth``, ``not_authed``,
  ``account_inactive``, ``token_revoked``, ``missing_scope``, ``channel_not_found``,
  ``not_in_channel`` and ``is_archived`` fail the batch permanently, others that alert.

Text is escaped as Slack asks ("Formatting text for app surfaces": ``&``, ``<`` and ``>``
become ``&amp;``, ``&lt;`` and ``&gt;``), so an alert saying ``<!channel>`` or
``<https://x|y>`` shows those characters instead of pinging or linking. 429 is retried
after ``Retry-After``; 5xx and timeouts are retryable. Slack accepts about one message
a second: ``rate_limit`` is (1, 1) and a batch of several alerts is paced at one a second.
"""

from __future__ import annotations

import hashlib
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
from connectors.http import HttpClient, excerpt

DEFAULT_BASE_URL = "https://hooks.slack.com"
DEFAULT_API_URL = "https://slack.com/api"
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

#: Web API errors that no alert of the batch can get past.
BOT_ERRORS = {
    "invalid_auth": "the bot token is wrong; paste a valid one",
    "not_authed": "the bot token is missing; paste one",
    "account_inactive": "the bot's account is deactivated",
    "token_revoked": "the bot token was revoked; paste a new one",
    "token_expired": "the bot token expired; paste a new one",
    "missing_scope": "the bot lacks a scope (chat:write, users:read.email, and im:write for direct messages)",
    "channel_not_found": "the channel does not exist or the bot cannot see it; check channel",
    "not_in_channel": "the bot is not in the channel; invite it (/invite @bot)",
    "is_archived": "the channel is archived",
}


def _digest(secret: str) -> str:
    """A short name for a secret (a webhook URL, a token) that does not reveal it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def escape(text: str) -> str:
    """Slack's control characters escaped, so that text shows as written (no mention, no link)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackConnector(Connector):
    type = "slack"
    channels = ("alert",)
    #: One message a call: Slack takes no idempotency key, so a crash repeats at most one.
    max_batch = 1
    rate_limit = (1, 1)
    #: Seconds between two posts of one batch (Slack's one message a second).
    min_interval: float = 1.0
    settings_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Slack (incoming webhook, or a bot token)",
        "properties": {
            "webhook_url": {"type": "string", "format": "uri", "pattern": "^https?://", "writeOnly": True,
                            "description": "Simple mode: the incoming webhook's URL "
                                           "(https://hooks.slack.com/services/...)."},
            "bot_token": {"type": "string", "pattern": "^xoxb-", "writeOnly": True,
                          "description": "Bot mode: a bot token (xoxb-...) with chat:write and users:read.email "
                                         "(and im:write for direct messages); the owner is mentioned or messaged."},
            "channel": {"type": "string", "minLength": 1,
                        "description": "Bot mode: the channel id (C0123...) alerts go to."},
            "deliver_to": {"enum": ["channel", "direct_message"], "default": "channel",
                           "description": "Bot mode: the channel with the owner mentioned, or a direct message "
                                          "to the owner."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": 10},
            "base_url": {"type": "string", "format": "uri", "default": DEFAULT_BASE_URL},
            "api_url": {"type": "string", "format": "uri", "pattern": "^https?://", "default": DEFAULT_API_URL,
                        "description": "Bot mode: Slack's Web API root; change it only for a test server."},
        },
        "anyOf": [{"required": ["webhook_url"]}, {"required": ["bot_token"]}],
        "additionalProperties": False,
    }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._users: dict[str, str | None] = {}

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"webhook_url": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX", "base_url": base_url}

    @property
    def bot(self) -> bool:
        return bool(self.settings.get("bot_token"))

    def target(self) -> str:
        url = self.settings["webhook_url"]
        base = (self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        if base == DEFAULT_BASE_URL:
            return url
        parts = urlsplit(url)
        return base + parts.path + (f"?{parts.query}" if parts.query else "")

    def rate_scope(self) -> str:
        """Slack counts messages per channel (about one a second each). An incoming webhook
        posts to one channel: connectors posting through the same webhook share a bucket. A
        bot counts per channel it posts to: its token and ``channel`` name the bucket, so two
        channels are paced apart (secrets are named by a digest only)."""
        if self.bot:
            return f"slack:bot:{_digest(self.settings['bot_token'])}:{self.settings.get('channel') or '-'}"
        return "slack:" + _digest(str(self.settings.get("webhook_url", "")))

    def rate_scope_of(self, call: list[Touch]) -> str:
        """A bot's direct message counts against the owner's own conversation (its bucket is
        the bot's and the owner's), unless Slack knew no user with that email (then it goes
        to ``channel``); everything else counts against :meth:`rate_scope`."""
        to = str((call[0].payload.get("to") if call else None) or "").strip().lower()
        if not (self.bot and self.settings.get("deliver_to") == "direct_message" and "@" in to):
            return self.rate_scope()
        if to in self._users and self._users[to] is None:
            return self.rate_scope()
        return f"slack:bot:{_digest(self.settings['bot_token'])}:dm:{_digest(to)}"

    def client(self) -> HttpClient:
        timeout = float(self.settings.get("timeout", 10))
        if self.bot:
            token = self.settings["bot_token"]
            return HttpClient("Slack", self.settings.get("api_url") or DEFAULT_API_URL, secrets=[token],
                              headers={"Authorization": f"Bearer {token}"}, timeout=(min(5.0, timeout), timeout))
        url = self.settings.get("webhook_url", "")
        return HttpClient("Slack", self.target(), secrets=[url, urlsplit(url).path],
                          timeout=(min(5.0, timeout), timeout))

    @staticmethod
    def message_for(touch: Touch, owner_id: str | None = None) -> dict[str, Any]:
        """Text and blocks of an alert; ``owner_id`` mentions the owner instead of naming their email."""
        message = escape(str(touch.payload.get("message") or "").strip())
        account = touch.account or {}
        facts = [f"*{escape(str(account.get('name') or account.get('domain') or 'account'))}*"]
        if account.get("domain") and account.get("name"):
            facts.append(escape(str(account["domain"])))
        if owner_id:
            facts.append(f"for <@{owner_id}>")
        elif touch.payload.get("to"):
            facts.append(f"for {escape(str(touch.payload['to']))}")
        if touch.playbook.get("name"):
            facts.append(f"playbook {escape(str(touch.playbook['name']))}")
        section = message if len(message) <= SECTION_LIMIT else message[: SECTION_LIMIT - 1] + "…"
        text = f"<@{owner_id}> {message}" if owner_id else message
        return {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": section}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]},
            ],
        }

    # -- incoming webhook ------------------------------------------------------------
    def _post(self, client: HttpClient, body: dict[str, Any]) -> str | None:
        """Post one message; None on success, Slack's error string for a per-message refusal."""
        response = client.post("", json=body, expect=(200, 400), classify=self._classify)
        answer = response.text.strip()
        if response.status_code == 200 and answer == "ok":
            return None
        return excerpt(answer, 100) or f"HTTP {response.status_code}"  # never a whole answer of whoever is there

    @staticmethod
    def _classify(response: Any) -> ConnectorError | None:
        answer = response.text.strip()
        if response.status_code != 429 and answer in WEBHOOK_ERRORS:
            return PermanentError(f"Slack refused the webhook ({answer}): {WEBHOOK_ERRORS[answer]}")
        return None

    # -- bot token -----------------------------------------------------------------------
    def _call(self, client: HttpClient, method: str, **fields: Any) -> dict[str, Any]:
        """One Web API call; its answer when ``ok``, else raise for batch-wide errors or return it."""
        if method == "users.lookupByEmail":  # a form, as Slack's SDK sends it
            answer = client.post(f"/{method}", data=fields).json()
        else:
            answer = client.post(f"/{method}", json=fields).json()
        error = answer.get("error") if isinstance(answer, dict) and not answer.get("ok") else None
        if error in BOT_ERRORS:
            raise PermanentError(f"Slack refused the bot's {method} ({error}): {BOT_ERRORS[error]}")
        return answer if isinstance(answer, dict) else {"ok": False, "error": "not JSON"}

    def _owner(self, client: HttpClient, email: Any) -> str | None:
        if not isinstance(email, str) or "@" not in email:
            return None
        key = email.strip().lower()
        if key not in self._users:
            found = self._call(client, "users.lookupByEmail", email=key)
            self._users[key] = (found.get("user") or {}).get("id") if found.get("ok") else None
        return self._users[key]

    def _post_as_bot(self, client: HttpClient, touch: Touch) -> str | None:
        owner = self._owner(client, touch.payload.get("to"))
        channel = self.settings.get("channel")
        if self.settings.get("deliver_to") == "direct_message" and owner:
            opened = self._call(client, "conversations.open", users=owner)
            if not opened.get("ok"):
                return str(opened.get("error"))
            channel, owner = opened["channel"]["id"], None  # a direct message needs no mention
        if not channel:
            return "no Slack user has the owner's email and no channel is set"
        answer = self._call(client, "chat.postMessage", channel=channel, **self.message_for(touch, owner))
        return None if answer.get("ok") else str(answer.get("error"))

    # -- the contract --------------------------------------------------------------------
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
                    error = (self._post_as_bot(client, touch) if self.bot
                             else self._post(client, self.message_for(touch)))
                except ConnectorError as exc:
                    return finish_after_error(results, batch[index:], exc)
                last = time.monotonic()
                results.append(TouchResult.success(touch) if error is None else
                               TouchResult.failure(touch, f"Slack refused the message ({error})"))
        return results

    def test(self) -> str:
        with self.client() as client:
            if self.bot:
                who = self._call(client, "auth.test")
                if not who.get("ok"):
                    raise PermanentError(f"Slack refused the bot token ({who.get('error')})")
                return f"the bot {who.get('user') or '?'} is signed in to {who.get('team') or 'its workspace'}"
            error = self._post(client, {"text": f"ABM connector test: '{self.name}' can post alerts here."})
        if error is not None:
            raise PermanentError(f"Slack refused the test message ({error})")
        return "posted a test message to the webhook's channel"
