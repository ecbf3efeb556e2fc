"""When each step of a playbook runs, relative to enrollment: for the dry run (plan).

Jumps go forward only, so one pass in step order is enough. ``wait`` adds its
duration; ``wait_until`` adds between nothing (the condition already holds) and its
timeout; ``branch`` may go either way; ``when`` never changes timing. Send windows and
frequency caps are not counted (they only delay touches).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from playbooks.model import BranchStep, ExitStep, Playbook, WaitStep, WaitUntilStep


@dataclass(frozen=True)
class StepTiming:
    """``earliest``/``latest``: the shortest and longest time after enrollment at which
    the step can run; both None when no path reaches the step."""

    step_id: str
    index: int
    kind: str
    earliest: timedelta | None
    latest: timedelta | None

    @property
    def reachable(self) -> bool:
        return self.earliest is not None


def step_timings(playbook: Playbook) -> list[StepTiming]:
    """One :class:`StepTiming` per step, in order."""
    count = len(playbook.steps)
    spans: list[tuple[timedelta, timedelta] | None] = [None] * (count + 1)
    spans[0] = (timedelta(0), timedelta(0))

    def reach(target: int, low: timedelta, high: timedelta) -> None:
        current = spans[target]
        spans[target] = (low, high) if current is None else (min(current[0], low), max(current[1], high))

    for step in playbook.steps:
        span = spans[step.index]
        if span is None:
            continue
        low, high = span
        following = step.index + 1
        if isinstance(step, ExitStep):
            continue
        if isinstance(step, WaitStep):
            reach(following, low + step.duration, high + step.duration)
        elif isinstance(step, WaitUntilStep):
            reach(following, low, high + step.timeout)
            if step.on_timeout not in ("continue", "exit"):
                reach(playbook.step_index(step.on_timeout), low + step.timeout, high + step.timeout)
        elif isinstance(step, BranchStep):
            reach(playbook.step_index(step.then), low, high)
            reach(playbook.step_index(step.else_) if step.else_ else following, low, high)
        else:
            reach(following, low, high)
        if step.when is not None:
            reach(following, low, high)  # skipped: the next step runs at once
    return [
        StepTiming(step.id, step.index, step.kind, *(spans[step.index] or (None, None)))
        for step in playbook.steps
    ]
