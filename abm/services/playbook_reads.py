"""What the playbook pages and the API read about playbooks beside one playbook's row:
the lists, the counts per state and per status, the funnel of steps reached, the latest
failures, the version history and a page of enrollments. Read-only: the rules that
change playbooks are in :mod:`abm.services.playbooks`."""

from __future__ import annotations

from sqlalchemy import func, select

from abm.db import db
from abm.models import Account, Enrollment, PlaybookVersion, Touch, User
from abm.models import Playbook as PlaybookRow
from abm.services import paging
from abm.services.versions import compiled
from playbooks.model import Step

FAILURES_SHOWN = 20


def find(key: str | None) -> PlaybookRow | None:
    """The playbook with this key; None when there is none (unlike ``playbooks.get``, which is a 404)."""
    if not key:
        return None
    return db.session.execute(select(PlaybookRow).where(PlaybookRow.key == key)).scalar_one_or_none()


def listing(status: str | None = None) -> list[PlaybookRow]:
    """Every playbook (or those in ``status``), by name and key."""
    stmt = select(PlaybookRow).order_by(PlaybookRow.name, PlaybookRow.key)
    if status:
        stmt = stmt.where(PlaybookRow.status == status)
    return list(db.session.execute(stmt).scalars())


def page(status: str | None, cursor: str | None, limit: int) -> tuple[list[PlaybookRow], str | None]:
    """One page of playbooks by key (or those in ``status``): the API's list."""
    stmt = select(PlaybookRow)
    if status:
        stmt = stmt.where(PlaybookRow.status == status)
    return paging.page(stmt, [paging.SortKey(PlaybookRow.key)], "key", cursor, limit)


def enrollment_counts() -> dict[int, dict[str, int]]:
    """Enrollments per state, per playbook id."""
    counts: dict[int, dict[str, int]] = {}
    for playbook_id, state, n in db.session.execute(
            select(Enrollment.playbook_id, Enrollment.state, func.count())
            .group_by(Enrollment.playbook_id, Enrollment.state)):
        counts.setdefault(playbook_id, {})[state] = n
    return counts


def status_counts() -> dict[str, int]:
    """Playbooks per status."""
    return dict(db.session.execute(select(PlaybookRow.status, func.count()).group_by(PlaybookRow.status)).all())


def funnel(row: PlaybookRow, steps: list[Step]) -> list[dict]:
    """How many enrollments (held-out ones aside) reached or passed each step of the
    current version. An enrollment at step index ``i`` of its own version has reached
    its steps ``0..i``; steps are matched by id across versions, so an enrollment still
    on an older version counts for the steps that version shares with the current one."""
    versions = {v.id: compiled(v) for v in db.session.execute(
        select(PlaybookVersion).where(PlaybookVersion.playbook_id == row.id)).scalars()}
    reached = {step.id: 0 for step in steps}
    for version_id, index, n in db.session.execute(
            select(Enrollment.version_id, Enrollment.step_index, func.count())
            .where(Enrollment.playbook_id == row.id, Enrollment.state != "held_out")
            .group_by(Enrollment.version_id, Enrollment.step_index)):
        pb = versions.get(version_id)
        if pb is None:
            continue
        for step in pb.steps[:index + 1]:
            if step.id in reached:
                reached[step.id] += n
    return [{"label": step.id, "value": reached[step.id]} for step in steps]


def failures(row: PlaybookRow, limit: int = FAILURES_SHOWN) -> list[dict]:
    """The playbook's latest failed touches, each with its account's name."""
    stmt = (select(Touch, Account.name).join(Account, Account.id == Touch.account_id)
            .where(Touch.playbook_id == row.id, Touch.status == "failed")
            .order_by(Touch.updated_at.desc(), Touch.id.desc()).limit(limit))
    return [{"touch": t, "account": name} for t, name in db.session.execute(stmt).all()]


def version_history(row: PlaybookRow) -> list[dict]:
    """The playbook's versions, newest first, with their author's email and length in lines."""
    stmt = (select(PlaybookVersion, User.email).outerjoin(User, User.id == PlaybookVersion.created_by)
            .where(PlaybookVersion.playbook_id == row.id).order_by(PlaybookVersion.version.desc()))
    return [{"version": version.version, "created_at": version.created_at, "by": email,
             "lines": version.source.count("\n") + (0 if version.source.endswith("\n") else 1),
             "current": version.version == row.current_version}
            for version, email in db.session.execute(stmt).all()]


def enrollments_page(row: PlaybookRow, state: str | None, cursor: str | None,
                     limit: int) -> tuple[list[dict], str | None]:
    """One page of the playbook's enrollments by id (or those in ``state``), each with its
    account's name, its version and the id of the step it is at."""
    stmt = select(Enrollment).where(Enrollment.playbook_id == row.id)
    if state:
        stmt = stmt.where(Enrollment.state == state)
    rows, next_cursor = paging.page(stmt, [paging.SortKey(Enrollment.id)], "id", cursor, limit)
    versions = {v.id: v for v in db.session.execute(select(PlaybookVersion).where(
        PlaybookVersion.playbook_id == row.id)).scalars()}
    names = dict(db.session.execute(select(Account.id, Account.name).where(
        Account.id.in_({e.account_id for e in rows} or {0}))).all())
    return [_enrollment(e, versions.get(e.version_id), names.get(e.account_id)) for e in rows], next_cursor


def _enrollment(e: Enrollment, version: PlaybookVersion | None, account: str | None) -> dict:
    steps = compiled(version).steps if version else ()
    return {
        "id": e.id, "account_id": e.account_id, "account": account, "state": e.state,
        "cycle": e.cycle, "version": version.version if version else None, "step_index": e.step_index,
        "step": steps[e.step_index].id if e.step_index < len(steps) else None,
        "next_run_at": e.next_run_at.isoformat() if e.next_run_at else None,
        "entered_at": e.entered_at.isoformat(), "left_at": e.left_at.isoformat() if e.left_at else None,
        "exit_reason": e.exit_reason, "entry_source": e.entry_source}
