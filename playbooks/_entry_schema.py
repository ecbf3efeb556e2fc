"""How accounts enter a playbook, checked: the audience or the trigger, and the holdout.

YAML -> :mod:`playbooks.model.entry`, with located errors.
"""

from __future__ import annotations

import re

from playbooks._check import Checker, Node, describe, plain, unknown
from playbooks._condition_schema import parse_condition
from playbooks._shapes import SHAPES
from playbooks.model import ActivityTrigger, Audience, ScoreCrossedTrigger, StageChangedTrigger, Trigger

_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")
_TRIGGERS = ("stage_changed", "score_crossed", "activity")


def parse_entry(chk: Checker, entries: dict[str, Node], root: Node, values: dict) -> None:
    """Set ``values["audience"]`` or ``values["trigger"]``: a playbook has exactly one of them."""
    if "audience" in entries and "trigger" in entries:
        chk.error(entries["trigger"], "a playbook has either an 'audience' (batch entry) or a 'trigger' "
                                      "(event entry), not both")
        return
    if "audience" in entries:
        values["audience"] = _audience(chk, entries["audience"])
    elif "trigger" in entries:
        values["trigger"] = _trigger(chk, entries["trigger"])
    else:
        chk.error(root, "a playbook needs an 'audience' (which accounts enter) or a 'trigger' "
                        "(which event makes an account enter)")


def _audience(chk: Checker, node: Node) -> Audience | None:
    entries = chk.mapping(node, *SHAPES["audience"])
    if entries is None:
        return None
    if ("where" in entries) == ("segment" in entries):
        chk.error(node, "an audience has either 'where' (a condition) or 'segment' (the name of a saved "
                        "segment), one of them")
        return None
    segment = None
    if "segment" in entries:
        segment, where = _segment(chk, entries["segment"])
    else:
        where = parse_condition(chk, entries["where"])
    limit = chk.integer(entries["limit"], low=1) if "limit" in entries else None
    if where is None or ("limit" in entries and limit is None):
        return None
    return Audience(where, limit, segment)


def _segment(chk: Checker, node: Node):
    """(name, its condition) of ``segment: NAME``: the condition the segment has when
    this version is applied."""
    name = plain(node.value)
    segments = chk.workspace.segments
    if not isinstance(name, str) or not name:
        chk.error(node, f"'segment' takes the name of a saved segment, found {describe(name)}")
        return None, None
    if name not in segments:
        if not segments:
            chk.error(node, f"unknown segment '{name}' (no segment is saved; save one with abm segment save)")
        else:
            chk.error(node, unknown("segment", name, sorted(segments), listing="saved"))
        return None, None
    return name, segments[name]



def _trigger(chk: Checker, node: Node) -> Trigger | None:
    if not node.is_map:
        chk.error(node, f"'trigger' is a mapping such as {{on: stage_changed, to: [opportunity]}}, "
                        f"found {describe(node.value)}")
        return None
    on_value = plain(node.value.get("on"))
    if on_value is None:
        chk.error(node, f"missing required key 'on' (one of {', '.join(_TRIGGERS)})")
        return None
    if on_value not in _TRIGGERS:
        on_node = next(child for key, child, _ in node.items() if key == "on")
        chk.error(on_node, unknown("trigger", on_value, _TRIGGERS, listing="triggers"))
        return None
    if on_value == "stage_changed":
        entries = chk.mapping(node, *SHAPES["trigger.stage_changed"])
        if entries is None or "to" not in entries:
            return None
        to = _stages(chk, entries["to"])
        from_ = _stages(chk, entries["from"]) if "from" in entries else ()
        return StageChangedTrigger(tuple(to), tuple(from_)) if to is not None and from_ is not None else None
    if on_value == "score_crossed":
        entries = chk.mapping(node, *SHAPES["trigger.score_crossed"])
        if entries is None or "above" not in entries:
            return None
        above = chk.number(entries["above"])
        return ScoreCrossedTrigger(above) if above is not None else None
    entries = chk.mapping(node, *SHAPES["trigger.activity"])
    if entries is None:
        return None
    types: list[str] | None = []
    if "type" in entries:
        listed = chk.string_list(entries["type"], "event types")
        types = [value for value, _ in listed] if listed is not None else None
    within = chk.duration(entries["within"]) if "within" in entries else None
    if types is None or ("within" in entries and within is None):
        return None
    return ActivityTrigger(tuple(types), within)


def _stages(chk: Checker, node: Node) -> list[str] | None:
    listed = chk.string_list(node, "stages")
    if listed is None:
        return None
    ok = True
    for stage, element in listed:
        if stage not in chk.workspace.stages:
            chk.error(element, unknown("stage", stage, chk.workspace.stages, listing="stages"))
            ok = False
    return [stage for stage, _ in listed] if ok else None


def parse_holdout(chk: Checker, node: Node) -> float | None:
    value = plain(node.value)
    match = _PERCENT.match(value) if isinstance(value, str) else None
    if not match:
        chk.error(node, f"'holdout' is a percentage such as 10%, found {describe(value)}")
        return None
    percent = float(match.group(1))
    if percent > 50:
        chk.error(node, f"a holdout of {match.group(1)}% is too large; it must be between 0% and 50%")
        return None
    return percent

