"""The state machine on its own: advance(playbook, state, facts, now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from playbooks import AccountFacts, load
from playbooks.machine import (
    RECHECK_EVERY,
    EnrollmentState,
    SetStageAction,
    SkippedAction,
    TouchAction,
    advance,
)
from playbooks.workspace import Workspace

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def compile_steps(steps_yaml: str, extra: str = ""):
    source = f"""
version: 1
key: machine-test
name: Machine test
audience:
  where: {{tier: 1}}
{extra}
steps:
{steps_yaml}
"""
    result = load(source, "machine.yaml", Workspace.default())
    assert result.errors == [], [str(e) for e in result.errors]
    return result.playbook


def facts(**fields) -> AccountFacts:
    base = {"tier": 1, "stage": "target", "score": 0, "engagement": "cold", "tags": []}
    base.update(fields)
    return AccountFacts(fields=base)


ALERT = """
  - id: {id}
    alert: {{to: owner, message: "hi {{{{ account.name }}}}"}}
"""


def alert(step_id: str) -> str:
    return ALERT.format(id=step_id)


def run_to_rest(playbook, state, account, now):
    """Call advance until it stops asking to be called again now; collect actions."""
    actions = []
    for _ in range(50):
        result = advance(playbook, state, account, now)
        actions.extend(result.actions)
        state = result.state
        if state.finished or state.next_run_at is None or state.next_run_at > now:
            return state, actions
    raise AssertionError("advance did not come to rest")


def test_touch_step_emits_one_touch_and_points_at_next_step_due_now():
    playbook = compile_steps(alert("a") + alert("b"))
    result = advance(playbook, EnrollmentState(), facts(), T0)
    assert result.actions == (TouchAction("a", 0, "alert", playbook.steps[0]),)
    assert result.state == EnrollmentState(step_index=1, status="active", next_run_at=T0)
    second = advance(playbook, result.state, facts(), T0)
    assert [action.step_id for action in second.actions] == ["b"]
    third = advance(playbook, second.state, facts(), T0)
    assert third.state.status == "completed" and third.state.exit_reason == "end"
    assert third.state.next_run_at is None and third.actions == ()


def test_wait_holds_until_duration_has_passed_even_when_woken_early():
    playbook = compile_steps("  - wait: 3d\n" + alert("after"))
    waiting = advance(playbook, EnrollmentState(), facts(), T0)
    assert waiting.state == EnrollmentState(0, "waiting", T0 + timedelta(days=3), T0)
    assert waiting.actions == ()
    woken = advance(playbook, waiting.state, facts(), T0 + timedelta(days=1))
    assert woken.state == waiting.state and woken.actions == ()
    due = advance(playbook, waiting.state, facts(), T0 + timedelta(days=3))
    assert [action.step_id for action in due.actions] == ["after"]
    assert due.state.step_index == 2


def test_wait_until_moves_on_at_once_when_condition_already_holds():
    playbook = compile_steps("""
  - wait_until: {condition: {score: {gte: 25}}, timeout: 14d}
""" + alert("next"))
    result = advance(playbook, EnrollmentState(), facts(score=30), T0)
    assert [action.step_id for action in result.actions] == ["next"]


def test_wait_until_rechecks_every_15_minutes_and_moves_on_when_condition_holds():
    playbook = compile_steps("""
  - wait_until: {condition: {score: {gte: 25}}, timeout: 14d}
""" + alert("next"))
    waiting = advance(playbook, EnrollmentState(), facts(score=3), T0)
    assert waiting.state == EnrollmentState(0, "waiting", T0 + RECHECK_EVERY, T0)
    later = T0 + timedelta(hours=5)
    still = advance(playbook, waiting.state, facts(score=10), later)
    assert still.state == EnrollmentState(0, "waiting", later + RECHECK_EVERY, T0)
    moved = advance(playbook, still.state, facts(score=25), later + timedelta(minutes=1))
    assert [action.step_id for action in moved.actions] == ["next"]


def test_wait_until_next_check_never_passes_the_timeout():
    playbook = compile_steps("  - wait_until: {condition: {score: {gte: 25}}, timeout: 30m}\n" + alert("x"))
    waiting = advance(playbook, EnrollmentState(), facts(), T0)
    near_deadline = T0 + timedelta(minutes=25)
    result = advance(playbook, waiting.state, facts(), near_deadline)
    assert result.state.next_run_at == T0 + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("on_timeout", "expected_touch", "expected_status", "expected_reason"),
    [
        ("continue", "right-after", "active", None),
        ("exit", None, "exited", "timeout"),
        ("nurture", "nurture", "active", None),
    ],
)
def test_wait_until_timeout_paths(on_timeout, expected_touch, expected_status, expected_reason):
    playbook = compile_steps(
        f"  - wait_until: {{condition: {{engagement: hot}}, timeout: 14d, on_timeout: {on_timeout}}}\n"
        + alert("right-after") + alert("middle") + alert("nurture")
    )
    waiting = advance(playbook, EnrollmentState(), facts(), T0)
    result = advance(playbook, waiting.state, facts(), T0 + timedelta(days=14))
    touched = [action.step_id for action in result.actions]
    assert touched == ([expected_touch] if expected_touch else [])
    assert result.state.status == expected_status
    assert result.state.exit_reason == expected_reason


def test_wait_until_condition_true_at_timeout_wins_over_timeout():
    playbook = compile_steps(
        "  - wait_until: {condition: {engagement: hot}, timeout: 1d, on_timeout: exit}\n" + alert("go")
    )
    waiting = advance(playbook, EnrollmentState(), facts(), T0)
    result = advance(playbook, waiting.state, facts(engagement="hot"), T0 + timedelta(days=2))
    assert [action.step_id for action in result.actions] == ["go"]


def test_branch_jumps_to_then_or_else_or_next():
    playbook = compile_steps("""
  - branch: {if: {tier: 1}, then: big}
""" + alert("small") + alert("big"))
    assert advance(playbook, EnrollmentState(), facts(tier=1), T0).actions[0].step_id == "big"
    assert advance(playbook, EnrollmentState(), facts(tier=2), T0).actions[0].step_id == "small"
    with_else = compile_steps("""
  - branch: {if: {tier: 1}, then: a, else: c}
""" + alert("a") + alert("b") + alert("c"))
    assert advance(with_else, EnrollmentState(), facts(tier=3), T0).actions[0].step_id == "c"


def test_when_false_skips_and_records_then_runs_the_next_step():
    playbook = compile_steps("""
  - id: vip-only
    when: {tags: vip}
    alert: {to: owner, message: vip}
""" + alert("everyone"))
    result = advance(playbook, EnrollmentState(), facts(tags=["other"]), T0)
    assert result.actions == (
        SkippedAction("vip-only", 0, "when_false"),
        TouchAction("everyone", 1, "alert", playbook.steps[1]),
    )
    vip = advance(playbook, EnrollmentState(), facts(tags=["vip"]), T0)
    assert [type(action) for action in vip.actions] == [TouchAction]
    assert vip.actions[0].step_id == "vip-only"


def test_when_is_not_re_evaluated_when_a_wait_resumes():
    playbook = compile_steps("""
  - when: {score: {lt: 50}}
    wait: 1d
""" + alert("after"))
    waiting = advance(playbook, EnrollmentState(), facts(score=10), T0)
    assert waiting.state.status == "waiting"
    resumed = advance(playbook, waiting.state, facts(score=90), T0 + timedelta(days=1))
    assert [type(action) for action in resumed.actions] == [TouchAction]


def test_exit_when_is_checked_first_and_exits_with_reason():
    playbook = compile_steps(alert("a"), extra="exit_when: {stage: [opportunity]}")
    result = advance(playbook, EnrollmentState(), facts(stage="opportunity"), T0)
    assert result.actions == ()
    assert result.state.status == "exited" and result.state.exit_reason == "exit_condition"
    assert result.state.next_run_at is None


def test_exit_when_interrupts_a_wait_when_woken():
    playbook = compile_steps("  - wait: 7d\n" + alert("a"), extra="exit_when: {score: {gte: 80}}")
    waiting = advance(playbook, EnrollmentState(), facts(score=1), T0)
    woken = advance(playbook, waiting.state, facts(score=85), T0 + timedelta(hours=2))
    assert woken.state.status == "exited" and woken.state.exit_reason == "exit_condition"


def test_set_stage_emits_action_and_is_seen_by_exit_when_and_later_conditions():
    playbook = compile_steps("""
  - set_stage: engaged
  - when: {stage: engaged}
    alert: {to: owner, message: engaged now}
""")
    result = advance(playbook, EnrollmentState(), facts(stage="target"), T0)
    assert result.actions[0] == SetStageAction("engaged", "step-1", 0)
    assert isinstance(result.actions[1], TouchAction)
    exiting = compile_steps("  - set_stage: opportunity\n" + alert("never"),
                            extra="exit_when: {stage: opportunity}")
    done = advance(exiting, EnrollmentState(), facts(stage="mqa"), T0)
    assert done.actions == (SetStageAction("opportunity", "step-1", 0),)
    assert done.state.status == "exited" and done.state.exit_reason == "exit_condition"


def test_exit_step_completes_and_later_steps_never_run():
    playbook = compile_steps("  - exit: true\n" + alert("unreachable"))
    result = advance(playbook, EnrollmentState(), facts(), T0)
    assert result.state.status == "completed" and result.state.exit_reason == "exit_step"
    assert result.actions == ()


def test_finished_states_are_returned_unchanged():
    playbook = compile_steps(alert("a"))
    for status, reason in (("completed", "end"), ("exited", "exit_condition")):
        state = EnrollmentState(1, status, None, None, reason)
        assert advance(playbook, state, facts(), T0).state == state
        assert advance(playbook, state, facts(), T0).actions == ()


def test_activity_and_contacts_conditions_drive_branches():
    playbook = compile_steps("""
  - branch:
      if:
        all:
          - activity: {type: [email_click], within: 7d, at_least: 2}
          - contacts: {role: [champion]}
      then: hot
""" + alert("cold") + alert("hot"))
    clicks = [("email_click", T0 - timedelta(days=1)), ("email_click", T0 - timedelta(days=6))]
    account = AccountFacts(fields={"tier": 1}, events=clicks, contacts=[{"role": "champion"}])
    assert advance(playbook, EnrollmentState(), account, T0).actions[0].step_id == "hot"
    old = AccountFacts(fields={"tier": 1}, events=clicks[:1] + [("email_click", T0 - timedelta(days=8))],
                       contacts=[{"role": "champion"}])
    assert advance(playbook, EnrollmentState(), old, T0).actions[0].step_id == "cold"


def test_full_example_runs_to_completion_through_every_path():
    """The spec's flow: intro, wait, ads, wait_until (timeout -> nurture)."""
    playbook = compile_steps("""
  - id: intro
    email: {to: {roles: [decision_maker]}, subject: Hi, body: "<p>Hi</p>"}
  - wait: 3d
  - id: linkedin
    audience: {list: tier1, action: add}
  - id: engaged
    wait_until: {condition: {score: {gte: 25}}, timeout: 14d, on_timeout: nurture}
  - id: tell-ae
    alert: {to: owner, message: warm}
  - set_stage: engaged
  - exit: true
  - id: nurture
    email: {to: {roles: [user]}, subject: Read, body: "<p>Read</p>"}
""")
    state, actions = run_to_rest(playbook, EnrollmentState(), facts(), T0)
    assert [getattr(a, "step_id", None) for a in actions] == ["intro"]
    assert state.status == "waiting" and state.next_run_at == T0 + timedelta(days=3)
    now = state.next_run_at
    state, actions = run_to_rest(playbook, state, facts(), now)
    assert [a.step_id for a in actions] == ["linkedin"]
    assert state.status == "waiting" and state.step_index == 3
    # cold account: time out after 14 days into nurture
    cold_state, cold_actions = run_to_rest(playbook, state, facts(), now + timedelta(days=14))
    assert [a.step_id for a in cold_actions] == ["nurture"]
    assert cold_state.status == "completed" and cold_state.exit_reason == "end"
    # warm account: alert, set stage, exit
    warm_state, warm_actions = run_to_rest(playbook, state, facts(score=30), now + timedelta(hours=1))
    assert [type(a).__name__ for a in warm_actions] == ["TouchAction", "SetStageAction"]
    assert warm_state.status == "completed" and warm_state.exit_reason == "exit_step"
