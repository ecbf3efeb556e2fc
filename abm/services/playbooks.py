"""Playbooks in the product: validate against the real workspace, store versions, plan,
and the life cycle (activate, pause, resume, archive).

- ``workspace()``: stages and roles from the settings, connectors from
  ``abm.services.connectors``, templates from ``templates/email/``.
- ``apply(source, filename)``: a known key makes a new version with its source; the
  newest version is the one new enrollments use, running ones finish on theirs.
- ``pause``: status ``paused``; touch jobs check the status when they claim and leave
  the touches of a paused playbook queued, unsent; ``resume`` enqueues them again.
- ``archive``: running enrollments exit (reason ``archived``), touches not yet sent
  are skipped.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, select, update

from abm.db import db, utcnow
from abm.errors import ApiError, Conflict, NotFound
from abm.models import Enrollment, PlaybookVersion, Touch
from abm.models import Playbook as PlaybookRow
from abm.services import clock, connectors, dry_run, enrollment, migration, segments
from abm.services import settings as settings_service
from abm.services.audience_funnel import funnel
from abm.services.transactions import rolls_back_on_error
from abm.services.versions import compiled, compiled_by_id, current_version  # noqa: F401 - this module's API too
from playbooks import Workspace, load, sandbox
from playbooks.errors import LoadResult
from playbooks.holdout import is_held_out
from playbooks.model import Playbook
from playbooks.workspace import directory_loader
from workers import enqueue


class PlaybookInvalid(ApiError):
    """A playbook that does not validate: 422 with one detail per error, located."""

    def __init__(self, result: LoadResult):
        errors = result.errors
        n = len(errors)
        super().__init__(422, f"the playbook has {n} error{'s' if n != 1 else ''}",
                         [e.to_dict() for e in errors])
        self.errors = errors


def workspace(stand_ins: bool = False) -> Workspace:
    """The real workspace: settings, connectors, templates.

    ``stand_ins``: when no connector is configured yet (a fresh install), connector names
    are checked against the stand-ins of :meth:`Workspace.default` (``log`` for every
    channel, ``outbox`` for email) instead of failing every step.
    """
    settings = settings_service.current()
    channels = {name: tuple(chs) for name, chs in connectors.channels_by_name().items()}
    defaults = connectors.defaults()
    if stand_ins and not channels:
        stand_in = Workspace.default()
        channels, defaults = stand_in.connectors, stand_in.default_connectors
    return Workspace(
        stages=list(settings["stages"]), roles=list(settings["roles"]), connectors=channels,
        default_connectors=defaults, template_loader=directory_loader(),
        default_timezone=settings["send_window"]["timezone"], segments=segments.compiled_all(),
    )


def validate(source: str, filename: str = "playbook.yaml", stand_ins: bool = False) -> LoadResult:
    return load(source, filename=filename, workspace=workspace(stand_ins))


def get(key: str) -> PlaybookRow:
    row = db.session.execute(select(PlaybookRow).where(PlaybookRow.key == key)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"playbook {key!r}")
    return row


@rolls_back_on_error
def apply(source: str, filename: str = "playbook.yaml", actor_id: int | None = None) -> tuple[PlaybookRow, int]:
    """Validate and store ``source`` as a new version; (playbook row, version number).

    Raises :class:`PlaybookInvalid`. Commits.
    """
    result = validate(source, filename)
    if result.errors or result.playbook is None:
        raise PlaybookInvalid(result)
    pb = result.playbook
    row = db.session.execute(select(PlaybookRow).where(PlaybookRow.key == pb.key)).scalar_one_or_none()
    if row is None:
        row = PlaybookRow(key=pb.key, name=pb.name, product=pb.product, priority=pb.priority, status="draft",
                          current_version=0)
        db.session.add(row)
        db.session.flush()
    number = (db.session.execute(select(func.max(PlaybookVersion.version)).where(
        PlaybookVersion.playbook_id == row.id)).scalar_one() or 0) + 1
    db.session.add(PlaybookVersion(playbook_id=row.id, version=number, source=source, compiled=pb.to_dict(),
                                   created_by=actor_id))
    row.name, row.product, row.priority, row.current_version = pb.name, pb.product, pb.priority, number
    row.updated_at = utcnow()
    db.session.commit()
    return row, number


# -- life cycle ------------------------------------------------------------------------


class EmptyAudience(Conflict):
    """Activating would enroll no account: 409 with the audience funnel, unless the
    caller says ``allow_empty``."""

    def __init__(self, key: str, steps: list[dict]):
        zero = next((step for step in steps if step["kept"] == 0), None)
        why = f": none is left after \u201c{zero['label']}\u201d" if zero else ""
        super().__init__(f"activating {key} would enroll no account{why}; activate it with allow_empty "
                         "to start it anyway (accounts that match later enter at the next sweep)",
                         extra={"funnel": steps})
        self.funnel = steps


@rolls_back_on_error
def activate(key: str, now: datetime | None = None, allow_empty: bool = False) -> dict:
    """draft (or paused) -> active; enrolls the audience at once. Commits.

    Raises :class:`EmptyAudience` when a draft's audience would enroll nobody (every
    account excluded, or held out) and ``allow_empty`` is not set."""
    row = get(key)
    if row.status == "archived":
        raise Conflict(f"playbook {key!r} is archived; apply it again under a new key to run it")
    if row.status == "paused":
        return resume(key)
    now = now or clock.now()
    result = enrollment.EnrollResult()
    version = current_version(row)
    pb = compiled(version)
    if row.status == "draft" and not allow_empty:
        _refuse_empty(row, pb, now)
    if row.status != "active":
        row.status, row.activated_at = "active", now
    if pb.audience is not None:
        result = enrollment.enroll_audience(row, version.id, pb, now)
        row.last_swept_at = now
    db.session.commit()
    return {"key": key, "status": row.status, **result.as_dict()}


def _refuse_empty(row: PlaybookRow, pb: Playbook, now: datetime) -> None:
    if pb.audience is None:
        return
    entrants = enrollment.would_enroll(row, pb, now)
    held = sum(1 for account_id in entrants if is_held_out(pb.key, account_id, pb.holdout))
    if len(entrants) - held == 0:
        eligible = len(enrollment.would_enroll(row, pb, now, limited=False))
        raise EmptyAudience(row.key, funnel(pb, now, eligible, len(entrants), held))


def migration_preview(key: str) -> list[dict]:
    """Where :func:`migrate` would move the running enrollments on older versions."""
    row = get(key)
    version = current_version(row)
    return migration.mapping(row, compiled(version), version.id, compiled_by_id)


def migrate(key: str, now: datetime | None = None) -> dict:
    """Move the running enrollments on older versions to the current one, by step id
    (see :mod:`abm.services.migration`). Commits. ``{"key", "status", "version", "moved",
    "mapping"}``."""
    row = get(key)
    if row.status == "archived":
        raise Conflict(f"playbook {key!r} is archived; nothing runs to move")
    version = current_version(row)
    result = migration.migrate(row, version.id, compiled(version), compiled_by_id, now or clock.now())
    db.session.commit()
    return {"key": key, "status": row.status, "version": row.current_version, **result}


@rolls_back_on_error
def pause(key: str) -> dict:
    row = get(key)
    if row.status != "active":
        raise Conflict(f"playbook {key!r} is {row.status}; only an active playbook can be paused")
    row.status = "paused"
    db.session.commit()
    return {"key": key, "status": row.status}


@rolls_back_on_error
def resume(key: str) -> dict:
    """paused -> active, and the touches left queued are enqueued again (after commit)."""
    row = get(key)
    if row.status != "paused":
        raise Conflict(f"playbook {key!r} is {row.status}; only a paused playbook can be resumed")
    row.status = "active"
    db.session.commit()
    queued = db.session.execute(select(Touch.id, Touch.connector).where(
        Touch.playbook_id == row.id, Touch.status == "queued")).all()
    jobs = enqueue.touches([(tid, connector) for tid, connector in queued])
    return {"key": key, "status": row.status, "requeued": len(queued), "jobs": jobs}


@rolls_back_on_error
def archive(key: str, now: datetime | None = None) -> dict:
    row = get(key)
    now = now or clock.now()
    row.status = "archived"
    ended = db.session.execute(
        update(Enrollment).where(Enrollment.playbook_id == row.id, Enrollment.state.in_(("active", "waiting")))
        .values(state="exited", exit_reason="archived", left_at=now, next_run_at=None)
        .execution_options(synchronize_session=False)).rowcount
    skipped = db.session.execute(
        update(Touch).where(Touch.playbook_id == row.id, Touch.status.in_(("scheduled", "queued")),
                            Touch.claimed_at.is_(None))
        .values(status="skipped", error="the playbook was archived", updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return {"key": key, "status": "archived", "exited": ended, "skipped_touches": skipped}


# -- reading ---------------------------------------------------------------------------


def serialize(row: PlaybookRow, with_versions: bool = False) -> dict:
    counts = dict(db.session.execute(select(Enrollment.state, func.count()).where(
        Enrollment.playbook_id == row.id).group_by(Enrollment.state)).all())
    out = {"key": row.key, "name": row.name, "status": row.status, "product": row.product,
           "priority": row.priority, "version": row.current_version,
           "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
           "activated_at": row.activated_at.isoformat() if row.activated_at else None,
           "enrollments": {state: counts.get(state, 0) for state in
                           ("active", "waiting", "held_out", "completed", "exited")}}
    if with_versions:
        out["versions"] = [{"version": v.version, "created_at": v.created_at.isoformat(),
                            "created_by": v.created_by}
                           for v in db.session.execute(select(PlaybookVersion).where(
                               PlaybookVersion.playbook_id == row.id).order_by(PlaybookVersion.version)).scalars()]
        out["steps"] = [{"id": s.id, "kind": s.kind, "channel": s.channel} for s in compiled(current_version(row)).steps]
    return out


def source_of(key: str, version: int | None = None) -> PlaybookVersion:
    row = get(key)
    number = version or row.current_version
    found = db.session.execute(select(PlaybookVersion).where(
        PlaybookVersion.playbook_id == row.id, PlaybookVersion.version == number)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"version {number} of playbook {key!r}")
    return found


# -- plan (dry run) --------------------------------------------------------------------

#: The time a plan may take altogether (seconds): validating the source (within its own
#: ``playbooks.loader.VALIDATION_SECONDS``), reading the audience and simulating it. A
#: simulation cut short by it says so, with the step it stopped on (``limit``).
PLAN_SECONDS = 5.0


def plan(source: str, filename: str = "playbook.yaml", now: datetime | None = None, sample: int = 5,
         account: str | None = None, contact: str | None = None, migrate: bool = False) -> dict:
    """What applying and activating ``source`` would do, simulated without writing or
    sending anything (see :mod:`abm.services.dry_run`). ``account`` (id or domain) or
    ``contact`` (email): also that one's schedule; ``migrate``: with the running
    enrollments moved to it, and the mapping. Raises :class:`PlaybookInvalid`.

    Answers within :data:`PLAN_SECONDS` whatever ``source`` holds (see docs/security.md)."""
    with sandbox.deadline(PLAN_SECONDS):
        result = validate(source, filename)
        if result.errors or result.playbook is None:
            raise PlaybookInvalid(result)
        return dry_run.report(result.playbook, now or clock.now(), compiled_by_id, account=account,
                              contact=contact, sample=sample, migrate=migrate, where=(filename, result.step_lines))


def touch_counts(key: str) -> dict:
    row = get(key)
    counts = Counter(dict(db.session.execute(select(Touch.status, func.count()).where(
        Touch.playbook_id == row.id).group_by(Touch.status)).all()))
    return dict(counts)


__all__ = ["PlaybookInvalid", "EmptyAudience", "workspace", "validate", "apply", "migrate", "migration_preview", "activate", "pause", "resume", "archive",
           "plan", "get", "serialize", "source_of", "compiled", "compiled_by_id", "current_version"]
