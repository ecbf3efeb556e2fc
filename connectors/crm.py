"""What the CRM connectors (hubspot, salesforce) share: stages, events, scores, cursors.

Stages in. A CRM has its own words for where an account stands (HubSpot's
``lifecyclestage``, a deal's ``dealstage``, a Salesforce Account field). The connector
setting ``stage_map`` translates them to the workspace's stages; :func:`map_stage`
applies it. Changes come back as :class:`~connectors.base.InboundEvent`:

- ``stage_changed``: ``crm_id`` (the company/Account id), ``account_domain`` when
  known, ``properties = {"source", "object", "crm_stage", "stage", "name"?}`` where
  ``stage`` is the mapped workspace stage or None when the map does not list it. A
  poll reports the current stage of every company modified since the cursor; the
  caller compares it with the stage it holds.
- ``opportunity``: ``crm_id`` (the deal/Opportunity id), ``account_domain`` of the
  associated company when known, ``properties = {"source", "name", "amount",
  "currency" (HubSpot), "crm_stage", "stage", "created_at", "close_date", "pipeline"
  (HubSpot), "is_closed", "is_won", "account_crm_id"}`` (upsert by ``crm_id``). A
  webhook's ``opportunity`` carries only ``crm_stage`` and ``stage``: upsert the keys
  present, keep the rest.

Scores out: ``write_scores(updates)`` takes ``[{"crm_id": str, "score": number,
"level": str}]`` and returns one :class:`WriteResult` per update, in order.

Engagement out, on the CRM's timeline of the company/Account:
``write_timeline(entries)`` takes ``[{"crm_id", "key", "subject", "body",
"occurred_at"}]`` (a digest of what marketing did and what the account did back,
written as a HubSpot note or a completed Salesforce Task) and returns one
:class:`WriteResult` per entry, in order.

Polling cursors are keyset watermarks (see :class:`Watermark`), so a poll that stops
half-way (page budget spent, or an error raised before the cursor is returned) resumes
without losing or repeating a record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.base import InboundEvent, PermanentError, RetryableError, TouchResult


@dataclass(frozen=True)
class ScoreUpdate:
    crm_id: str
    score: float
    level: str | None


@dataclass
class WriteResult:
    crm_id: str
    ok: bool
    error: str | None = None


def parse_score_updates(updates: Iterable[Mapping[str, Any]]) -> list[ScoreUpdate]:
    """Validate ``write_scores`` input; a malformed row is an error naming its index."""
    parsed: list[ScoreUpdate] = []
    for index, row in enumerate(updates):
        if not isinstance(row, Mapping):
            raise PermanentError(f"score update #{index}: expected an object, got {type(row).__name__}")
        unknown = set(row) - {"crm_id", "score", "level"}
        if unknown:
            raise PermanentError(f"score update #{index}: unknown keys {sorted(unknown)}")
        crm_id, score = row.get("crm_id"), row.get("score")
        if not isinstance(crm_id, str | int) or not str(crm_id).strip():
            raise PermanentError(f"score update #{index}: 'crm_id' is missing")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise PermanentError(f"score update #{index} ({crm_id}): 'score' must be a number")
        level = row.get("level")
        parsed.append(ScoreUpdate(str(crm_id).strip(), score, None if level is None else str(level)))
    return parsed


@dataclass(frozen=True)
class TimelineEntry:
    crm_id: str
    key: str  # stable per account and period: the same digest is never written twice
    subject: str
    body: str
    occurred_at: str  # ISO 8601 with offset


def parse_timeline_entries(entries: Iterable[Mapping[str, Any]]) -> list[TimelineEntry]:
    """Validate ``write_timeline`` input; a malformed entry is an error naming its index."""
    parsed: list[TimelineEntry] = []
    for index, row in enumerate(entries):
        if not isinstance(row, Mapping):
            raise PermanentError(f"timeline entry #{index}: expected an object, got {type(row).__name__}")
        missing = [k for k in ("crm_id", "key", "subject", "body", "occurred_at") if not str(row.get(k) or "").strip()]
        if missing:
            raise PermanentError(f"timeline entry #{index}: missing {', '.join(missing)}")
        parsed.append(TimelineEntry(str(row["crm_id"]).strip(), str(row["key"]), str(row["subject"]),
                                    str(row["body"]), iso_from_text(str(row["occurred_at"]))))
    return parsed


def account_crm_id(account: Mapping[str, Any], *names: str) -> str | None:
    """The account's id in this CRM: ``crm_id``, else ``crm_ids[name]`` for the first name found.

    The product keeps one id per CRM connector in ``Account.crm_ids`` (keyed by the
    connector's name); a touch's account dict may carry either form.
    """
    direct = account.get("crm_id")
    if direct not in (None, ""):
        return str(direct)
    ids = account.get("crm_ids")
    if isinstance(ids, Mapping):
        for name in names:
            if ids.get(name) not in (None, ""):
                return str(ids[name])
    return None


def owner_email(payload: Mapping[str, Any], account: Mapping[str, Any]) -> str | None:
    """Who a task is for: the payload's ``to`` when it is an email, else the account's owner."""
    for candidate in (payload.get("to"), account.get("owner")):
        if isinstance(candidate, str) and "@" in candidate:
            return candidate.strip().lower()
    return None


def map_stage(value: Any, stage_map: Mapping[str, str] | None) -> str | None:
    """The workspace stage for a CRM stage value: exact key first, then case-insensitive."""
    if value is None or value == "" or not stage_map:
        return None
    text = str(value)
    if text in stage_map:
        return stage_map[text]
    folded = text.strip().casefold()
    for key, stage in stage_map.items():
        if key.strip().casefold() == folded:
            return stage
    return None


def stage_changed(
    source: str, obj: str, crm_id: str, crm_stage: Any, stage_map: Mapping[str, str] | None,
    occurred_at: str, *, domain: str | None = None, dedup_key: str | None = None, **extra: Any,
) -> InboundEvent:
    props = {"source": source, "object": obj, "crm_stage": crm_stage,
             "stage": map_stage(crm_stage, stage_map), **extra}
    return InboundEvent("stage_changed", occurred_at, account_domain=domain, crm_id=str(crm_id),
                        dedup_key=dedup_key, properties=props)


def opportunity(
    source: str, crm_id: str, occurred_at: str, stage_map: Mapping[str, str] | None, *,
    crm_stage: Any, domain: str | None = None, dedup_key: str | None = None, **fields: Any,
) -> InboundEvent:
    props = {"source": source, "crm_stage": crm_stage, "stage": map_stage(crm_stage, stage_map), **fields}
    return InboundEvent("opportunity", occurred_at, account_domain=domain, crm_id=str(crm_id),
                        dedup_key=dedup_key, properties=props)


def iso_from_ms(ms: Any) -> str:
    """ISO 8601 (UTC, with offset) from epoch milliseconds."""
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat()


def iso_from_text(value: str | None) -> str:
    """ISO 8601 with offset from a provider timestamp (``...Z``, ``...+0000``); now when missing."""
    if not value:
        return datetime.now(UTC).isoformat()
    text = str(value).strip().replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC).isoformat()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def to_number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def domain_of(website: Any) -> str | None:
    """``acme.com`` from ``https://www.Acme.com/about`` (or a bare domain)."""
    if not website:
        return None
    text = str(website).strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].split(":", 1)[0]
    if text.startswith("www."):
        text = text[4:]
    return text or None


class Watermark:
    """A keyset cursor over records sorted by (modified time, id).

    The query asks for ``modified >= since``; records at exactly ``since`` whose ids
    are in ``ids_at_since`` were already returned and are skipped. ``since`` only moves
    forward as records are taken, so stopping anywhere and starting again from the
    stored state neither loses nor repeats a record. ``token`` is the provider's
    paging token for the next page (an offset past the records taken at ``since``,
    for HubSpot; a ``nextRecordsUrl``, for Salesforce).
    """

    def __init__(self, state: Mapping[str, Any] | None):
        state = state or {}
        self.since = state.get("since")
        self.ids_at_since: list[str] = list(state.get("ids_at_since") or [])
        self.token = state.get("token")

    def state(self) -> dict[str, Any]:
        return {"since": self.since, "ids_at_since": list(self.ids_at_since), "token": self.token}

    def is_new(self, record_id: str, modified: Any) -> bool:
        return not (modified == self.since and record_id in self.ids_at_since)

    def take(self, record_id: str, modified: Any) -> None:
        if self.since is None or modified > self.since:
            self.since, self.ids_at_since = modified, [record_id]
        elif modified == self.since and record_id not in self.ids_at_since:
            self.ids_at_since.append(record_id)


def send_tasks(batch, create_task, provider: str) -> list:
    """Create one CRM task per touch with ``create_task(touch) -> provider id``.

    Tasks are not idempotent: when a retryable error comes after some tasks were
    created, those are kept as sent and the rest come back as retryable failures
    (raised only when nothing was created yet, so the whole batch is retried).
    """

    results = []
    created = 0
    for position, touch in enumerate(batch):
        if touch.kind != "task":
            results.append(TouchResult.failure(touch, f"the {provider} connector cannot send {touch.kind!r} touches"))
            continue
        try:
            results.append(TouchResult.success(touch, create_task(touch)))
            created += 1
        except RetryableError as exc:
            if not created:
                raise
            results.extend(TouchResult.failure(t, str(exc), permanent=False) for t in batch[position:])
            break
        except PermanentError as exc:
            results.append(TouchResult.failure(touch, str(exc)))
    return results


def poll_objects(cursor, objects, budget: int, poll_object) -> tuple[list, dict]:
    """Poll each CRM object type from its watermark in ``cursor``; returns (events, new cursor).

    ``poll_object(obj, mark, budget, events)`` appends events, moves ``mark`` and returns
    True when it reached the end; ``cursor["more"]`` says whether pages are left.
    """
    cursor = dict(cursor or {})
    events: list = []
    more = False
    for obj in objects:
        mark = Watermark(cursor.get(obj))
        finished = poll_object(obj, mark, budget, events)
        cursor[obj] = mark.state()
        more = more or not finished
    cursor["more"] = more
    return events, cursor
