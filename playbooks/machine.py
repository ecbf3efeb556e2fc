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

from dataclasses import dataclass, field
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
    state: EnrollmentState
    actions: tuple[Action, ...] = field(default_factory=tuple)


def _copy_facts(facts: AccountFacts) -> AccountFacts:
    return AccountFacts(fields=dict(facts.fields), events=facts.events, contacts=facts.contacts)


def advance(playbook: Playbook, state: EnrollmentState, facts: AccountFacts, now: datetime) -> Advance:
    """Advance one enrollment as far as it goes at ``now`` (see the module docstring)."""
    if state.finished:
        return Advance(state, ())
    facts = _copy_facts(facts)
    actions: list[Action] = []
    index = state.step_index
    resuming = state.status == WAITING and state.wait_started_at is not None
    steps = playbook.steps
    first = True

    while True:
        if playbook.exit_when is not None and evaluate(playbook.exit_when, facts, now):
            return Advance(EnrollmentState(index, EXITED, None, None, "exit_condition"), tuple(actions))
        if index >= len(steps):
            return Advance(EnrollmentState(index, COMPLETED, None, None, "end"), tuple(actions))
        step = steps[index]
        resume, first = resuming and first, False

        if not resume and step.when is not None and not evaluate(step.when, facts, now):
            actions.append(SkippedAction(step.id, index, "when_false"))
            index += 1
            continue

        if step.makes_touches:
            actions.append(TouchAction(step.id, index, step.kind, step))
            return Advance(EnrollmentState(index + 1, ACTIVE, now), tuple(actions))

        if isinstance(step, SetStageStep):
            actions.append(SetStageAction(step.stage, step.id, index))
            facts.fields["stage"] = step.stage
            index += 1
            continue

        if isinstance(step, ExitStep):
            return Advance(EnrollmentState(index, COMPLETED, None, None, "exit_step"), tuple(actions))

        if isinstance(step, BranchStep):
            if evaluate(step.condition, facts, now):
                index = playbook.step_index(step.then)
            elif step.else_ is not None:
                index = playbook.step_index(step.else_)
            else:
                index += 1
            continue

        if isinstance(step, WaitStep):
            started = state.wait_started_at if resume else now
            due = started + step.duration
            if now >= due:
                index += 1
                continue
            return Advance(EnrollmentState(index, WAITING, due, started), tuple(actions))

        if isinstance(step, WaitUntilStep):
            started = state.wait_started_at if resume else now
            if evaluate(step.condition, facts, now):
                index += 1
                continue
            deadline = started + step.timeout
            if now >= deadline:
                if step.on_timeout == "exit":
                    return Advance(EnrollmentState(index, EXITED, None, None, "timeout"), tuple(actions))
                index = index + 1 if step.on_timeout == "continue" else playbook.step_index(step.on_timeout)
                continue
            next_check = min(now + RECHECK_EVERY, deadline)
            return Advance(EnrollmentState(index, WAITING, next_check, started), tuple(actions))

        raise ValueError(f"unknown step kind {step.kind!r}")  # pragma: no cover


__all__ = [
    "ACTIVE", "WAITING", "COMPLETED", "EXITED", "RECHECK_EVERY", "EnrollmentState", "TouchAction",
    "SetStageAction", "SkippedAction", "Advance", "advance", "next_window_opening", "in_window",
]
