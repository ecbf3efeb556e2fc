"""Holdout buckets, step timings for the dry run, recipients, and settings forms."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from playbooks import load
from playbooks.holdout import bucket, is_held_out
from playbooks.model import Cap, Recipients, SendWindow
from playbooks.schedule import step_timings
from playbooks.settings import SettingsError, parse_caps, parse_send_window
from playbooks.workspace import Workspace

EXAMPLES = Path(__file__).parents[2] / "playbooks" / "examples"


def test_holdout_is_stable_and_close_to_the_percentage():
    assert bucket("tier1", 42) == bucket("tier1", 42)
    assert bucket("tier1", 42) != bucket("other", 42)
    held = sum(is_held_out("tier1", account_id, 10) for account_id in range(20000))
    assert 1800 < held < 2200
    assert not any(is_held_out("tier1", account_id, 0) for account_id in range(1000))
    # the documented formula, so that SQL or another language can reproduce it

    digest = hashlib.sha256(b"tier1:42").digest()
    assert bucket("tier1", 42) == int.from_bytes(digest[:8], "big") / 2**64 * 100


def test_step_timings_follow_waits_branches_and_timeouts():
    playbook = load((EXAMPLES / "tier1-security-expansion.yaml").read_text(), workspace=Workspace.default()).playbook
    timings = {timing.step_id: timing for timing in step_timings(playbook)}
    assert timings["intro"].earliest == timedelta(0)
    assert timings["linkedin"].earliest == timings["linkedin"].latest == timedelta(days=3)
    assert (timings["tell-ae"].earliest, timings["tell-ae"].latest) == (timedelta(days=3), timedelta(days=17))
    # nurture is reached only by the timeout; the exit step before it stops the other path
    assert timings["nurture"].earliest == timings["nurture"].latest == timedelta(days=17)


def test_unreachable_steps_have_no_timing():
    source = """version: 1
key: unreachable
name: Unreachable
audience: {where: {tier: 1}}
steps:
  - exit: true
  - wait: 1d
"""
    timings = step_timings(load(source).playbook)
    assert timings[0].reachable and not timings[1].reachable


def test_recipients_filter_by_role_and_title_order_by_role_and_limit():
    contacts = [
        {"id": 1, "role": "champion", "title": "Head of Security"},
        {"id": 2, "role": "decision_maker", "title": "CISO"},
        {"id": 3, "role": "user", "title": "VP Engineering"},
        {"id": 4, "role": "decision_maker", "title": "vp, security"},
        {"id": 5, "role": "champion", "title": None},
    ]
    by_role = Recipients(roles=("decision_maker", "champion"), limit=3)
    assert [c["id"] for c in by_role.select(contacts)] == [2, 4, 1]
    by_title = Recipients(titles=("^vp\\b", "ciso"))
    assert [c["id"] for c in by_title.select(contacts)] == [2, 3, 4]
    assert Recipients().select(contacts) == contacts
    assert Recipients(owner=True).select(contacts) == []


def test_settings_caps_and_window_use_the_playbook_rules():
    assert parse_caps([{"per": "contact", "max": 2, "within": "7d", "channel": "email"}]) == (
        Cap("contact", 2, timedelta(days=7), "email"),)
    # the workspace settings form: caps on marketing emails
    assert parse_caps({"contact": {"max": 2, "per": "7d"}, "account": {"max": 4, "per": "7d"}}) == (
        Cap("contact", 2, timedelta(days=7), "email"), Cap("account", 4, timedelta(days=7), "email"))
    with pytest.raises(SettingsError) as caught:
        parse_caps([{"per": "person", "max": 0, "within": "7 days"}])
    assert caught.value.messages == [
        "caps[0].per: 'per' is contact or account, found 'person'",
        "caps[0].max: 0 is out of range; it must be at least 1",
        "caps[0].within: '7 days' is not a duration; write an integer followed by m, h, d or w (30m, 4h, 3d, 2w)",
    ]
    assert parse_send_window({"hours": "09:00-17:00", "days": ["mon"]}, "Europe/Paris") == SendWindow(
        "Europe/Paris", ("mon",), 540, 1020)
    with pytest.raises(SettingsError, match="send_window.timezone: unknown time zone 'Europe/Pari'"):
        parse_send_window({"timezone": "Europe/Pari"})
