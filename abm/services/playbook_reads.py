"""What the playbook pages and the API read about playbooks beside one playbook's row:
the lists, the counts per state and per status, the funnel of steps reached, the latest
failures, the version history and a page of enrollments (those that reached a step:
the rows behind a count of the funnel, by the same rule, :func:`reached_clause`).
Read-only: the rules that change playbooks are in :mod:`abm.services.playbooks`."""

from __future__ import annotations

from sqlalchemy import and_, case, false, func, or_, select

from abm.db import db
from abm.errors import ValidationError
from abm.exports import csv_text
from abm.models import Account, Enrollment, PlaybookVersion, Touch, User
from abm.models import Playbook as PlaybookRow
from abm.services import paging
from abm.services.versions import compiled
from playbooks.model import Step

FAILURES_SHOWN = 20
#: The most rows a CSV of enrollments holds (a page of the list is bounded by paging).
MAX_EXPORT = 100_000


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


def _versions(row: PlaybookRow) -> dict[int, object]:
    """version id -> the compiled playbook of each of ``row``'s versions."""
    return {v.id: compiled(v) for v in db.session.execute(
        select(PlaybookVersion).where(PlaybookVersion.playbook_id == row.id)).scalars()}


def reached_clause(versions: dict[int, object], step_id: str):
    """The enrollments that reached or passed the step ``step_id``: an enrollment at step
    index ``i`` of its own version has reached its steps ``0..i``; steps are matched by
    id across versions, so an enrollment still on an older version counts for the steps
    that version shares with the current one. Held-out enrollments never reach a step.
    The one rule of the funnel's counts and of the lists they open."""
    per_version = [and_(Enrollment.version_id == version_id, Enrollment.step_index >= index)
                   for version_id, pb in versions.items()
                   for index, step in enumerate(pb.steps) if step.id == step_id]
    return and_(Enrollment.state != "held_out", or_(*per_version)) if per_version else false()


def funnel(row: PlaybookRow, steps: list[Step]) -> list[dict]:
    """How many enrollments reached or passed each step of the current version
    (:func:`reached_clause`), in one query."""
    if not steps:
        return []
    versions = _versions(row)
    sums = [func.sum(case((reached_clause(versions, step.id), 1), else_=0)) for step in steps]
    counts = db.session.execute(select(*sums).where(Enrollment.playbook_id == row.id)).one()
    return [{"label": step.id, "value": int(n or 0)} for step, n in zip(steps, counts, strict=True)]


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


def _enrollments_query(row: PlaybookRow, state: str | None, reached: str | None, versions: dict):
    stmt = select(Enrollment).where(Enrollment.playbook_id == row.id)
    if state:
        stmt = stmt.where(Enrollment.state == state)
    if reached:
        if not any(step.id == reached for pb in versions.values() for step in pb.steps):
            message = f"{row.key} has no step {reached!r}"
            raise ValidationError([{"path": "reached", "message": message}], f"reached: {message}")
        stmt = stmt.where(reached_clause(versions, reached))
    return stmt


def enrollments_page(row: PlaybookRow, state: str | None, cursor: str | None, limit: int,
                     reached: str | None = None) -> tuple[list[dict], str | None]:
    """One page of the playbook's enrollments by id (or those in ``state``, or those that
    reached the step ``reached``: a step id of one of its versions, else a 422), each with
    its account's name, its version and the id of the step it is at."""
    versions = _versions(row)
    rows, next_cursor = paging.page(_enrollments_query(row, state, reached, versions),
                                    [paging.SortKey(Enrollment.id)], "id", cursor, limit)
    return _serialized(row, rows), next_cursor


def enrollments_csv(row: PlaybookRow, state: str | None = None, reached: str | None = None) -> str:
    """The CSV of the enrollments :func:`enrollments_page` lists (at most ``MAX_EXPORT``),
    with each account's domain."""
    stmt = _enrollments_query(row, state, reached, _versions(row)).order_by(Enrollment.id).limit(MAX_EXPORT)
    items = _serialized(row, list(db.session.execute(stmt).scalars()))
    domains = dict(db.session.execute(select(Account.id, Account.domain).where(
        Account.id.in_({e["account_id"] for e in items} or {0}))).all())
    columns = ["id", "account_id", "account", "domain", "state", "version", "step", "cycle", "entered_at",
               "next_run_at", "left_at", "exit_reason", "entry_source"]
    return csv_text(({**e, "domain": domains.get(e["account_id"])} for e in items), columns)


def _serialized(row: PlaybookRow, rows: list[Enrollment]) -> list[dict]:
    versions = {v.id: v for v in db.session.execute(select(PlaybookVersion).where(
        PlaybookVersion.playbook_id == row.id)).scalars()}
    names = dict(db.session.execute(select(Account.id, Account.name).where(
        Account.id.in_({e.account_id for e in rows} or {0}))).all())
    return [_enrollment(e, versions.get(e.version_id), names.get(e.account_id)) for e in rows]


def _enrollment(e: Enrollment, version: PlaybookVersion | None, account: str | None) -> dict:
    steps = compiled(version).steps if version else ()
    return {
        "id": e.id, "account_id": e.account_id, "account": account, "state": e.state,
        "cycle": e.cycle, "version": version.version if version else None, "step_index": e.step_index,
        "step": steps[e.step_index].id if e.step_index < len(steps) else None,
        "next_run_at": e.next_run_at.isoformat() if e.next_run_at else None,
        "entered_at": e.entered_at.isoformat(), "left_at": e.left_at.isoformat() if e.left_at else None,
        "exit_reason": e.exit_reason, "entry_source": e.entry_source}
