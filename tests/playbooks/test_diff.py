"""What changed between versions, and where a running enrollment goes (playbooks/diff.py)."""

from __future__ import annotations

from playbooks import load
from playbooks.diff import diff, step_mapping

BASE = """version: 1
key: diffed
name: D
audience:
  where: {tier: [1]}
steps:
  - id: a
    alert: {to: owner, message: "a"}
  - id: b
    wait: 1d
  - id: c
    alert: {to: owner, message: "c"}
  - id: d
    alert: {to: owner, message: "d"}
"""


def _pb(source):
    result = load(source)
    assert not result.errors, result.errors
    return result.playbook


def test_an_enrollment_keeps_its_step_by_id_or_goes_to_the_next_one_still_there():
    old = _pb(BASE)
    new = _pb(BASE.replace("""  - id: c
    alert: {to: owner, message: "c"}
""", "").replace("""  - id: a
""", """  - id: new-first
    alert: {to: owner, message: "n"}
  - id: a
"""))
    # a -> a (now index 1); b -> b; c (removed) -> d, the next old step the new one has; d -> d
    assert step_mapping(old, new) == {0: 1, 1: 2, 2: 3, 3: 3}
    last_removed = _pb(BASE.split("  - id: d")[0])
    assert step_mapping(old, last_removed)[3] == 3  # past the end: it completes


def test_the_diff_is_of_meaning_not_of_formatting():
    old = _pb(BASE)
    reformatted = _pb("# a comment\n" + BASE.replace("where: {tier: [1]}", "where:\n    tier: [1]"))
    assert diff(old, reformatted) == {"settings": [], "steps": {"added": [], "removed": [], "changed": [],
                                                                "moved": []}}
    changed = _pb(BASE.replace('message: "c"', 'message: "C!"').replace("tier: [1]", "tier: [2]"))
    assert diff(old, changed) == {"settings": ["audience"], "steps": {
        "added": [], "removed": [], "changed": [{"id": "c", "fields": ["message"]}], "moved": []}}
