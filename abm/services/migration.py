"""Moving a playbook's running enrollments to its newest version (``apply --migrate``).

An enrollment keeps its place by step id (``playbooks.diff.step_mapping``): at the same
step when the new version has it, else at the first later step of its old version that
the new one still has, else past the end (it completes). A moved enrollment is due now,
so the dispatcher takes it on its next pass; one waiting on a ``wait``/``wait_until``
that the new version keeps goes on waiting from when it started (the new duration or
timeout counts from then). Held-out and finished enrollments stay as they are.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from abm.db import db
from abm.models import Enrollment, PlaybookVersion
from abm.models import Playbook as PlaybookRow
from playbooks.diff import step_mapping
from playbooks.machine import ACTIVE, WAITING, EnrollmentState
from playbooks.model import Playbook

RUNNING = ("active", "waiting")
WAIT_KINDS = ("wait", "wait_until")


def _groups(row: PlaybookRow, version_id: int):
    return db.session.execute(
        select(Enrollment.version_id, Enrollment.step_index, Enrollment.state, func.count())
        .where(Enrollment.playbook_id == row.id, Enrollment.state.in_(RUNNING), Enrollment.version_id != version_id)
        .group_by(Enrollment.version_id, Enrollment.step_index, Enrollment.state)
        .order_by(Enrollment.version_id, Enrollment.step_index, Enrollment.state)).all()


def moved_state(old: Playbook, new: Playbook, state: EnrollmentState, now: datetime) -> EnrollmentState:
    """Where an enrollment in ``state`` on ``old`` stands on ``new``."""
    index = step_mapping(old, new).get(state.step_index, len(new.steps))
    keeps_waiting = (state.status == WAITING and index < len(new.steps) and state.step_index < len(old.steps)
                     and new.steps[index].id == old.steps[state.step_index].id
                     and new.steps[index].kind in WAIT_KINDS)
    if keeps_waiting:
        return EnrollmentState(index, WAITING, now, state.wait_started_at)
    return EnrollmentState(index, ACTIVE, now)


def mapping(row: PlaybookRow | None, new: Playbook, version_id: int | None, compiled_of) -> list[dict]:
    """What a migration to ``new`` would do, by (version, step, state): ``[{"version",
    "step", "state", "to", "enrollments"}]`` (``to`` None: past the end)."""
    if row is None:
        return []
    numbers = _version_numbers(row)
    out = []
    for old_version_id, index, state, count in _groups(row, version_id or 0):
        old = compiled_of(old_version_id)
        target = step_mapping(old, new).get(index, len(new.steps))
        out.append({"version": numbers.get(old_version_id), "step": old.steps[index].id if index < len(old.steps)
                    else None, "state": state, "to": new.steps[target].id if target < len(new.steps) else None,
                    "enrollments": count})
    return out


def _version_numbers(row: PlaybookRow) -> dict[int, int]:
    return dict(db.session.execute(select(PlaybookVersion.id, PlaybookVersion.version).where(
        PlaybookVersion.playbook_id == row.id)).all())


def migrate(row: PlaybookRow, version_id: int, new: Playbook, compiled_of, now: datetime) -> dict:
    """Move every running enrollment of ``row`` on another version to ``version_id``
    (whose compiled playbook is ``new``). Flushes; the caller commits."""
    plan = mapping(row, new, version_id, compiled_of)
    moved = 0
    for old_version_id, index, state, _count in _groups(row, version_id):
        old = compiled_of(old_version_id)
        sample = EnrollmentState(index, state, now, now)
        target = moved_state(old, new, sample, now)
        values = {"version_id": version_id, "step_index": target.step_index, "state": target.status,
                  "next_run_at": now, "updated_at": now}
        if target.status != WAITING:
            values["wait_started_at"] = None
        moved += db.session.execute(update(Enrollment).where(
            Enrollment.playbook_id == row.id, Enrollment.version_id == old_version_id,
            Enrollment.step_index == index, Enrollment.state == state).values(**values)
            .execution_options(synchronize_session=False)).rowcount or 0
    return {"moved": moved, "mapping": plan}


__all__ = ["mapping", "migrate", "moved_state"]
