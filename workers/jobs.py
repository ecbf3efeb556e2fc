"""Touch jobs: send a batch of touches through one connector, one provider call at a time.

``send_touches(touch_ids, connector)``:

1. claim (``delivery.claim_rows``): one atomic ``UPDATE ... RETURNING``, committed. A
   job that runs twice (recovery, a duplicate enqueue) finds its touches sent or
   claimed and sends nothing; touches of a paused playbook stay queued, unclaimed.
2. while the job runs, a heartbeat renews its claims (``workers.leases``);
3. the batch is cut into provider calls (``max_batch`` touches each, the most one call
   of the connector carries); before each call a token is taken from the connector's
   bucket in Redis (``workers.ratelimit``), and the call's results are recorded as soon
   as it returns, in a short commit of their own (``delivery.mark``; on PostgreSQL one
   autocommit statement on the job's recorder connection, ``delivery.recorder``). A
   worker killed at any moment can therefore repeat at most the one call in flight.

Failures: a ``RetryableError`` releases the call's touches (and the untried rest) with
``not_before = max(Retry-After, backoff with jitter)``; the dispatcher enqueues them
again then; after ``MAX_ATTEMPTS`` claims a touch fails with the provider's message. A
``PermanentError`` (bad credentials, a bad account id) fails the call's touches and the
rest with the provider's message. Nothing is retried by RQ.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select

from abm import telemetry
from abm.db import db, in_list
from abm.models import Contact
from abm.models import Playbook as PlaybookRow
from abm.redis_conn import get_redis
from abm.services import audience, clock, connectors, delivery, touches
from connectors.base import PermanentError, RetryableError
from connectors.base import Touch as ConnectorTouch
from workers import leases, ratelimit

#: What a connector's touch is made of (rows, not ORM objects: a job loads hundreds).
_TOUCH_COLUMNS = ("id", "kind", "channel", "account_id", "contact_id", "contact_key", "enrollment_id", "step_id",
                  "playbook_id", "alert_id", "attempts", "due_at", "payload")


@dataclass
class _Lookups:
    """What the touches of a batch refer to, loaded in a few queries whatever their number."""

    facts: dict
    contacts: dict
    playbooks: dict
    people: dict


def _lookups(rows: list) -> _Lookups:
    contact_table = Contact.__table__
    facts = audience.load_facts(sorted({t.account_id for t in rows}), clock.now(), with_contacts=False,
                                with_crm_ids=True)
    contact_ids = sorted({t.contact_id for t in rows if t.contact_id})
    contacts = {c.id: audience.contact_fields(c) for c in db.session.execute(
        select(*(contact_table.c[c] for c in audience.CONTACT_COLUMNS)).where(
            in_list(contact_table.c.id, contact_ids or [0])))}
    playbook_ids = {t.playbook_id for t in rows if t.playbook_id}
    playbooks = {p.id: {"key": p.key, "name": p.name, "product": p.product} for p in db.session.execute(
        select(PlaybookRow.id, PlaybookRow.key, PlaybookRow.name, PlaybookRow.product).where(
            PlaybookRow.id.in_(playbook_ids)))} if playbook_ids else {}
    people = _account_contacts({t.account_id for t in rows if t.kind in ("audience", "task")})
    return _Lookups(facts, contacts, playbooks, people)


def _contact_of(t, look: _Lookups) -> dict | None:
    contact = look.contacts.get(t.contact_id) if t.contact_id else None
    if contact is not None:
        return {k: v for k, v in contact.items() if not k.endswith("_at")}
    if t.kind == "email":
        facts = look.facts.get(t.account_id)
        return {"email": facts.fields.get("owner") if facts else None}
    return None


def _account_of(t, look: _Lookups) -> dict:
    facts = look.facts.get(t.account_id)
    account = dict(facts.fields) if facts else {"id": t.account_id}
    account["crm_ids"] = dict(account.get("crm_ids") or {})  # each touch its own, as connectors may add to it
    if t.kind in ("audience", "task"):
        account["contacts"] = look.people.get(t.account_id, [])
    return account


touch_key = touches.touch_key  # the key connectors see (and the outbox names its files by)


def build_batch(rows: list) -> list[ConnectorTouch]:
    """The plain touches a connector gets, from the claimed touches' rows (``_TOUCH_COLUMNS``)."""
    look = _lookups(rows)
    batch = []
    for t in rows:
        payload = dict(t.payload or {})
        payload.update(touches.tracking_for_touch(t) or {})
        batch.append(ConnectorTouch(id=t.id, kind=t.kind, channel=t.channel, account=_account_of(t, look),
                                    contact=_contact_of(t, look), payload=payload, key=touch_key(t),
                                    playbook=look.playbooks.get(t.playbook_id, {})))
    return batch


def _account_contacts(account_ids: set[int]) -> dict[int, list[dict]]:
    """account id -> its contacts with an email, not erased (ad platforms match people on them)."""
    found: dict[int, list[dict]] = {}
    if not account_ids:
        return found
    for c in db.session.execute(select(Contact).where(
            Contact.account_id.in_(account_ids), Contact.email.is_not(None), Contact.erased_at.is_(None))
            .order_by(Contact.id)).scalars():
        found.setdefault(c.account_id, []).append({
            "email": c.email, "first_name": c.first_name, "last_name": c.last_name, "title": c.title,
            "country": c.country})
    return found


def _keep_state(connector, before: dict) -> None:
    """Persist what the connector learnt (list ids, cursors), also after a failed call."""
    if connector.context.state != before:
        db.session.rollback()
        connectors.save_state(connector.name, connector.context.state)


def send_touches(touch_ids: list[int], connector_name: str | None) -> dict:
    """Send these touches through ``connector_name`` (see the module docstring)."""
    rows = delivery.claim_rows(list(touch_ids), clock.now(), _TOUCH_COLUMNS)
    if not rows:
        return {"claimed": 0}
    taken = [row.id for row in rows]
    try:
        connector = connectors.instantiate(connector_name or "")
    except Exception as exc:  # noqa: BLE001 - an unknown, disabled or unreadable connector fails its touches
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        delivery.fail(taken, f"connector {connector_name!r}: {message}", clock.now())
        return {"claimed": len(taken), "failed": len(taken)}
    counts: Counter = Counter(claimed=len(taken))
    attempts = {row.id: row.attempts for row in rows}
    with leases.heartbeat(attempts) as lease, delivery.recorder() as recorder:
        batch = build_batch(rows)
        db.session.commit()
        try:
            _send_calls(connector, batch, lease, counts, {row.id: row.due_at for row in rows}, recorder)
        finally:
            connector.close()
    if any(row.alert_id for row in rows):
        delivery.mirror_alerts(taken, clock.now())
    return dict(+counts)  # without the zeros


def _send_calls(connector, batch: list[ConnectorTouch], lease: leases.Lease, counts: Counter,
                due: dict, recorder=None) -> None:
    """One provider call after another, each recorded as it returns (and counted for the
    metrics); stops at the first batch-wide failure (the untried rest is released or
    failed with it). A call carries only the touches the job still holds (``lease``)."""
    attempts = lease.attempts
    limit = connectors.rate_limit_of(connectors.get_config(connector.name))
    size = max(1, connector.max_batch)
    calls = [batch[i:i + size] for i in range(0, len(batch), size)]
    key, tokens, tally = None, 0, _Tally(connector.name)
    try:
        for index, call in enumerate(calls):
            scope = ratelimit.bucket_key(connector, call)  # a Slack bot's direct messages: one per owner
            if scope != key:
                key, tokens = scope, 0
            if not tokens:
                tokens = ratelimit.tokens_at_once(*limit, len(calls) - index)
                tally.waited += ratelimit.acquire(key, *limit, n=tokens)
            tokens -= 1
            held = set(lease.held([t.id for t in call]))
            call = [t for t in call if t.id in held]  # noqa: PLW2901 - the call as it may go
            if not call:
                continue
            before, sent = Counter(counts), []
            try:
                _one_call(connector, call, _Rest(lease, calls, index), attempts, counts, sent, recorder)
            except _Stop:
                return
            finally:
                tally.add(counts - before, sent, due)
    finally:
        tally.flush()


class _Tally:
    """The metrics of a job's calls, written to Redis once a second and at the end (a round
    trip per SMTP message would cost more than the message)."""

    def __init__(self, connector: str):
        self.connector, self.counts, self.lags, self.waited, self.flushed = connector, Counter(), [], 0.0, 0.0

    def add(self, counts: Counter, sent: list[int], due: dict) -> None:
        now = clock.now()
        self.counts.update(counts)
        self.lags.extend((now - due[i]).total_seconds() for i in sent if due.get(i))
        if time.monotonic() - self.flushed >= 1.0:
            self.flush()

    def flush(self) -> None:
        if self.counts or self.lags or self.waited:
            telemetry.record_call(get_redis(), self.connector, self.counts, self.lags, self.waited)
        self.counts, self.lags, self.waited, self.flushed = Counter(), [], 0.0, time.monotonic()


class _Stop(Exception):
    """A batch-wide failure: the job sends no more calls."""


class _Rest:
    """The touches of a job after its current call that the job still holds: asked for only
    when a call fails batch-wide (listing them before every call cost a job of 1,000
    one-message calls half a million look-ups)."""

    def __init__(self, lease: leases.Lease, calls: list[list[ConnectorTouch]], index: int):
        self.lease, self.calls, self.index = lease, calls, index

    def ids(self) -> list[int]:
        return self.lease.held([t.id for later in self.calls[self.index + 1:] for t in later])


def _one_call(connector, call: list[ConnectorTouch], untried: _Rest, attempts: dict[int, int],
              counts: Counter, sent: list[int], recorder=None) -> None:
    ids = [t.id for t in call]
    before = copy.deepcopy(connector.context.state)
    now = clock.now()
    try:
        results = connector.send(call)
    except RetryableError as exc:
        _keep_state(connector, before)
        rest = untried.ids()
        not_before = delivery.retry_time(now, exc.retry_after, max(attempts.get(i, 1) for i in ids))
        counts.update(delivery.retry_later(ids, str(exc), not_before, now, attempts))
        delivery.release(rest, now, not_before, error=f"will retry: {exc}", untried=True)
        counts["retry"] += len(rest)
        raise _Stop from None
    except PermanentError as exc:
        _keep_state(connector, before)
        rest = untried.ids()
        delivery.fail(ids + rest, str(exc) or type(exc).__name__, now)
        counts["failed"] += len(ids) + len(rest)
        raise _Stop from None
    except Exception:
        _keep_state(connector, before)
        rest = untried.ids()
        not_before = delivery.retry_time(now, None, max(attempts.get(i, 1) for i in ids))
        delivery.retry_later(ids, "the connector raised an unexpected error", not_before, now, attempts)
        delivery.release(rest, now, not_before, untried=True)
        raise
    _keep_state(connector, before)
    counts.update(delivery.mark(results, clock.now(), attempts, recorder))
    sent.extend(r.touch_id for r in results if r.ok)
    missing = sorted(set(ids) - {r.touch_id for r in results})
    if missing:
        delivery.fail(missing, f"connector {connector.name!r} returned no result for this touch", clock.now())
        counts["failed"] += len(missing)
