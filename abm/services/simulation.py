"""The engine on a simulated clock, in memory: what the dispatcher would do, without
writing or sending anything.

:func:`simulate` takes enrollments (the planned playbook's future ones and the running
enrollments of other playbooks on the same accounts, whose touches count against the
same caps) and runs them the way the dispatcher does, with the same code:

- ``playbooks.machine.run`` advances each due enrollment (one dispatcher pass);
- ``abm.services.touches.build`` makes its touches (recipients, suppression, frequency
  caps in playbook priority order, send windows in the account's time zone, rendering),
  with a cap book that counts the touches already in the database *and* the ones
  simulated so far;
- a ``set_stage`` moves the account's stage in the facts, and then, as
  ``enrollment.handle_stage_changes`` does, the account's running enrollments are checked
  against their ``exit_when`` and the waiting ones are woken.

The clock jumps from one due time to the next (what a dispatcher running at every due
instant would see). A ``wait_until`` is re-checked every 15 minutes by the engine; here
it jumps to the first re-check at which its conditions could have changed (an event
leaving an ``activity`` window) or to its timeout: the result is the same, since without
new engagement nothing else changes.

What it cannot know is the future: no new engagement (opens, clicks, replies, visits),
no stage moved by the CRM or a person, every send succeeds. So conditions that wait for
engagement take their "no" side, as they would if nobody engaged.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from abm.db import db, in_list
from abm.models import Touch
from abm.services import touches
from playbooks import sandbox
from playbooks.conditions import AccountFacts, Activity, OpportunityMatch, evaluate, walk
from playbooks.machine import (
    RECHECK_EVERY,
    WAITING,
    EnrollmentState,
    SetStageAction,
    SkippedAction,
    TouchAction,
)
from playbooks.machine import run as run_machine
from playbooks.model import Cap, Playbook, WaitUntilStep

#: As the dispatcher: enrollments per batch and machine calls per enrollment and pass.
BATCH_SIZE = 1000
MAX_CALLS = 20
#: Bounded work: at most this many distinct instants are simulated, in at most this
#: many seconds, or less when the caller's ``sandbox.deadline`` ends sooner (the plan's
#: does); each render keeps the sandbox's own limits. A plan cut short says so.
MAX_ROUNDS = 20_000
MAX_SECONDS = 20.0


@dataclass
class Runner:
    """One simulated enrollment. ``foreground``: of the playbook being planned."""

    id: int
    playbook_id: int
    priority: int
    playbook: Playbook
    account_id: int
    state: EnrollmentState
    foreground: bool = True
    due: datetime | None = None
    visited: set[int] = field(default_factory=set)

    @property
    def running(self) -> bool:
        return not self.state.finished


@dataclass
class Outcome:
    """What happened: every touch row the engine would have written (payloads kept only
    for the first sendable touch of each foreground step), the runners in their final
    states, and the instant the simulation stopped at."""

    rows: list[dict]
    samples: dict[tuple[str, str | None], dict]  # (step id, variant) -> a rendered touch
    runners: list[Runner]
    stopped_at: datetime
    rounds: int
    cut_short: bool
    #: The limit that cut it short: ``time`` or ``instants`` (None when it finished).
    limit: str | None = None
    #: The step (index in the planned playbook) it was working on when it stopped.
    step_index: int | None = None


class Ledger:
    """The touches that count against caps: (per, owner id) -> [(due, channel)]."""

    def __init__(self) -> None:
        self.by_owner: dict[tuple[str, int], list[tuple[datetime, str]]] = defaultdict(list)

    def add(self, account_id: int, contact_id: int | None, channel: str, due: datetime) -> None:
        self.by_owner[("account", account_id)].append((due, channel))
        if contact_id is not None:
            self.by_owner[("contact", contact_id)].append((due, channel))

    def counted(self, cap: Cap, owner: int, earliest: datetime, latest: datetime) -> list[datetime]:
        """The due times ``touches.CapBook.load`` counts in the touches table, found here."""
        low, high = earliest - cap.within, latest + cap.within
        return [due for due, channel in self.by_owner.get((cap.per, owner), ())
                if low < due <= high and (not cap.channel or channel == cap.channel)]

    def load_stored(self, account_ids: list[int], since: datetime) -> None:
        """The stored touches of these accounts that caps count, due after ``since``."""
        if not account_ids:
            return
        rows = db.session.execute(select(Touch.account_id, Touch.contact_id, Touch.channel, Touch.due_at).where(
            in_list(Touch.account_id, account_ids), Touch.status.in_(touches.COUNTED), Touch.due_at > since))
        for account_id, contact_id, channel, due in rows:
            self.add(account_id, contact_id, channel, due)


class _SimulatedBook(touches.CapBook):
    def __init__(self, ledger: Ledger):
        super().__init__()
        self.ledger = ledger

    def load(self, cap: Cap, ids: set[int], earliest: datetime, latest: datetime) -> None:
        for owner in ids:
            dues = self.ledger.counted(cap, owner, earliest, latest)
            if dues:
                self.counts[(cap, owner)] = len(dues)
                self.latest[(cap, owner)] = max(dues)


def simulate(runners: list[Runner], facts: dict[int, AccountFacts], ledger: Ledger, now: datetime,
             until: datetime) -> Outcome:
    """Run ``runners`` from ``now`` until no foreground one is running or the clock
    passes ``until``."""
    left = sandbox.seconds_left()
    seconds = MAX_SECONDS if left is None else min(MAX_SECONDS, max(0.0, left))
    sim = _Simulation(runners, facts, ledger, time.monotonic() + seconds)
    rounds, at = 0, now
    foreground = [runner for runner in runners if runner.foreground]
    while sim.queue and any(runner.running for runner in foreground):
        if rounds >= MAX_ROUNDS:
            return Outcome(sim.rows, sim.samples, runners, at, rounds, True, "instants", _step_on(foreground))
        at = sim.queue[0][0]
        if at > until:
            break
        if sim.out_of_time() or not sim.round(at, sim.pop_due(at)):
            return Outcome(sim.rows, sim.samples, runners, at, rounds, True, "time",
                           sim.stopped_on if sim.stopped_on is not None else _step_on(foreground))
        rounds += 1
    return Outcome(sim.rows, sim.samples, runners, at, rounds, False)


def _step_on(runners: list[Runner]) -> int | None:
    """The step most of the still running ``runners`` are on."""
    on = Counter(r.state.step_index for r in runners if r.running)
    return on.most_common(1)[0][0] if on else None


class _Simulation:
    def __init__(self, runners: list[Runner], facts: dict[int, AccountFacts], ledger: Ledger, stop_by: float):
        self.facts, self.ledger, self.stop_by = facts, ledger, stop_by
        self.stopped_on: int | None = None  # the step being worked on when the time ran out
        self.rows: list[dict] = []
        self.samples: dict[tuple[str, str | None], dict] = {}
        self.queue: list[tuple[datetime, int, Runner]] = []
        self.by_account: dict[int, list[Runner]] = defaultdict(list)
        for runner in runners:
            self.by_account[runner.account_id].append(runner)
            if runner.running and runner.account_id in facts:
                self.schedule(runner, runner.state.next_run_at or runner.due)

    def schedule(self, runner: Runner, due: datetime) -> None:
        runner.due = due
        heapq.heappush(self.queue, (due, runner.id, runner))

    def pop_due(self, at: datetime) -> list[Runner]:
        """The runners due at ``at`` in the dispatcher's order (due time, id); queue
        entries made stale by a later reschedule are dropped."""
        due = []
        while self.queue and self.queue[0][0] <= at:
            when, _, runner = heapq.heappop(self.queue)
            if runner.running and runner.due == when:
                due.append(runner)
        return due

    def out_of_time(self) -> bool:
        return time.monotonic() > self.stop_by or sandbox.deadline_passed()

    def round(self, at: datetime, due: list[Runner]) -> bool:
        """One instant; False when the time ran out in it (its last batch left out)."""
        return all(self.batch(at, due[start:start + BATCH_SIZE]) for start in range(0, len(due), BATCH_SIZE))

    def batch(self, at: datetime, runners: list[Runner]) -> bool:
        """One dispatcher batch; False, with nothing recorded, when the time ran out in
        it (renders stopped by the deadline must not read as failed touches)."""
        pending, moved, skipped = [], set(), []
        for runner in runners:
            if self.out_of_time():
                self.stopped_on = runner.state.step_index if runner.foreground else None
                return False
            self.advance(runner, at, pending, skipped, moved)
        by_id = {runner.id: runner for runner in runners}
        built = touches.build(pending, at, _SimulatedBook(self.ledger))
        if self.out_of_time():
            mine = Counter(p.step.index for p in pending if by_id[p.enrollment_id].foreground)
            self.stopped_on = mine.most_common(1)[0][0] if mine else None
            return False
        for runner, row in skipped:
            self.record(runner, row)
        for row in built:
            if row["status"] in touches.COUNTED:
                self.ledger.add(row["account_id"], row["contact_id"], row["channel"], row["due_at"])
            self.record(by_id[row["enrollment_id"]], row)
        for account_id in moved:
            self.stage_moved(account_id, at)
        return True

    def advance(self, runner: Runner, at: datetime, pending: list, skipped: list, moved: set) -> None:
        """One machine call of ``runner`` at ``at``: its touches into ``pending``, the steps
        it skipped into ``skipped`` and its account into ``moved`` when it set a new stage."""
        facts = self.facts[runner.account_id]
        stage = facts.fields.get("stage")
        visited: list[int] = []
        runner.state, actions = run_machine(runner.playbook, runner.state, facts, at, MAX_CALLS, visited)
        if runner.foreground:
            runner.visited.update(visited)
        for action in actions:
            if isinstance(action, TouchAction):
                pending.append(touches.PendingTouch(runner.id, runner.playbook_id, runner.priority,
                                                    runner.playbook, action.step, runner.account_id, facts, at))
            elif isinstance(action, SkippedAction):
                skipped.append((runner, {"step_id": action.step_id, "step_index": action.step_index,
                                         "channel": runner.playbook.steps[action.step_index].channel or "",
                                         "status": "skipped", "error": "its when condition was false",
                                         "due_at": at, "contact_id": None, "account_id": runner.account_id}))
            elif isinstance(action, SetStageAction) and action.stage != stage:
                moved.add(runner.account_id)
        if runner.running:
            self.schedule(runner, self.next_due(runner, at))

    def record(self, runner: Runner, row: dict) -> None:
        payload = row.pop("payload", None)
        slim = {key: row.get(key) for key in ("account_id", "contact_id", "step_id", "step_index", "channel",
                                               "status", "error", "due_at", "variant")}
        slim.update(enrollment_id=runner.id, foreground=runner.foreground, playbook_id=runner.playbook_id)
        self.rows.append(slim)
        sample_key = (slim["step_id"], slim["variant"])  # one per step, and per A/B variant
        if runner.foreground and payload and slim["status"] in ("queued", "scheduled") \
                and sample_key not in self.samples:
            self.samples[sample_key] = {"account_id": slim["account_id"], "contact_id": slim["contact_id"],
                                        "payload": payload}

    def stage_moved(self, account_id: int, at: datetime) -> None:
        """As ``enrollment.handle_stage_changes``: exits checked, waits woken."""
        facts = self.facts[account_id]
        for runner in self.by_account[account_id]:
            if not runner.running:
                continue
            pb = runner.playbook
            if pb.exit_when is not None and evaluate(pb.exit_when, facts, at):
                runner.state = EnrollmentState(runner.state.step_index, "exited", None, None, "exit_condition")
            elif runner.state.status == WAITING:
                self.schedule(runner, at)

    def next_due(self, runner: Runner, at: datetime) -> datetime:
        state = runner.state
        due = state.next_run_at or at
        step = runner.playbook.steps[state.step_index] if state.step_index < len(runner.playbook.steps) else None
        if state.status != WAITING or not isinstance(step, WaitUntilStep):
            return due
        deadline = state.wait_started_at + step.timeout
        return first_recheck_that_may_differ(
            [step.condition, runner.playbook.exit_when], self.facts[runner.account_id], at, due, deadline)


def first_recheck_that_may_differ(conditions, facts: AccountFacts, evaluated_at: datetime, first: datetime,
                                  deadline: datetime) -> datetime:
    """The engine re-checks a ``wait_until`` at ``first``, then every ``RECHECK_EVERY``,
    the last time at ``deadline``. With no new events, its conditions can change only
    when an event leaves an ``activity`` window (at ``occurred_at + within``): the first
    re-check after the earliest such moment since ``evaluated_at``, or the deadline (an
    opportunity leaving a ``created_within`` counts the same way)."""
    change = None
    for leaves in _window_exits(conditions, facts):
        if leaves >= evaluated_at:
            change = leaves if change is None else min(change, leaves)
    if change is None or change >= deadline:
        return deadline
    if change < first:
        return first
    steps = (change - first) // RECHECK_EVERY + 1
    return min(first + steps * RECHECK_EVERY, deadline)


def _window_exits(conditions, facts: AccountFacts):
    """The moments an event leaves an ``activity`` window, or an opportunity leaves an
    ``opportunity``'s ``created_within``."""
    for condition in conditions:
        for node in walk(condition) if condition is not None else ():
            if isinstance(node, Activity) and node.within is not None:
                yield from (occurred_at + node.within for event_type, occurred_at in facts.events
                            if not node.types or event_type in node.types)
            elif isinstance(node, OpportunityMatch) and node.within is not None:
                yield from (opportunity["created_at"] + node.within for opportunity in facts.opportunities)


def horizon_of(playbook: Playbook) -> timedelta:
    """Long enough for an enrollment to walk every step: the sum of its waits and
    timeouts, plus a week for send windows."""
    total = timedelta(days=7)
    for step in playbook.steps:
        total += getattr(step, "duration", None) or getattr(step, "timeout", None) or timedelta(0)
    return total


__all__ = ["Runner", "Outcome", "Ledger", "simulate", "horizon_of", "first_recheck_that_may_differ"]
