"""The state machine that advances one enrollment: a pure function.

Contract for the engine
-----------------------
An enrollment's state is an :class:`EnrollmentState`; a new enrollment starts at
``EnrollmentState()`` (step 0, ``active``, due now). Held-out enrollments never reach
the machine. When an enrollment is due (``next_run_at <= now``) or woken early (its
account's engagement or stage changed), the engine calls::

    result = advance(playbook, state, facts, now)

and then, in one transaction: stores ``result.state``; applies each action in order
(``SetStageAction``: move the account's stage; ``TouchAction``: resolve recipients,
render with ``playbooks.templates.render_touch`` and write the touches, scheduled at
``playbooks.windows.next_window_opening(window, now)``; ``SkippedAction``: record the
step as skipped). ``advance`` never sends, never reads a clock: ``now`` is the only time.

What ``advance`` does:

1. ``completed``/``exited`` states are returned unchanged, with no action.
2. Before every step it runs, it checks ``exit_when``; when it holds the enrollment
   is ``exited`` with ``exit_reason="exit_condition"`` (actions already produced in
   this call are kept). ``set_stage`` updates the stage in its copy of the facts, so a
   stage a step sets is seen by ``exit_when`` and later conditions in the same call.
3. A step whose ``when`` is false yields ``SkippedAction(step_id, step_index,
   "when_false")`` and the next step runs. ``when`` is evaluated when a step is
   reached, not when a wait on it resumes.
4. Steps by kind:

   - touch steps (email, audience, alert, task, webhook): ``TouchAction``; the call
     ends there with the state at the next step, ``active``, ``next_run_at=now``
     (call ``advance`` again, now or on the next dispatch).
   - ``set_stage``: ``SetStageAction(stage, ...)``, then the next step.
   - ``wait``: on arrival the state becomes ``waiting`` on that step with
     ``wait_started_at=now`` and ``next_run_at=now+duration``; the call ends. When
     called again at or after ``wait_started_at+duration`` it moves on; called earlier
     (woken) it returns the same waiting state.
   - ``wait_until``: moves on at once if the condition holds; otherwise ``waiting``
     with ``wait_started_at=now`` and ``next_run_at=min(now+15m, started+timeout)``.
     Each later call moves on when the condition holds, else at or after
     ``started+timeout`` follows ``on_timeout`` (``continue``: the next step; ``exit``:
     ``exited`` with ``exit_reason="timeout"``; a step id: that step), else stays
     waiting with ``next_run_at=min(now+15m, started+timeout)``.
   - ``branch``: jumps to ``then`` if the condition holds, else to ``else`` (or the
     next step).
   - ``exit``: ``completed`` with ``exit_reason="exit_step"``.
   - past the last step: ``completed`` with ``exit_reason="end"``.

So a finished enrollment is ``completed`` (reason ``exit_step`` or ``end``) or
``exited`` (reason ``exit_condition`` or ``timeout``), with ``next_run_at=None``.
Every call terminates: jumps go forward only, and a call makes at most one touch step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from playbooks.conditions import AccountFacts, evaluate
from playbooks.model import (
    BranchStep,
    ExitStep,
    Playbook,
    SetStageStep,
    Step,
    WaitStep,
    WaitUntilStep,
)
from playbooks.windows import in_window, next_window_opening

#: How often a ``wait_until`` is re-checked at the latest.
RECHECK_EVERY = timedelta(minutes=15)

ACTIVE, WAITING, COMPLETED, EXITED = "active", "waiting", "completed", "exited"
STATUSES = (ACTIVE, WAITING, COMPLETED, EXITED)


@dataclass(frozen=True)
class EnrollmentState:
    """Where an enrollment is.

    ``step_index``: the 0-based index of the step to run (or being waited on).
    ``status``: ``active`` (due at ``next_run_at``; None means now), ``waiting``
    (on a ``wait``/``wait_until`` step), ``completed`` or ``exited`` (final).
    ``wait_started_at``: when the current wait began (waiting only).
    ``exit_reason``: for final states, ``exit_step``/``end`` (completed) or
    ``exit_condition``/``timeout`` (exited).
    """

    step_index: int = 0
    status: str = ACTIVE
    next_run_at: datetime | None = None
    wait_started_at: datetime | None = None
    exit_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in (COMPLETED, EXITED)


@dataclass(frozen=True)
class TouchAction:
    """Make the touches of ``step`` (a touch-making step, ``kind`` its action)."""

    step_id: str
    step_index: int
    kind: str
    step: Step


@dataclass(frozen=True)
class SetStageAction:
    stage: str
    step_id: str = ""
    step_index: int = -1


@dataclass(frozen=True)
class SkippedAction:
    step_id: str
    step_index: int
    reason: str = "when_false"


Action = TouchAction | SetStageAction | SkippedAction


@dataclass(frozen=True)
class Advance:
    """The state a call ends in, the actions it produced, and the indexes of the steps it
    visited, in order (a step waited on again counts again)."""

    state: EnrollmentState
    actions: tuple[Action, ...] = field(default_factory=tuple)
    visited: tuple[int, ...] = field(default_factory=tuple)


def _copy_facts(facts: AccountFacts) -> AccountFacts:
    """A copy whose fields a ``set_stage`` may change; the lists are shared, not copied."""
    return replace(facts, fields=dict(facts.fields))


def advance(playbook: Playbook, state: EnrollmentState, facts: AccountFacts, now: datetime) -> Advance:
    """Advance one enrollment as far as it goes at ``now`` (see the module docstring)."""
    if state.finished:
        return Advance(state, ())
    walk = _Walk(playbook, state, _copy_facts(facts), now)
    index, resume = state.step_index, state.status == WAITING and state.wait_started_at is not None
    while True:
        outcome = walk.visit(index, resume)
        if isinstance(outcome, EnrollmentState):
            return Advance(outcome, tuple(walk.actions), tuple(walk.visited))
        index, resume = outcome, False


def run(playbook: Playbook, state: EnrollmentState, facts: AccountFacts, now: datetime,
        max_calls: int = 20, visited: list[int] | None = None) -> tuple[EnrollmentState, list[Action]]:
    """What one dispatcher pass does to an enrollment: :func:`advance` again and again
    while it stays due at ``now`` (so consecutive touch steps go out in one pass), at
    most ``max_calls`` times. A ``set_stage`` is written into ``facts`` (the caller's:
    other enrollments of the account see it). Returns the state and the actions;
    ``visited``, when given, is extended with the indexes of the steps visited."""
    actions: list[Action] = []
    for _ in range(max_calls):
        result = advance(playbook, state, facts, now)
        state = result.state
        for action in result.actions:
            if isinstance(action, SetStageAction):
                facts.fields["stage"] = action.stage
        actions.extend(result.actions)
        if visited is not None:
            visited.extend(result.visited)
        if state.status != ACTIVE or (state.next_run_at and state.next_run_at > now):
            break
    return state, actions


class _Walk:
    """One :func:`advance` call: ``visit`` runs the step at an index and returns the
    index to go on with, or the state the call ends in."""

    def __init__(self, playbook: Playbook, state: EnrollmentState, facts: AccountFacts, now: datetime):
        self.playbook, self.state, self.facts, self.now = playbook, state, facts, now
        self.actions: list[Action] = []
        self.visited: list[int] = []

    def holds(self, condition) -> bool:
        return evaluate(condition, self.facts, self.now)

    def visit(self, index: int, resume: bool) -> int | EnrollmentState:
        playbook = self.playbook
        if playbook.exit_when is not None and self.holds(playbook.exit_when):
            return EnrollmentState(index, EXITED, None, None, "exit_condition")
        if index >= len(playbook.steps):
            return EnrollmentState(index, COMPLETED, None, None, "end")
        step = playbook.steps[index]
        self.visited.append(index)
        if not resume and step.when is not None and not self.holds(step.when):
            self.actions.append(SkippedAction(step.id, index, "when_false"))
            return index + 1
        if step.makes_touches:
            self.actions.append(TouchAction(step.id, index, step.kind, step))
            return EnrollmentState(index + 1, ACTIVE, self.now)
        handler = getattr(self, f"_{step.kind}", None)
        if handler is None:  # pragma: no cover - the loader knows every kind
            raise ValueError(f"unknown step kind {step.kind!r}")
        return handler(step, index, resume)

    def _set_stage(self, step: SetStageStep, index: int, resume: bool) -> int:
        self.actions.append(SetStageAction(step.stage, step.id, index))
        self.facts.fields["stage"] = step.stage
        return index + 1

    def _exit(self, step: ExitStep, index: int, resume: bool) -> EnrollmentState:
        return EnrollmentState(index, COMPLETED, None, None, "exit_step")

    def _branch(self, step: BranchStep, index: int, resume: bool) -> int:
        if self.holds(step.condition):
            return self.playbook.step_index(step.then)
        return self.playbook.step_index(step.else_) if step.else_ is not None else index + 1

    def _started(self, resume: bool) -> datetime:
        return self.state.wait_started_at if resume else self.now

    def _wait(self, step: WaitStep, index: int, resume: bool) -> int | EnrollmentState:
        started = self._started(resume)
        due = started + step.duration
        if self.now >= due:
            return index + 1
        return EnrollmentState(index, WAITING, due, started)

    def _wait_until(self, step: WaitUntilStep, index: int, resume: bool) -> int | EnrollmentState:
        started = self._started(resume)
        if self.holds(step.condition):
            return index + 1
        deadline = started + step.timeout
        if self.now < deadline:
            return EnrollmentState(index, WAITING, min(self.now + RECHECK_EVERY, deadline), started)
        if step.on_timeout == "exit":
            return EnrollmentState(index, EXITED, None, None, "timeout")
        return index + 1 if step.on_timeout == "continue" else self.playbook.step_index(step.on_timeout)


__all__ = [
    "ACTIVE", "WAITING", "COMPLETED", "EXITED", "RECHECK_EVERY", "EnrollmentState", "TouchAction",
    "SetStageAction", "SkippedAction", "Advance", "advance", "run", "next_window_opening", "in_window",
]
