"""What engagement tells the orchestration engine: wake waiting enrollments, start
playbooks triggered by activity or by a score crossing a threshold."""

from __future__ import annotations

from datetime import datetime


def engagement_changed(account_ids: set[int], by_type: dict[str, set[int]], now: datetime) -> None:
    from abm.services import enrollment

    enrollment.wake(account_ids, now=now)
    enrollment.on_activity(by_type, now=now)
    enrollment.on_score_changed(account_ids, now=now)
