"""Touch jobs: send a batch of touches through one connector, exactly once per touch.

``send_touches(touch_ids, connector)``:

1. claim: one atomic ``UPDATE ... WHERE status='queued' AND (claimed_at IS NULL OR
   stale) AND the playbook is active RETURNING id``, committed. A job that runs twice
   (RQ retry, recovery, a duplicate enqueue) finds the touches sent or claimed and
   sends nothing; touches of a paused playbook stay queued, unclaimed (resume
   enqueues them again).
2. send the claimed batch through the connector (at the connector's pace);
3. mark: sent (with the provider id) or failed (with the error) per ``TouchResult``.

``RetryableError``: the touches go back to ``queued`` (unclaimed) and the error is
raised again so RQ's ``Retry`` runs the job later; after ``MAX_ATTEMPTS`` claims they
are failed. ``PermanentError``: failed with the error text.

The one window that is at-least-once: a worker that dies after the provider accepted
the batch and before step 3 committed. The claim then expires after the lease and
recovery sends again; connectors get ``Touch.key`` (enrollment:step:contact) to pass
as an idempotency key to providers that take one, which closes that window there.
"""

from __future__ import annotations

import copy
import time

from sqlalchemy import select

from abm.db import db, in_list
from abm.models import Contact, Touch
from abm.models import Playbook as PlaybookRow
from abm.services import audience, touches
from connectors.base import PermanentError, RetryableError
from connectors.base import Touch as ConnectorTouch


def _clock():
    from workers.dispatcher import clock

    return clock()


def _pace(connector_name: str, calls: int, per: int) -> None:
    """Keep at most ``calls`` sends per ``per`` seconds for slow connectors (the job
    runs alone for them: RQ's RateLimit gives it concurrency 1)."""
    if calls / max(per, 1) >= 100:
        return
    from abm.redis_conn import get_redis

    redis = get_redis()
    key = f"abm:pace:{connector_name}"
    gap = per / max(calls, 1)
    last = redis.get(key)
    if last is not None:
        wait = float(last) + gap - time.time()
        if wait > 0:
            time.sleep(min(wait, gap))
    redis.set(key, time.time(), ex=max(int(gap) + 60, 60))


#: What a connector's touch is made of (rows, not ORM objects: a job loads hundreds).
_TOUCH_COLUMNS = ("id", "kind", "channel", "account_id", "contact_id", "contact_key", "enrollment_id", "step_id",
                  "playbook_id", "payload")


def build_batch(rows: list) -> list[ConnectorTouch]:
    """The plain touches a connector gets, from the claimed touches' rows (``_TOUCH_COLUMNS``),
    in a few queries whatever their number."""
    contact_table = Contact.__table__
    account_ids = sorted({t.account_id for t in rows})
    facts = audience.load_facts(account_ids, _clock(), with_contacts=False, with_crm_ids=True)
    contact_ids = sorted({t.contact_id for t in rows if t.contact_id})
    contacts = {c.id: audience.contact_fields(c) for c in db.session.execute(
        select(*(contact_table.c[c] for c in audience.CONTACT_COLUMNS)).where(
            in_list(contact_table.c.id, contact_ids or [0])))}
    playbooks = {p.id: {"key": p.key, "name": p.name, "product": p.product} for p in db.session.execute(
        select(PlaybookRow.id, PlaybookRow.key, PlaybookRow.name, PlaybookRow.product).where(
            PlaybookRow.id.in_({t.playbook_id for t in rows})))}
    people = _account_contacts({t.account_id for t in rows if t.kind in ("audience", "task")})
    batch = []
    for t in rows:
        contact = contacts.get(t.contact_id) if t.contact_id else None
        if contact is not None:
            contact = {k: v for k, v in contact.items() if not k.endswith("_at")}
        elif t.kind == "email":
            contact = {"email": facts[t.account_id].fields.get("owner") if t.account_id in facts else None}
        account = dict(facts[t.account_id].fields) if t.account_id in facts else {"id": t.account_id}
        account["crm_ids"] = dict(account.get("crm_ids") or {})  # each touch its own, as connectors may add to it
        if t.kind in ("audience", "task"):
            account["contacts"] = people.get(t.account_id, [])
        payload = dict(t.payload or {})
        tracking = touches.tracking_for_touch(t)
        if tracking:
            payload.update(tracking)
        batch.append(ConnectorTouch(id=t.id, kind=t.kind, channel=t.channel, account=account, contact=contact,
                                    payload=payload, key=f"{t.enrollment_id}:{t.step_id}:{t.contact_key}",
                                    playbook=playbooks.get(t.playbook_id, {})))
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


def _keep_state(connectors, connector, before: dict) -> None:
    """Persist what the connector learnt (list ids, cursors), also after a failed send."""
    if connector.context.state != before:
        db.session.rollback()
        connectors.save_state(connector.name, connector.context.state)


def send_touches(touch_ids: list[int], connector_name: str | None) -> dict:
    """Send these touches through ``connector_name`` (see the module docstring)."""
    from abm.services import connectors

    now = _clock()
    rows = touches.claim_rows(list(touch_ids), now, _TOUCH_COLUMNS)
    taken = [row.id for row in rows]
    if not taken:
        return {"claimed": 0}
    try:
        connector = connectors.instantiate(connector_name or "")
    except Exception as exc:  # noqa: BLE001 - an unknown, disabled or unreadable connector fails its touches
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        touches.fail(taken, f"connector {connector_name!r}: {message}", _clock())
        return {"claimed": len(taken), "failed": len(taken)}
    config = connectors.get_config(connector.name)
    _pace(connector.name, *connectors.rate_limit_of(config))
    batch = build_batch(rows)
    db.session.commit()
    before = copy.deepcopy(connector.context.state)
    try:
        results = connector.send(batch)
    except RetryableError as exc:
        _keep_state(connectors, connector, before)
        attempts = dict(db.session.execute(select(Touch.id, Touch.attempts).where(Touch.id.in_(taken))).all())
        exhausted = [i for i in taken if attempts.get(i, 0) >= touches.MAX_ATTEMPTS]
        touches.fail(exhausted, f"gave up after {touches.MAX_ATTEMPTS} attempts: {exc}", _clock())
        touches.release([i for i in taken if i not in exhausted], _clock(), error=f"will retry: {exc}")
        raise
    except PermanentError as exc:
        _keep_state(connectors, connector, before)
        touches.fail(taken, str(exc) or type(exc).__name__, _clock())
        return {"claimed": len(taken), "failed": len(taken)}
    except Exception:
        _keep_state(connectors, connector, before)
        touches.release(taken, _clock(), error="the connector raised an unexpected error; will retry")
        raise
    _keep_state(connectors, connector, before)
    seen = {r.touch_id for r in results}
    missing = [i for i in taken if i not in seen]
    counts = touches.mark(results, _clock())
    if missing:
        touches.fail(missing, f"connector {connector.name!r} returned no result for this touch", _clock())
    return {"claimed": len(taken), **counts}
