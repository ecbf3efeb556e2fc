"""Enrollment: accounts entering playbooks, in bulk, and leaving them.

- ``enroll_audience``: the audience of a playbook, one ``INSERT ... SELECT`` on
  PostgreSQL (the holdout computed in SQL from the same SHA-256 as
  ``playbooks.holdout``), one id query and batched inserts on SQLite. The sweep runs it
  again for every active audience playbook, so accounts that start to match enter.
- ``enroll_accounts``: a few known accounts (trigger entries).
- Re-enrollment: an account may enter again when it has no running enrollment and
  its last one ended at least ``reenroll`` ago (never when ``reenroll`` is None);
  each entry is a new ``cycle``.
- Hooks others call: ``wake``, ``on_stage_changed``, ``on_score_changed``,
  ``on_activity``. They flush, never commit: the caller's transaction decides.

Nothing here commits except ``sweep``.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy import String as SAString
from sqlalchemy import and_, case, cast, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from abm.db import db, in_list
from abm.models import Account, Enrollment, Event
from abm.models import Playbook as PlaybookRow
from abm.services import audience, clock, versions
from playbooks.conditions import evaluate
from playbooks.holdout import is_held_out
from playbooks.model import ActivityTrigger, Playbook, ScoreCrossedTrigger, StageChangedTrigger

RUNNING = ("active", "waiting")
INSERT_BATCH = 5000

#: When set (a list), stage changes are collected instead of handled at once: the
#: dispatcher handles them after its commit, so it never waits on rows another holds.
_deferred: ContextVar[list | None] = ContextVar("abm_deferred_stage_changes", default=None)


@dataclass
class EnrollResult:
    enrolled: int = 0
    held_out: int = 0

    @property
    def total(self) -> int:
        return self.enrolled + self.held_out

    def as_dict(self) -> dict:
        return {"enrolled": self.enrolled, "held_out": self.held_out}


def _insert(dialect: str):
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _eligible(playbook_id: int, reenroll, now: datetime):
    """Accounts with no enrollment that blocks a new one (running, held out, or ended
    less than ``reenroll`` ago; any earlier one when re-enrollment is never)."""
    blocking = [Enrollment.state.in_(RUNNING + ("held_out",))]
    if reenroll is None:
        blocking = [literal(True)]
    else:
        blocking.append(Enrollment.left_at > now - reenroll)
    return ~exists().where(Enrollment.playbook_id == playbook_id, Enrollment.account_id == Account.id,
                           or_(*blocking))


def _next_cycle(playbook_id: int):
    return func.coalesce(
        select(func.max(Enrollment.cycle)).where(Enrollment.playbook_id == playbook_id,
                                                 Enrollment.account_id == Account.id).scalar_subquery(), 0) + 1


def holdout_threshold_hex(percent: float) -> str:
    """The 16-hex-digit bound under which the first 8 bytes of the hash are held out."""
    bound = int(Fraction(percent) / 100 * 2**64)
    return f"{min(bound, 2**64 - 1):016x}"


def _row(pb_row: PlaybookRow, version_id: int, account_id: int, cycle: int, held: bool, source: str,
         now: datetime) -> dict:
    return {"playbook_id": pb_row.id, "version_id": version_id, "account_id": account_id, "cycle": cycle,
            "state": "held_out" if held else "active", "step_index": 0,
            "next_run_at": None if held else now, "entered_at": now, "entry_source": source, "updated_at": now}


def _counts(pb_row: PlaybookRow, now: datetime, source: str) -> EnrollResult:
    rows = db.session.execute(
        select(Enrollment.state, func.count()).where(
            Enrollment.playbook_id == pb_row.id, Enrollment.entered_at == now, Enrollment.entry_source == source)
        .group_by(Enrollment.state)).all()
    counts = dict(rows)
    return EnrollResult(enrolled=counts.get("active", 0), held_out=counts.get("held_out", 0))


def enroll_audience(pb_row: PlaybookRow, version_id: int, compiled: Playbook, now: datetime | None = None,
                    source: str = "audience") -> EnrollResult:
    """Enroll every eligible account of the playbook's audience (flushes, no commit)."""
    if compiled.audience is None:
        return EnrollResult()
    now = now or clock.now()
    limit = _room_left(pb_row, compiled)
    if limit == 0:
        return EnrollResult()
    if db.dialect == "postgresql":
        matches = audience.account_filter(compiled.audience.where, now)
        return _enroll_in_sql(pb_row, version_id, compiled, matches, limit, now, source)
    return _insert_rows(pb_row, version_id, compiled, db.session.execute(_candidates(pb_row, compiled, now, limit)).all(),
                        source, now)


def _room_left(pb_row: PlaybookRow | None, compiled: Playbook) -> int | None:
    """How many more accounts the audience's ``limit`` lets in (None: no limit)."""
    if compiled.audience is None or compiled.audience.limit is None:
        return None
    if pb_row is None:
        return compiled.audience.limit
    already = db.session.execute(select(func.count(func.distinct(Enrollment.account_id))).where(
        Enrollment.playbook_id == pb_row.id)).scalar_one()
    return max(compiled.audience.limit - already, 0)


def _candidates(pb_row: PlaybookRow | None, compiled: Playbook, now: datetime, limit: int | None):
    """(account id, next cycle) of the accounts the audience would enroll now."""
    where = [audience.account_filter(compiled.audience.where, now)]
    if pb_row is not None:
        where.append(_eligible(pb_row.id, compiled.reenroll, now))
        query = select(Account.id, _next_cycle(pb_row.id))
    else:
        query = select(Account.id, literal(1))
    query = query.where(*where).order_by(Account.id)
    return query.limit(limit) if limit is not None else query


def would_enroll(pb_row: PlaybookRow | None, compiled: Playbook, now: datetime, limited: bool = True) -> list[int]:
    """The ids of the accounts activating (or the next sweep of) ``compiled`` would
    enroll now, held-out ones included, in id order (what :func:`enroll_audience`
    inserts); none for a trigger playbook. ``limited=False``: before the audience's
    ``limit``."""
    if compiled.audience is None:
        return []
    limit = _room_left(pb_row, compiled) if limited else None
    if limit == 0:
        return []
    return [row[0] for row in db.session.execute(_candidates(pb_row, compiled, now, limit))]


def _enroll_in_sql(pb_row, version_id, compiled, matches, limit, now, source) -> EnrollResult:
    """One INSERT ... SELECT; the earlier enrollments of the playbook are aggregated once
    and joined (cheaper than two correlated probes per account)."""
    if compiled.reenroll is None:
        blocking = literal(True)
    else:
        blocking = or_(Enrollment.state.in_(RUNNING + ("held_out",)), Enrollment.left_at > now - compiled.reenroll)
    prev = (select(Enrollment.account_id.label("account_id"), func.max(Enrollment.cycle).label("cycle"),
                   func.bool_or(blocking).label("blocked"))
            .where(Enrollment.playbook_id == pb_row.id).group_by(Enrollment.account_id).subquery("prev"))
    hashed = func.substr(func.encode(func.sha256(func.convert_to(
        literal(f"{compiled.key}:") + cast(Account.id, SAString), literal("UTF8"))), literal("hex")), 1, 16)
    if compiled.holdout > 0:
        held = hashed.collate("C") < holdout_threshold_hex(compiled.holdout)
        state = case((held, literal("held_out")), else_=literal("active"))
        next_run = case((held, literal(None)), else_=literal(now))
    else:
        state, next_run = literal("active"), literal(now)
    selected = (select(
        literal(pb_row.id), literal(version_id), Account.id, func.coalesce(prev.c.cycle, 0) + 1, state, literal(0),
        next_run, literal(now), literal(source), literal(now),
    ).select_from(Account).outerjoin(prev, prev.c.account_id == Account.id)
        .where(matches, prev.c.blocked.is_not(True)).order_by(Account.id))
    if limit is not None:
        selected = selected.limit(limit)
    columns = ["playbook_id", "version_id", "account_id", "cycle", "state", "step_index", "next_run_at",
               "entered_at", "entry_source", "updated_at"]
    stmt = postgresql.insert(Enrollment).from_select(columns, selected).on_conflict_do_nothing()
    db.session.execute(stmt)
    return _counts(pb_row, now, source)


def _insert_rows(pb_row, version_id, compiled, candidates, source, now) -> EnrollResult:
    rows = [_row(pb_row, version_id, account_id, cycle, is_held_out(compiled.key, account_id, compiled.holdout),
                 source, now) for account_id, cycle in candidates]
    stmt = _insert(db.dialect)(Enrollment).on_conflict_do_nothing()
    for start in range(0, len(rows), INSERT_BATCH):
        db.session.execute(stmt, rows[start:start + INSERT_BATCH])
    return _counts(pb_row, now, source)


def enroll_accounts(pb_row: PlaybookRow, version_id: int, compiled: Playbook, account_ids, source: str,
                    now: datetime | None = None) -> EnrollResult:
    """Enroll these accounts when eligible (trigger entries; flushes, no commit)."""
    ids = sorted(set(account_ids))
    if not ids:
        return EnrollResult()
    now = now or clock.now()
    query = select(Account.id, _next_cycle(pb_row.id)).where(
        Account.id.in_(ids), _eligible(pb_row.id, compiled.reenroll, now))
    return _insert_rows(pb_row, version_id, compiled, db.session.execute(query).all(), source, now)


def _active_playbooks() -> list[tuple[PlaybookRow, int, Playbook]]:
    rows = db.session.execute(select(PlaybookRow).where(PlaybookRow.status == "active")).scalars().all()
    out = []
    for row in rows:
        version = versions.current_version(row)
        out.append((row, version.id, versions.compiled(version)))
    return out


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Enroll the accounts that started to match the audience of every active playbook."""
    now = now or clock.now()
    entered: dict[str, int] = {}
    for row, version_id, compiled in _active_playbooks():
        if compiled.audience is None:
            continue
        result = enroll_audience(row, version_id, compiled, now, source="sweep")
        row.last_swept_at = now
        entered[row.key] = result.total
    db.session.commit()
    return entered


# -- hooks -----------------------------------------------------------------------------


def wake(account_ids, now: datetime | None = None) -> int:
    """Make the waiting enrollments of these accounts due now (engagement or stage changed)."""
    ids = sorted(set(account_ids))
    if not ids:
        return 0
    now = now or clock.now()
    result = db.session.execute(
        update(Enrollment).where(in_list(Enrollment.account_id, ids), Enrollment.state == "waiting",
                                 or_(Enrollment.next_run_at.is_(None), Enrollment.next_run_at > now))
        .values(next_run_at=now).execution_options(synchronize_session=False))
    return result.rowcount or 0


@contextlib.contextmanager
def deferring_stage_changes():
    """Collect stage changes made inside the block; the caller handles them later
    with :func:`handle_stage_changes`."""
    collected: list = []
    token = _deferred.set(collected)
    try:
        yield collected
    finally:
        _deferred.reset(token)


def on_stage_changed(account_id: int, from_stage: str | None, to_stage: str, now: datetime | None = None) -> None:
    """An account's stage changed: check the exits of its running enrollments (and wake
    the rest), and enroll it in playbooks triggered by this change."""
    now = now or clock.now()
    pending = _deferred.get()
    if pending is not None:
        pending.append((account_id, from_stage, to_stage, now))
        return
    handle_stage_changes([(account_id, from_stage, to_stage, now)])


def handle_stage_changes(changes) -> None:
    if not changes:
        return
    now = max(change[3] for change in changes)
    account_ids = {change[0] for change in changes}
    running = db.session.execute(
        select(Enrollment).where(Enrollment.account_id.in_(account_ids), Enrollment.state.in_(RUNNING))
    ).scalars().all()
    if running:
        compiled = {}
        for enrollment in running:
            if enrollment.version_id not in compiled:
                compiled[enrollment.version_id] = versions.compiled_by_id(enrollment.version_id)
        since = audience.longest_window(c.exit_when for c in compiled.values())
        facts = audience.load_facts(account_ids, now, since)
        for enrollment in running:
            pb = compiled[enrollment.version_id]
            if pb.exit_when is not None and evaluate(pb.exit_when, facts[enrollment.account_id], now):
                enrollment.state, enrollment.exit_reason = "exited", "exit_condition"
                enrollment.left_at, enrollment.next_run_at, enrollment.wait_started_at = now, None, None
            elif enrollment.state == "waiting":
                enrollment.next_run_at = now
    triggered = [(row, vid, pb) for row, vid, pb in _active_playbooks() if isinstance(pb.trigger, StageChangedTrigger)]
    for account_id, from_stage, to_stage, at in changes:
        for row, version_id, pb in triggered:
            if to_stage in pb.trigger.to and (not pb.trigger.from_ or from_stage in pb.trigger.from_):
                enroll_accounts(row, version_id, pb, [account_id], "trigger:stage_changed", at)
    db.session.flush()


def on_score_changed(account_ids, now: datetime | None = None, previous: dict[int, float] | None = None) -> int:
    """Scores changed: enroll accounts in ``score_crossed`` playbooks.

    With ``previous`` (account id -> score before), an account enters when it went from
    ``<= above`` to ``> above``. Without it, an account above the threshold enters when
    it is eligible (not enrolled, or re-enrollable), which is the same thing for an
    account that was below before.
    """
    ids = sorted(set(account_ids))
    if not ids:
        return 0
    now = now or clock.now()
    entered = 0
    for row, version_id, pb in _active_playbooks():
        if not isinstance(pb.trigger, ScoreCrossedTrigger):
            continue
        above = pb.trigger.above
        hits = db.session.execute(select(Account.id).where(Account.id.in_(ids), Account.score > above)).scalars()
        hits = [i for i in hits if previous is None or previous.get(i, 0.0) <= above]
        entered += enroll_accounts(row, version_id, pb, hits, "trigger:score_crossed", now).total
    return entered


def on_activity(by_type: dict[str, set[int]], now: datetime | None = None) -> int:
    """Engagement events arrived (event type -> account ids): enroll accounts in
    ``activity`` playbooks whose types match, when the event is recent enough."""
    if not by_type:
        return 0
    now = now or clock.now()
    entered = 0
    for row, version_id, pb in _active_playbooks():
        trigger = pb.trigger
        if not isinstance(trigger, ActivityTrigger):
            continue
        types = set(trigger.types) or set(by_type)
        ids = set().union(*(by_type.get(t, set()) for t in types)) if types else set()
        if not ids:
            continue
        if trigger.within is not None:
            ids = set(db.session.execute(select(Event.account_id).distinct().where(
                in_list(Event.account_id, sorted(ids)), Event.type.in_(sorted(types)),
                and_(Event.occurred_at >= now - trigger.within, Event.occurred_at <= now))).scalars())
        entered += enroll_accounts(row, version_id, pb, ids, "trigger:activity", now).total
    return entered
