"""What engagement, stages and deals tell the orchestration engine: wake waiting
enrollments, start playbooks triggered by activity or by a score crossing a threshold."""

from __future__ import annotations

from datetime import datetime

from abm.services import enrollment


def engagement_changed(account_ids: set[int], by_type: dict[str, set[int]], previous_scores: dict[int, float],
                       now: datetime) -> None:
    """``previous_scores``: each account's score before this batch (for score_crossed triggers)."""
    enrollment.wake(account_ids, now=now)
    enrollment.on_activity(by_type, now=now)
    enrollment.on_score_changed(account_ids, now=now, previous=previous_scores)


def stage_changed(account, from_stage: str | None, to_stage: str, at: datetime) -> None:
    """Called by ``accounts.change_stage``: exits of the account's running enrollments,
    waking its waits, and entries of playbooks triggered by the change."""
    enrollment.on_stage_changed(account.id, from_stage, to_stage, now=at)


def opportunities_changed(account_ids, now: datetime | None = None) -> None:
    """A deal was opened or changed (by hand, the API or the CRM sync): the accounts'
    waiting enrollments are due now, so an ``exit_when``/``wait_until`` on
    ``opportunity`` is checked on the next dispatch, whatever the account's stage."""
    enrollment.wake(account_ids, now=now)
