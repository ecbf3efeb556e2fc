"""The connector contract.

A connector gets plain data (a batch of touches, already rendered) and returns one
result per touch. It never touches the database and never imports ``abm``: the
workers load the touches, call ``send`` and record the results.

Errors: a connector raises :class:`RetryableError` when the whole batch should be
tried again later (429, 5xx, timeouts, a list that is not ready yet) and
:class:`PermanentError` when the whole batch can never succeed (401, a bad account
id). Per-touch failures inside a batch that otherwise went through are returned as
results with ``ok=False`` and ``permanent`` set accordingly. A connector never
swallows an error and never logs a secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: The channels a connector can serve. Playbook steps map to them:
#: email -> email, audience -> ads, alert -> alert, task -> task, webhook -> webhook.
#: ``crm`` is for connectors that sync stages and opportunities in.
CHANNELS = ("email", "ads", "alert", "task", "webhook", "crm")

USER_AGENT = "abm-orchestrator/0.1 (+https://github.com/abm-orchestrator)"


class ConnectorError(Exception):
    """Base of every error a connector raises; the message is shown to a person."""


class RetryableError(ConnectorError):
    """The batch may succeed later: rate limited, provider down, timeout, not ready."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """The batch can never succeed as it is: bad credentials, bad ids, bad payload."""


class PayloadError(PermanentError):
    """A webhook body that cannot be taken as it is; ``problems`` locate each fault
    (``{"path": "data[2].attributes.time", "message": ...}``) for the sender's 4xx."""

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class Touch:
    """One rendered touch, as the worker hands it to a connector.

    ``kind`` is the playbook step action (email, audience, alert, task, webhook).
    ``payload`` holds what the step rendered, by kind:

    - email: ``subject``, ``html``, ``text``, ``from`` (optional), ``headers`` (dict:
      List-Unsubscribe and friends), ``unsubscribe_url``
    - audience: ``list`` (list name), ``action`` (add | remove)
    - alert: ``to`` (an email or "owner" already resolved to an email), ``message``
    - task: ``to``, ``title``, ``due`` (ISO date or None)
    - webhook: ``payload`` (the rendered mapping)

    ``account`` and ``contact`` are plain dicts of the record's fields (contact is
    None for account-level touches). ``key`` is a stable idempotency key
    (enrollment:step:contact) that connectors pass to providers that accept one.
    """

    id: int
    kind: str
    channel: str
    account: Mapping[str, Any]
    contact: Mapping[str, Any] | None
    payload: Mapping[str, Any]
    key: str
    playbook: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TouchResult:
    touch_id: int
    ok: bool
    provider_id: str | None = None
    error: str | None = None
    permanent: bool = True

    @classmethod
    def success(cls, touch: Touch, provider_id: str | None = None) -> TouchResult:
        return cls(touch.id, True, provider_id=provider_id)

    @classmethod
    def failure(cls, touch: Touch, error: str, permanent: bool = True) -> TouchResult:
        return cls(touch.id, False, error=error, permanent=permanent)


@dataclass(frozen=True)
class InboundEvent:
    """An engagement event or a CRM change that a webhook or a poll brought in.

    ``type`` is an engagement event type (email_open, email_click, email_bounce,
    unsubscribe, spam_report, email_delivered, ...) or, for CRM changes,
    ``stage_changed`` / ``opportunity``. Identification is by ``email``,
    ``account_domain`` or ``crm_id``; ``properties`` holds the rest.
    """

    type: str
    occurred_at: str  # ISO 8601 with offset
    email: str | None = None
    account_domain: str | None = None
    crm_id: str | None = None
    url: str | None = None
    touch_id: int | None = None
    dedup_key: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ConnectorContext:
    """What the product tells a connector about itself, beyond its settings."""

    base_url: str = "http://127.0.0.1:5000"
    outbox_dir: str | None = None
    state: dict[str, Any] = field(default_factory=dict)  # persisted by the caller (cursors, list ids)


class Connector:
    """Base class of every connector type.

    Subclasses declare the class attributes and implement ``send`` and ``test``.
    ``settings_schema`` is a JSON Schema (draft 2020-12) of the settings; secret
    fields carry ``"writeOnly": true`` and are stored encrypted, shown masked.
    """

    type: ClassVar[str]
    channels: ClassVar[tuple[str, ...]]
    settings_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}, "additionalProperties": False}
    #: The most touches one ``send`` carries, which is one provider call (one request, one
    #: SMTP message): the workers record results after each ``send``, so after a crash
    #: at most this many touches can reach the provider twice (docs/engine.md).
    max_batch: ClassVar[int] = 100
    #: (calls, per seconds): the provider's documented pace, the default rate limit. Every
    #: ``send`` takes one call from a token bucket shared by all workers.
    rate_limit: ClassVar[tuple[int, int]] = (10, 1)
    #: True for connectors that accept inbound webhooks at /hooks/{name}.
    accepts_webhooks: ClassVar[bool] = False

    def __init__(self, name: str, settings: Mapping[str, Any], context: ConnectorContext | None = None):
        self.name = name
        self.settings = dict(settings)
        self.context = context or ConnectorContext()

    # -- outbound ---------------------------------------------------------------
    def send(self, batch: list[Touch]) -> list[TouchResult]:
        raise NotImplementedError

    def test(self) -> str:
        """Make a harmless real call; return a short success text or raise ConnectorError."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what ``send`` kept open between calls (a connection); the workers call it
        after the last call of a job."""

    def rate_scope(self) -> str | None:
        """What the provider counts calls against when it is shared between connectors (a
        Slack channel, a Meta ad account); None: this connector alone."""
        return None

    def rate_scope_of(self, call: list[Touch]) -> str | None:
        """What the provider counts this one call against, when that depends on the call (a
        Slack bot's direct message counts against its own conversation); by default the
        connector's :meth:`rate_scope`. The workers take the call's token from that bucket."""
        return self.rate_scope()

    # -- inbound ----------------------------------------------------------------
    def verify_webhook(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        """Raise PermanentError when the request's signature is missing, forged or stale."""
        raise PermanentError(f"connector type {self.type!r} does not accept webhooks")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[InboundEvent]:
        raise PermanentError(f"connector type {self.type!r} does not accept webhooks")

    # -- helpers ----------------------------------------------------------------
    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any] | None:
        """Valid settings that point this connector at ``base_url``, or None.

        The shared contract test (tests/connectors/test_contract.py) uses it for every
        type that speaks HTTP: it validates these settings against ``settings_schema``,
        then calls ``test()`` against a local fake that answers every request with 401
        (expects :class:`PermanentError`) and then 503 (expects :class:`RetryableError`).
        Connectors that speak HTTP override it; the others keep ``None``.
        """
        return None

    @classmethod
    def secret_fields(cls) -> list[str]:
        props = cls.settings_schema.get("properties", {})
        return [k for k, v in props.items() if v.get("writeOnly")]


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever the case of its name in ``headers`` (a plain dict or not)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def finish_after_error(
    done: list[TouchResult], rest: list[Touch], error: ConnectorError
) -> list[TouchResult]:
    """End a batch that failed part-way with a batch-wide error.

    When nothing was sent yet the error is raised, so the whole batch is retried (or
    failed) as one. Once some touches went out, raising would send them twice, so the
    results so far are returned with one failure per remaining touch instead (retryable
    when the error is).
    """
    if not done:
        raise error
    permanent = not isinstance(error, RetryableError)
    return done + [TouchResult.failure(t, str(error), permanent=permanent) for t in rest]


def normalize_email(email: str) -> str:
    return email.strip().lower()


def hash_identifier(value: str) -> str:
    """Trim, lowercase, SHA-256, 64 lowercase hex characters (all ad platforms)."""
    return hashlib.sha256(normalize_email(value).encode("utf-8")).hexdigest()


def hash_phone(phone: str) -> str:
    """E.164 digits (a leading + and digits only), then SHA-256."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return hashlib.sha256(("+" + digits).encode("ascii")).hexdigest()
