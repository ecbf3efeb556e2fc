"""The dispatcher: a short periodic job that moves due enrollments through their playbook.

One pass (:func:`dispatch`):

1. Scheduled touches whose send window opened become ``queued`` and are enqueued.
2. Due enrollments (``active``/``waiting`` with ``next_run_at <= now``, of an active
   playbook) are claimed in batches: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
   several dispatchers never take the same row; on SQLite one dispatcher at a time
   holds a Redis lock.
3. For a batch, the facts (accounts with owners, contacts, recent events) are loaded
   in three queries; each enrollment is advanced through ``playbooks.machine.advance``
   (again and again while it stays due now: a playbook's consecutive touch steps go out
   in one pass); the touches are built (recipients, suppression, caps, windows,
   rendering) and written in one ``INSERT ... ON CONFLICT DO NOTHING`` on their unique
   key; the enrollments are updated in one executemany; one commit.
4. After the commit: stage changes made by ``set_stage`` steps are handled (exits and
   trigger entries of the account's other enrollments), and the queued touches are
   enqueued as jobs of many touches per connector.

A dispatcher that dies between commit and enqueue leaves touches ``queued`` with no
job: :func:`recover` finds them after a lease.

Parallel dispatch on PostgreSQL (:func:`run_dispatch`, :func:`dispatch_chain`): the
periodic job starts up to ``ABM_DISPATCHERS`` chains (default 2). A chain link runs one
pass of a few batches; when more is due it enqueues the next link on the ``touches``
queue, behind the send jobs it has just enqueued, so workers that serve both queues take
turns dispatching and sending: the send work never starves behind a long dispatch (the
due-to-sent lag stays at a few batches) and dispatching slows to the pace of sending when
connectors are slow. A Redis key per chain, refreshed by each link, keeps the chains to
their number; a chain whose link was lost (Redis emptied, a worker killed) is started
again by the periodic job once its key expires. SKIP LOCKED keeps the chains' batches
apart. On SQLite one dispatcher runs at a time. Time comes from :func:`clock`, which
tests replace (``app.config["ABM_CLOCK"]``, a function returning an aware datetime).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from abm import telemetry
from abm.db import db
from abm.models import Account, Enrollment, Touch
from abm.models import Playbook as PlaybookRow
from abm.redis_conn import get_redis
from abm.services import accounts, alerts, audience, delivery, enrollment, touches
from abm.services import clock as engine_clock
from abm.services import playbooks as playbook_service
from playbooks.machine import EnrollmentState, SetStageAction, SkippedAction, TouchAction
from playbooks.machine import run as run_machine
from workers import enqueue as enqueue_jobs
from workers.queues import get_queue

BATCH_SIZE = 1000
#: How many steps one pass may take for one enrollment (touch steps end a call).
MAX_CALLS = 20
LOCK_KEY = "abm:dispatcher:lock"
#: Dispatcher chains on PostgreSQL (how many: ``ABM_DISPATCHERS``): their keys, how long a
#: key lives without a link refreshing it, and how many batches one link runs.
CHAIN_KEY = "abm:dispatcher:chain:{}"
CHAIN_LEASE_SECONDS = 120
LINK_BATCHES = 2


def clock() -> datetime:
    return engine_clock.now()


@contextlib.contextmanager
def _single_dispatcher(timeout: int = 120):
    """On SQLite only one dispatcher runs at a time (a Redis lock); PostgreSQL needs none."""
    if db.dialect == "postgresql":
        yield True
        return

    lock = get_redis().lock(LOCK_KEY, timeout=timeout, blocking=False)
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(Exception):
                lock.release()


def dispatch(now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int | None = None,
             enqueue: bool = True) -> dict:
    """One dispatcher pass; returns counts (batches, enrollments, touches, jobs)."""
    now = now or clock()
    stats = defaultdict(int)
    with _single_dispatcher() as mine:
        if not mine:
            stats["skipped_locked"] = 1
            return dict(stats)
        promoted = touches.promote_due(now)
        retried = delivery.retry_due(now)
        stats["promoted"] = len(promoted)
        stats["retried"] = len(retried)
        if enqueue:
            stats["jobs"] += enqueue_jobs.touches(promoted + retried)
        while max_batches is None or stats["batches"] < max_batches:
            claimed, queued = _run_batch(now, batch_size, stats)
            if enqueue and queued:
                stats["jobs"] += enqueue_jobs.touches(queued)
            if claimed < batch_size:
                break
        else:
            stats["more"] = 1  # stopped at max_batches after a full batch: more may be due
    return dict(stats)


def _claim(now: datetime, batch_size: int):
    active = select(PlaybookRow.id).where(PlaybookRow.status == "active")
    query = (select(Enrollment.id, Enrollment.playbook_id, Enrollment.version_id, Enrollment.account_id,
                    Enrollment.state, Enrollment.step_index, Enrollment.next_run_at, Enrollment.wait_started_at)
             .where(Enrollment.state.in_(("active", "waiting")), Enrollment.next_run_at <= now,
                    Enrollment.playbook_id.in_(active))
             .order_by(Enrollment.next_run_at, Enrollment.id).limit(batch_size))
    if db.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Enrollment)
    return db.session.execute(query).all()


def _conditions(pb):
    yield pb.exit_when
    for step in pb.steps:
        yield step.when
        yield getattr(step, "condition", None)


def _run_batch(now: datetime, batch_size: int, stats) -> tuple[int, list]:
    rows = _claim(now, batch_size)
    if not rows:
        db.session.commit()
        return 0, []
    stats["batches"] += 1
    stats["enrollments"] += len(rows)
    compiled = {vid: playbook_service.compiled_by_id(vid) for vid in {r.version_id for r in rows}}
    meta = {p.id: p for p in db.session.execute(select(PlaybookRow).where(
        PlaybookRow.id.in_({r.playbook_id for r in rows}))).scalars()}
    since = audience.longest_window(c for pb in compiled.values() for c in _conditions(pb))
    facts = audience.load_facts([r.account_id for r in rows], now, since)
    pending, skipped_rows, updates, stage_moves = [], [], [], []
    for r in rows:
        pb = compiled[r.version_id]
        account_facts = facts.get(r.account_id)
        if account_facts is None:
            continue
        state = EnrollmentState(r.step_index, r.state, r.next_run_at, r.wait_started_at)
        state, actions = run_machine(pb, state, account_facts, now, MAX_CALLS)
        for action in actions:
            if isinstance(action, TouchAction):
                pending.append(touches.PendingTouch(r.id, r.playbook_id, meta[r.playbook_id].priority, pb,
                                                    action.step, r.account_id, account_facts, now,
                                                    due_from=min(r.next_run_at or now, now)))
            elif isinstance(action, SetStageAction):
                stage_moves.append((r.account_id, action.stage, meta[r.playbook_id].key))
            elif isinstance(action, SkippedAction):
                skipped_rows.append(_skipped_row(r, pb.steps[action.step_index], now))
        updates.append({
            "eid": r.id, "state": state.status, "step_index": state.step_index,
            "next_run_at": None if state.finished else (state.next_run_at or now),
            "wait_started_at": state.wait_started_at, "exit_reason": state.exit_reason,
            "left_at": now if state.finished else None, "updated_at": now,
        })
    with enrollment.deferring_stage_changes() as changes:
        _apply_stages(stage_moves, now)
    built = touches.build(pending, now) + skipped_rows
    queued = _insert_touches(built)
    _update_enrollments(updates)
    db.session.commit()
    alerts.from_playbook_touches(built, now)  # the sellers' inbox keeps the playbook's alerts
    stats["touches"] += len(built)
    stats["queued"] += len(queued)
    if changes:
        enrollment.handle_stage_changes(changes)
        db.session.commit()
    return len(rows), queued


def _skipped_row(r, step, now: datetime) -> dict:
    return {
        "enrollment_id": r.id, "playbook_id": r.playbook_id, "account_id": r.account_id, "contact_id": None,
        "contact_key": 0, "step_id": step.id, "step_index": step.index, "kind": step.kind,
        "channel": step.channel or "", "connector": getattr(step, "connector", None), "variant": None,
        "status": "skipped",
        "payload": {}, "error": "its when condition was false", "due_at": now, "queued_at": None,
        "claimed_at": None, "sent_at": None, "attempts": 0, "created_at": now, "updated_at": now,
    }


def _apply_stages(moves, now: datetime) -> None:
    for account_id, stage, key in moves:
        account = db.session.get(Account, account_id)
        if account is not None:
            accounts.change_stage(account, stage, source=f"playbook:{key}", actor_id=None, at=now)


TOUCH_COLUMNS = ("enrollment_id", "playbook_id", "account_id", "contact_id", "contact_key", "step_id", "step_index",
                 "kind", "channel", "connector", "variant", "status", "payload", "error", "due_at", "queued_at",
                 "claimed_at", "sent_at", "attempts", "created_at", "updated_at")


def _copy_touches(rows: list[dict]) -> list[tuple[int, str | None]]:
    """PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT ... ON
    CONFLICT DO NOTHING RETURNING (a huge multi-row VALUES costs more to build than to run)."""
    from psycopg.types.json import Jsonb  # noqa: PLC0415 - psycopg: the pg extra, on PostgreSQL only

    cols = ", ".join(TOUCH_COLUMNS)
    cur = db.session.connection().connection.cursor()
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS touches_incoming "
                "(LIKE touches INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    with cur.copy(f"COPY touches_incoming ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([Jsonb(row["payload"]) if c == "payload" else row[c] for c in TOUCH_COLUMNS])
    cur.execute(f"INSERT INTO touches ({cols}) SELECT {cols} FROM touches_incoming "
                "ON CONFLICT (enrollment_id, step_id, contact_key) DO NOTHING RETURNING id, status, connector")
    written = cur.fetchall()
    cur.execute("DELETE FROM touches_incoming")
    return [(w[0], w[2]) for w in written if w[1] == "queued"]


def _insert_touches(rows: list[dict]) -> list[tuple[int, str | None]]:
    """Bulk insert on the unique key; returns (id, connector) of the queued ones written."""
    if not rows:
        return []
    if db.dialect == "postgresql":
        return _copy_touches(rows)
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    stmt = insert(Touch).on_conflict_do_nothing().returning(Touch.id, Touch.status, Touch.connector)
    written = db.session.execute(stmt, rows).all()
    return [(w[0], w[2]) for w in written if w[1] == "queued"]


_UPDATE_ENROLLMENTS_PG = text(
    "UPDATE enrollments SET state = u.state, step_index = u.step_index, next_run_at = u.next_run_at, "
    "wait_started_at = u.wait_started_at, exit_reason = u.exit_reason, left_at = u.left_at, updated_at = :now "
    "FROM unnest(CAST(:eid AS bigint[]), CAST(:state AS varchar[]), CAST(:step_index AS integer[]), "
    "CAST(:next_run_at AS timestamptz[]), CAST(:wait_started_at AS timestamptz[]), CAST(:exit_reason AS varchar[]), "
    "CAST(:left_at AS timestamptz[])) AS u(id, state, step_index, next_run_at, wait_started_at, exit_reason, left_at) "
    "WHERE enrollments.id = u.id")
_ENROLLMENT_UPDATE_COLUMNS = ("eid", "state", "step_index", "next_run_at", "wait_started_at", "exit_reason", "left_at")


def _update_enrollments(updates: list[dict]) -> None:
    """The batch's enrollments: on PostgreSQL one UPDATE ... FROM unnest(one array per
    column), elsewhere one executemany."""
    if not updates:
        return
    if db.dialect == "postgresql":
        params = {c: [u[c] for u in updates] for c in _ENROLLMENT_UPDATE_COLUMNS}
        params["now"] = updates[0]["updated_at"]
        db.session.execute(_UPDATE_ENROLLMENTS_PG, params)
        return
    table = Enrollment.__table__
    stmt = update(table).where(table.c.id == bindparam("eid")).values(
        state=bindparam("state"), step_index=bindparam("step_index"), next_run_at=bindparam("next_run_at"),
        wait_started_at=bindparam("wait_started_at"), exit_reason=bindparam("exit_reason"),
        left_at=bindparam("left_at"), updated_at=bindparam("updated_at"))
    db.session.execute(stmt, updates)


# -- periodic entry points (RQ jobs) --------------------------------------------------------


def run_dispatch(max_seconds: float = 20.0) -> dict:
    """The periodic dispatcher job. On PostgreSQL: start the dispatcher chains that are
    not running (see the module docstring). On SQLite: passes until nothing is due or
    time is up."""
    if db.dialect == "postgresql":
        return {"chains_started": start_chains()}
    started = time.monotonic()
    total = defaultdict(int)
    while True:
        stats = dispatch(max_batches=20)
        for k, v in stats.items():
            total[k] += v
        if stats.get("batches", 0) < 20 or time.monotonic() - started > max_seconds:
            return dict(total)


def start_chains() -> int:
    """Enqueue the first link of every chain (``ABM_DISPATCHERS`` of them) whose key is
    free; returns how many."""

    redis = get_redis()
    started = 0
    for number in range(int(current_app.config["ABM_DISPATCHERS"])):
        if redis.set(CHAIN_KEY.format(number), "starting", nx=True, ex=CHAIN_LEASE_SECONDS):
            enqueue_jobs.dispatch_link(number, "dispatch", redis)
            started += 1
    return started


def dispatch_chain(number: int) -> dict:
    """One link of dispatcher chain ``number``: a pass of up to ``LINK_BATCHES`` batches;
    if more is due, the next link goes on the ``touches`` queue behind this link's send
    jobs, else the chain ends (its key is freed)."""

    stats = dispatch(batch_size=BATCH_SIZE, max_batches=LINK_BATCHES)
    redis = get_redis()
    key = CHAIN_KEY.format(number)
    if stats.get("more"):
        redis.set(key, "running", ex=CHAIN_LEASE_SECONDS)
        enqueue_jobs.dispatch_link(number, "touches", redis)
    else:
        redis.delete(key)
    return stats


def run_sweep() -> dict:
    return enrollment.sweep(clock())


def recover(now: datetime | None = None) -> int:
    """Re-enqueue touches whose job is gone: a dead worker's claims whose lease ran out
    (the heartbeat stopped), and unclaimed queued touches whose job was lost. Those are
    taken at once when Redis lost its data (restarted empty), after a lease when the
    touches queue is empty (nothing can still be waiting to run them), else after
    ``ABM_TOUCH_REQUEUE_SECONDS`` (they may be far back in a long queue)."""

    now = now or clock()
    redis = get_redis()
    if enqueue_jobs.redis_was_emptied(redis):
        after = timedelta(0)
    elif get_queue("touches", redis).count == 0:
        after = delivery.lease()
    else:
        after = timedelta(seconds=int(current_app.config.get("ABM_TOUCH_REQUEUE_SECONDS",
                                                             delivery.DEFAULT_REQUEUE_SECONDS)))
    lost = delivery.lost(now, unclaimed_after=after)
    if lost:
        enqueue_jobs.touches(lost)
        telemetry.record_recovered(redis, len(lost))
    return len(lost)
