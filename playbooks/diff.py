"""What changed between two versions of a playbook: the text, and the meaning.

:func:`diff` compares two compiled playbooks (so formatting, comments and the order of
keys do not count): the settings that changed (audience, caps, exit_when, ...), and the
steps matched by id: added, removed, changed (which fields), moved (a new position).
:func:`step_mapping` is where a running enrollment goes when it moves to the new
version (``apply --migrate``): the same step id, or else the first later step of its
old version that the new version still has, or else the end.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from playbooks.model import Playbook

#: Top-level fields compared, in the order they are reported.
SETTINGS = ("name", "product", "description", "priority", "audience", "trigger", "holdout", "reenroll",
            "exit_when", "send_window", "caps")


@dataclass(frozen=True)
class StepChange:
    id: str
    fields: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"id": self.id, "fields": list(self.fields)}


def text_diff(old_source: str, new_source: str, old_name: str, new_name: str) -> list[str]:
    """A unified diff of the two sources, as lines without their line ends."""
    return list(difflib.unified_diff(old_source.splitlines(), new_source.splitlines(), old_name, new_name,
                                     lineterm=""))


def diff(old: Playbook, new: Playbook) -> dict:
    """``{"settings": [names], "steps": {"added", "removed", "changed", "moved"}}``."""
    before, after = old.to_dict(), new.to_dict()
    old_steps = {s["id"]: s for s in before["steps"]}
    new_steps = {s["id"]: s for s in after["steps"]}
    return {"settings": [name for name in SETTINGS if before.get(name) != after.get(name)], "steps": {
        "added": [s for s in new_steps if s not in old_steps],
        "removed": [s for s in old_steps if s not in new_steps],
        "changed": _changed_steps(old_steps, new_steps), "moved": _moved_steps(old_steps, new_steps)}}


def _changed_steps(old_steps: dict, new_steps: dict) -> list[dict]:
    """The steps both have whose fields differ (their position aside), with those fields."""
    changed = []
    for step_id, step in new_steps.items():
        was = old_steps.get(step_id)
        if was is None:
            continue
        fields = tuple(sorted(k for k in set(step) | set(was) if k != "index" and step.get(k) != was.get(k)))
        if fields:
            changed.append(StepChange(step_id, fields).to_dict())
    return changed


def _moved_steps(old_steps: dict, new_steps: dict) -> list[str]:
    """The steps both have that are no longer in the same order among them."""
    shared_old = [s for s in old_steps if s in new_steps]
    shared_new = [s for s in new_steps if s in old_steps]
    return [s for s, t in zip(shared_old, shared_new, strict=True) if s != t]


def step_mapping(old: Playbook, new: Playbook) -> dict[int, int]:
    """Old step index -> new step index for a running enrollment (``len(new.steps)``:
    past the last step, so it completes)."""
    new_index = {step.id: step.index for step in new.steps}
    mapping = {}
    for step in old.steps:
        later = [s.id for s in old.steps[step.index:] if s.id in new_index]
        mapping[step.index] = new_index[later[0]] if later else len(new.steps)
    return mapping


__all__ = ["diff", "text_diff", "step_mapping", "SETTINGS"]
