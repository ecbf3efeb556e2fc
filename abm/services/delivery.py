"""Touch rows on their way out: claim, renew, record, release, recover.

The touch job (``workers.jobs.send_touches``) calls these; what each guarantees is in
docs/engine.md ("What a crash can repeat").

- :func:`claim_rows` takes ``queued`` touches that nobody holds (or whose lease ran out)
  and whose ``not_before`` has passed, of an active playbook (or a sales alert's touch,
  which has none); it counts an attempt and commits.
- :func:`renew` is the job's heartbeat: the claims of a live job never run out, so the
  lease can be short and a dead worker's touches come back within a minute. It is also
  the job's fence: a job whose lease ran out anyway (a stalled process, missed beats)
  learns which touches it no longer holds, and does not send them.
- :func:`mark` records one provider call's results as soon as the call returns (its own
  short commit; on PostgreSQL one autocommit statement through the job's
  :func:`recorder`), so a worker killed afterwards repeats nothing it has sent.
- :func:`release` hands touches back after a retryable failure with a ``not_before``;
  :func:`retry_due` (each dispatcher pass) queues them again when that time comes.
- :func:`lost` finds touches whose job is gone (a dead worker's expired claims, jobs
  lost with Redis) for the periodic recovery.
"""

from __future__ import annotations

import contextlib
import logging
import random
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, func, or_, select, text, update

from abm.db import db, in_list
from abm.models import Alert, Touch
from abm.models import Playbook as PlaybookRow

log = logging.getLogger(__name__)

#: A claim that was not renewed for this long is presumed dead (its worker was killed).
#: Live jobs renew their claims every third of it (``workers.leases``).
DEFAULT_LEASE_SECONDS = 30
#: After this many claims a touch whose provider keeps failing retryably is failed.
MAX_ATTEMPTS = 5
#: Backoff of the n-th retry without a Retry-After: half of base * 2^(n-1), plus up to as
#: much again at random (equal jitter), at most ``BACKOFF_CAP`` seconds.
BACKOFF_BASE = 5.0
BACKOFF_CAP = 600.0
#: Unclaimed queued touches older than this are re-enqueued even while the touches
#: queue has jobs waiting (their job may be anywhere in a long backlog).
DEFAULT_REQUEUE_SECONDS = 300


def lease() -> timedelta:
    return timedelta(seconds=int(current_app.config.get("ABM_TOUCH_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)))


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (1 = the first retry), with jitter."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def _sendable():
    """Touches of an active playbook, or of no playbook (a sales alert)."""
    active = select(PlaybookRow.id).where(PlaybookRow.status == "active")
    return or_(Touch.__table__.c.playbook_id.is_(None), Touch.__table__.c.playbook_id.in_(active))


def claim_rows(touch_ids: list[int], now: datetime, columns: tuple[str, ...] = ("id",)) -> list:
    """Atomically take the touches that may be sent now; commits. Returns the taken
    touches' ``columns`` (``id`` first) in id order: a job reads what it sends in the
    statement that claims it."""
    table = Touch.__table__
    stmt = (update(table).where(
        in_list(table.c.id, touch_ids), table.c.status == "queued",
        or_(table.c.claimed_at.is_(None), table.c.claimed_at < now - lease()),
        or_(table.c.not_before.is_(None), table.c.not_before <= now), _sendable())
        .values(claimed_at=now, not_before=None, attempts=table.c.attempts + 1, updated_at=now)
        .returning(*(table.c[c] for c in columns)))
    taken = db.session.execute(stmt).all()
    db.session.commit()
    return sorted(taken, key=lambda row: row[0])


def claim(touch_ids: list[int], now: datetime) -> list[int]:
    return [row.id for row in claim_rows(touch_ids, now)]


def renew(connection, attempts: dict[int, int], now: datetime) -> set[int]:
    """The heartbeat of a live job, and its fence: of the touches it claimed (id -> the
    ``attempts`` its claim counted), those it still holds get ``claimed_at = now``; returns
    their ids. A touch whose lease ran out is no longer held: recovery released it
    (``claimed_at`` empty) or another job claimed it again (``attempts`` moved on), and
    the job must not send it. Runs on ``connection`` (not the job's session)."""
    table = Touch.__table__
    by_attempt: dict[int, list[int]] = {}
    for touch_id, attempt in attempts.items():
        by_attempt.setdefault(attempt, []).append(touch_id)
    held: set[int] = set()
    for attempt, ids in by_attempt.items():
        held.update(connection.execute(update(table).where(
            in_list(table.c.id, ids), table.c.status == "queued", table.c.claimed_at.is_not(None),
            table.c.attempts == attempt).values(claimed_at=now).returning(table.c.id)).scalars())
    return held


def _relaxed_commit() -> None:
    """On PostgreSQL the marks of one call are committed without waiting for the WAL
    flush: a killed worker loses nothing (the server has the commit), only a crash of
    PostgreSQL itself can forget the last few hundred milliseconds of marks, which then
    are sent again (docs/engine.md)."""
    if db.dialect == "postgresql":
        db.session.execute(text("SET LOCAL synchronous_commit TO OFF"))


class Recorder:
    """Where a touch job records its sent touches, call after call (:func:`recorder`)."""

    def __init__(self, connection=None):
        self.connection = connection
        self.cursor = connection.connection.driver_connection.cursor() if connection is not None else None

    def sent(self, sent: list, now: datetime) -> bool:
        """Mark ``sent`` (successful results) sent in one autocommit statement; False when
        there is no cursor (SQLite) or it failed (its connection dropped: the caller marks
        them through the session, which reconnects, and so does every later call)."""
        if self.cursor is None:
            return False
        try:
            self.cursor.execute(_MARK_SENT_RAW, {"now": now, "ids": [r.touch_id for r in sent],
                                                 "pids": [r.provider_id for r in sent]}, prepare=True)
            return True
        except Exception:  # noqa: BLE001 - the statement is idempotent: the session makes it again
            log.warning("the recorder's connection failed; marking through the session", exc_info=True)
            self.cursor = None
            with contextlib.suppress(Exception):
                self.connection.invalidate()
            return False


@contextlib.contextmanager
def recorder():
    """A :class:`Recorder` for one job: on PostgreSQL a connection of the job's own, in
    autocommit and with ``synchronous_commit`` off, so that a call's marks are one
    prepared statement and one round trip, not BEGIN, SET, UPDATE and COMMIT through the
    session (for a one-message SMTP call that was most of the cost of recording it);
    elsewhere the session's path."""
    if db.dialect != "postgresql":
        yield Recorder()
        return
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        kept = Recorder(connection)
        kept.cursor.execute("SET synchronous_commit TO OFF")
        try:
            yield kept
        finally:
            if kept.cursor is not None:
                with contextlib.suppress(Exception):  # a broken connection is discarded by the pool
                    kept.cursor.execute("RESET synchronous_commit")


def mark(results: list, now: datetime, attempts: dict[int, int] | None = None,
         kept: Recorder | None = None) -> dict[str, int]:
    """Record one provider call's ``TouchResult``s; commits (through ``kept``, the job's
    :class:`Recorder`, when they are all successes). Per-touch retryable failures are
    released with a backoff (or failed when out of attempts: ``attempts`` maps ids to
    their claims so far)."""
    sent = [r for r in results if r.ok]
    if kept is not None and sent and len(sent) == len(results) and kept.sent(sent, now):
        return {"sent": len(sent), "failed": 0, "retry": 0}
    failed = [r for r in results if not r.ok and r.permanent]
    retry = [r for r in results if not r.ok and not r.permanent]
    _relaxed_commit()
    if sent:
        _mark_sent(sent, now)
    if failed:
        _fail_each([(r.touch_id, r.error or "failed") for r in failed], now)
    for r in retry:
        _retry_or_fail([r.touch_id], r.error or "failed", None, now, attempts or {})
    db.session.commit()
    return {"sent": len(sent), "failed": len(failed), "retry": len(retry)}


_MARK_SENT_SQL = (
    "UPDATE touches SET status = 'sent', sent_at = {now}, provider_id = sent.pid, error = NULL, updated_at = {now} "
    "FROM unnest(CAST({ids} AS bigint[]), CAST({pids} AS varchar[])) AS sent(id, pid) "
    "WHERE touches.id = sent.id AND touches.status = 'queued'")
_MARK_SENT_PG = text(_MARK_SENT_SQL.format(now=":now", ids=":ids", pids=":pids"))
_MARK_SENT_RAW = _MARK_SENT_SQL.format(now="%(now)s", ids="%(ids)s", pids="%(pids)s")  # psycopg's own style


def _mark_sent(sent: list, now: datetime) -> None:
    if db.dialect == "postgresql":
        db.session.execute(_MARK_SENT_PG, {"now": now, "ids": [r.touch_id for r in sent],
                                           "pids": [r.provider_id for r in sent]})
        return
    table = Touch.__table__
    db.session.execute(update(table).where(table.c.id == bindparam("tid"), table.c.status == "queued").values(
        status="sent", sent_at=now, provider_id=bindparam("pid"), error=None, updated_at=now),
        [{"tid": r.touch_id, "pid": r.provider_id} for r in sent])


def _fail_each(pairs: list[tuple[int, str]], now: datetime) -> None:
    table = Touch.__table__
    db.session.execute(update(table).where(table.c.id == bindparam("tid"), table.c.status == "queued")
                       .values(status="failed", error=bindparam("err"), claimed_at=None, updated_at=now),
                       [{"tid": tid, "err": error[:2000]} for tid, error in pairs])


def fail(touch_ids: list[int], error: str, now: datetime) -> None:
    """Fail queued touches with ``error`` (the provider's message); commits."""
    if touch_ids:
        db.session.execute(update(Touch).where(in_list(Touch.id, touch_ids), Touch.status == "queued")
                           .values(status="failed", error=error[:2000], claimed_at=None, updated_at=now)
                           .execution_options(synchronize_session=False))
    db.session.commit()


def release(touch_ids: list[int], now: datetime, not_before: datetime | None, error: str | None = None,
            untried: bool = False) -> None:
    """Give claimed touches back, to be claimed again from ``not_before`` on. ``untried``:
    the provider never saw them (a call before theirs failed), so their claim does not
    count as an attempt. Commits."""
    if touch_ids:
        table = Touch.__table__
        values = {"claimed_at": None, "not_before": not_before, "error": error, "updated_at": now}
        if untried:
            values["attempts"] = table.c.attempts - 1
        db.session.execute(update(table).where(in_list(table.c.id, touch_ids), table.c.status == "queued")
                           .values(**values))
    db.session.commit()


def retry_later(touch_ids: list[int], error: str, not_before: datetime, now: datetime,
                attempts: dict[int, int]) -> dict[str, int]:
    """After a retryable failure of a call: release its touches until ``not_before``
    (``max(Retry-After, backoff with jitter)``, :func:`retry_time`), or fail those that
    have had their attempts (``gave up after N attempts:`` and the provider's message).
    Commits."""
    counts = _retry_or_fail(touch_ids, error, not_before, now, attempts)
    db.session.commit()
    return counts


def retry_time(now: datetime, retry_after: float | None, attempt: int) -> datetime:
    """When retry number ``attempt`` may go: the provider's wait, or the backoff if longer."""
    return now + timedelta(seconds=max(retry_after or 0.0, backoff(attempt)))


def max_attempts() -> int:
    return int(current_app.config.get("ABM_TOUCH_MAX_ATTEMPTS", MAX_ATTEMPTS))


def _retry_or_fail(touch_ids, error, not_before, now, attempts) -> dict[str, int]:
    limit = max_attempts()
    exhausted = {i for i in touch_ids if attempts.get(i, 0) >= limit}
    if exhausted:
        _fail_each([(i, f"gave up after {limit} attempts: {error}") for i in sorted(exhausted)], now)
    waiting = [i for i in touch_ids if i not in exhausted]
    if waiting:
        if not_before is None:
            not_before = retry_time(now, None, max(attempts.get(i, 1) for i in waiting))
        table = Touch.__table__
        db.session.execute(update(table).where(in_list(table.c.id, waiting), table.c.status == "queued").values(
            claimed_at=None, not_before=not_before, error=f"will retry: {error}"[:2000], updated_at=now))
    return {"retry": len(waiting), "failed": len(exhausted)}


def retry_due(now: datetime, limit: int = 5000) -> list[tuple[int, str | None]]:
    """Released touches whose ``not_before`` came: their wait ends, they are enqueued
    again (by the dispatcher pass). Commits. Returns (id, connector)."""
    table = Touch.__table__
    ids = list(db.session.execute(select(table.c.id).where(
        table.c.not_before.is_not(None), table.c.not_before <= now, table.c.status == "queued",
        table.c.claimed_at.is_(None), _sendable()).order_by(table.c.not_before).limit(limit)).scalars())
    if not ids:
        return []
    rows = db.session.execute(update(table).where(in_list(table.c.id, ids), table.c.status == "queued",
                                                  table.c.claimed_at.is_(None))
                              .values(not_before=None, queued_at=now, updated_at=now)
                              .returning(table.c.id, table.c.connector)).all()
    db.session.commit()
    return [(r[0], r[1]) for r in rows]


def lost(now: datetime, unclaimed_after: timedelta | None = None, limit: int = 20000) -> list[tuple[int, str | None]]:
    """Touches whose job is gone: claimed with a lease that ran out (the worker died), or
    queued, unclaimed and not waiting for a retry for longer than ``unclaimed_after``
    (their job was lost with Redis, or never enqueued). Only of active playbooks or
    alerts. Their ``queued_at`` is refreshed, so the next recovery waits again."""
    unclaimed_after = lease() if unclaimed_after is None else unclaimed_after
    table = Touch.__table__
    rows = db.session.execute(select(table.c.id, table.c.connector).where(
        table.c.status == "queued", _sendable(),
        or_(and_(table.c.claimed_at.is_(None), table.c.not_before.is_(None),
                 table.c.queued_at <= now - unclaimed_after),
            table.c.claimed_at < now - lease()))
        .order_by(table.c.id).limit(limit)).all()
    ids = [r[0] for r in rows]
    for start in range(0, len(ids), 5000):
        db.session.execute(update(table).where(in_list(table.c.id, ids[start:start + 5000]))
                           .values(queued_at=now, claimed_at=None))
    db.session.commit()
    return [(r[0], r[1]) for r in rows]


def mirror_alerts(touch_ids: list[int], now: datetime) -> None:
    """A sales alert shows its touch's outcome: ``sent`` (with the connector) or ``failed``
    with the provider's message. Commits."""
    rows = db.session.execute(select(Touch.alert_id, Touch.status, Touch.error, Touch.connector).where(
        in_list(Touch.id, touch_ids), Touch.alert_id.is_not(None), Touch.status.in_(("sent", "failed")))).all()
    for alert_id, status, error, connector in rows:
        db.session.execute(update(Alert).where(Alert.id == alert_id, Alert.status == "open").values(
            status=status, error=None if status == "sent" else error, connector=connector, sent_at=now))
    db.session.commit()


def postponed_by_connector() -> dict[str | None, int]:
    """Touches a frequency cap postponed that are not due yet, per connector (for /metrics)."""
    return dict(db.session.execute(select(Touch.connector, func.count()).where(
        Touch.status == "scheduled", Touch.error.like("postponed:%")).group_by(Touch.connector)).all())
