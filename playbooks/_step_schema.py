"""YAML steps -> :mod:`playbooks.model` steps, with located errors.

Ids, jumps, connectors and templates (rendered against the workspace's sample
account and contact) are all checked here.
"""

from __future__ import annotations

import re
from typing import Any

from playbooks import sandbox
from playbooks._check import MAX_DEPTH, Checker, Node, describe, plain, unknown
from playbooks._condition_schema import parse_condition
from playbooks._shapes import SHAPES
from playbooks._template_check import email_body, stopped, template_text
from playbooks._template_check import sender as sender_address
from playbooks._variant_schema import parse_variants
from playbooks.model import (
    CHANNEL_OF_KIND,
    STEP_KINDS,
    AlertStep,
    AudienceStep,
    BranchStep,
    EmailStep,
    ExitStep,
    Recipients,
    SetStageStep,
    Step,
    TaskStep,
    WaitStep,
    WaitUntilStep,
    WebhookStep,
)
from playbooks.patterns import PatternError, compile_pattern

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_RESERVED_IDS = ("exit", "continue")
#: The most steps a playbook may have: far more than a campaign needs, few enough that
#: validating and simulating it stays within seconds.
MAX_STEPS = 100


def parse_steps(chk: Checker, node: Node) -> list[Step] | None:
    """The compiled steps, or None when any is wrong (every error reported)."""
    if not node.is_seq:
        chk.error(node, f"'steps' is a list of steps, found {describe(node.value)}")
        return None
    if not node.value:
        chk.error(node, "a playbook needs at least one step")
        return None
    elements = list(node.elements())
    if len(elements) > MAX_STEPS:
        chk.error(elements[MAX_STEPS], f"a playbook has at most {MAX_STEPS} steps (step limit), this one "
                                       f"{len(elements):,}; split it into several playbooks")
        return None
    chk.step_lines = [element.line for element in elements]
    ids, explicit = _step_ids(chk, elements)
    steps = []
    for index, element in enumerate(elements):
        if sandbox.deadline_passed():
            stopped(chk, element)
            return None
        steps.append(_parse_step(chk, element, index, ids, explicit))
    return steps if all(step is not None for step in steps) else None


def _step_ids(chk: Checker, elements: list[Node]) -> tuple[list[str], list[bool]]:
    """Every step's id (explicit or ``step-N``), and whether it was written;
    reports bad and duplicate ids."""
    ids: list[str] = []
    explicit: list[bool] = []
    seen: dict[str, Node] = {}
    for index, element in enumerate(elements):
        step_id = f"step-{index + 1}"
        written = False
        if element.is_map and "id" in element.value:
            id_node = next(child for key, child, _ in element.items() if key == "id")
            value = plain(id_node.value)
            if not isinstance(value, str) or not _ID.match(value):
                chk.error(id_node, f"{describe(value)} is not a step id (letters, digits, - and _, "
                                   "starting with a letter or digit, at most 64)")
            elif value in _RESERVED_IDS:
                chk.error(id_node, f"'{value}' is reserved (on_timeout uses it); choose another id")
            else:
                step_id = value
                written = True
                if value in seen:
                    chk.error(id_node, f"duplicate step id '{value}' (also used at line {seen[value].line})")
                seen[value] = id_node
        elif step_id in seen:
            chk.error(element, f"this step's default id '{step_id}' is already used at line "
                               f"{seen[step_id].line}; give one of them another id")
        seen.setdefault(step_id, element)
        ids.append(step_id)
        explicit.append(written)
    return ids, explicit


def _jump(chk: Checker, node: Node, index: int, ids: list[str], explicit: list[bool]) -> str | None:
    value = plain(node.value)
    later = [step_id for position, step_id in enumerate(ids) if position > index and explicit[position]]
    known = f"known: {', '.join(later)}" if later else "no later step has an id; give the target step an 'id:'"
    if not isinstance(value, str):
        chk.error(node, f"expected a step id, found {describe(node.value)} ({known})")
        return None
    if value in ids[index + 1:]:
        return value
    if value in ids[: index + 1]:
        chk.error(node, f"'{value}' is not a later step id: jumps go forward only ({known})")
    else:
        chk.error(node, f"'{value}' is not a later step id ({known})")
    return None


def _parse_step(chk: Checker, node: Node, index: int, ids: list[str], explicit: list[bool]) -> Step | None:
    if not node.is_map:
        chk.error(node, f"a step is a mapping with one action ({', '.join(STEP_KINDS)}), "
                        f"found {describe(node.value)}")
        return None
    entries = chk.mapping(node, *SHAPES["step"])
    if entries is None:
        return None
    actions = [key for key in entries if key in STEP_KINDS]
    if not actions:
        if not any(key not in ("id", "when", "on_cap", "max_delay") for key in node.value):
            chk.error(node, f"this step has no action; write exactly one of {', '.join(STEP_KINDS)}")
        return None
    if len(actions) > 1:
        second = entries[actions[1]]
        chk.error(second, f"a step has exactly one action; this one has {' and '.join(actions)} "
                          "(split it into separate steps)")
        return None
    when = parse_condition(chk, entries["when"]) if "when" in entries else None
    common = {"id": ids[index], "index": index, "when": when}
    kind = actions[0]
    overrides = [key for key in ("on_cap", "max_delay") if key in entries]
    if overrides and kind not in CHANNEL_OF_KIND:
        chk.error(entries[overrides[0]], f"'{overrides[0]}' applies to steps that make touches "
                                         f"({', '.join(CHANNEL_OF_KIND)}), not to a {kind} step")
        return None
    parse_on_cap(chk, entries, common)
    step = _PARSERS[kind](chk, entries[kind], common, index, ids, explicit)
    if ("when" in entries and when is None) or len(entries) < len(node.value):
        return None  # an error was reported; do not compile a half-understood step
    return step


def parse_on_cap(chk: Checker, entries: dict[str, Node], values: dict) -> None:
    """``on_cap: defer | skip`` and ``max_delay``, of the playbook (defaults: defer, 7d) or of
    one touch-making step (overriding the playbook's): what a touch over a frequency cap does."""
    if "on_cap" in entries:
        node = entries["on_cap"]
        if plain(node.value) not in ("defer", "skip"):
            chk.error(node, "'on_cap' is 'defer' (wait for the next free slot, up to max_delay) or 'skip'")
        else:
            values["on_cap"] = plain(node.value)
    if "max_delay" in entries:
        delay = chk.duration(entries["max_delay"])
        if delay is not None:
            values["max_delay"] = delay


# --- touch-making steps -----------------------------------------------------------


def _connector(chk: Checker, entries: dict[str, Node], parent: Node, kind: str) -> str | None:
    channel = CHANNEL_OF_KIND[kind]
    workspace = chk.workspace
    if "connector" not in entries:
        name = workspace.default_connectors.get(channel)
        if name is None:
            chk.error(parent, f"no connector given and the workspace has no default connector for "
                              f"channel '{channel}'; name one with 'connector:'")
        return name
    node = entries["connector"]
    name = chk.text(node)
    if name is None:
        return None
    if name not in workspace.connectors:
        configured = sorted(workspace.connectors) or ["none"]
        chk.error(node, unknown("connector", name, configured, listing="configured"))
        return None
    channels = workspace.connectors[name]
    if channel not in channels:
        chk.error(node, f"connector '{name}' serves {', '.join(channels) or 'no channel'}, not {channel} "
                        f"({_article(kind)} {kind} step needs {_article(channel)} {channel} connector)")
        return None
    return name


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _email(chk, node, common, index, ids, explicit) -> Step | None:
    entries = chk.mapping(node, *SHAPES["email"])
    if entries is None:
        return None
    errors_before = len(chk.errors)
    to = _recipients(chk, entries["to"]) if "to" in entries else None
    subject = template_text(chk, entries["subject"], email=True) if "subject" in entries else None
    body, template = email_body(chk, entries)
    if body is None and "template" not in entries and "body" not in entries:
        chk.error(node, "an email needs 'template' (a file under templates/email/) or 'body' (inline HTML)")
    text = template_text(chk, entries["text"], email=True) if "text" in entries else None
    sender = sender_address(chk, entries["from"]) if "from" in entries else None
    connector = _connector(chk, entries, node, "email")
    variants = parse_variants(chk, entries["variants"]) if "variants" in entries else ()
    if len(chk.errors) > errors_before or None in (to, subject, body, connector, variants):
        return None
    return EmailStep(**common, to=to, subject=subject, body=body, template=template, text=text,
                     sender=sender, connector=connector, variants=variants)


def _recipients(chk: Checker, node: Node) -> Recipients | None:
    value = plain(node.value)
    if isinstance(value, str):
        if value == "owner":
            return Recipients(owner=True)
        chk.error(node, f"'to' is 'owner' or a mapping {{roles, titles, limit}}, found '{value}'")
        return None
    entries = chk.mapping(node, *SHAPES["email.to"])
    if entries is None:
        return None
    ok = True
    roles: list[str] = []
    if "roles" in entries:
        listed = chk.string_list(entries["roles"], "roles")
        ok = listed is not None
        for role, element in listed or ():
            if role not in chk.workspace.roles:
                chk.error(element, unknown("role", role, chk.workspace.roles, listing="roles"))
                ok = False
            roles.append(role)
    titles: list[str] = []
    if "titles" in entries:
        listed = chk.string_list(entries["titles"], "title patterns")
        ok = ok and listed is not None
        for title, element in listed or ():
            try:
                compile_pattern(title)
            except PatternError as exc:
                chk.error(element, f"invalid regular expression '{title}': {exc}")
                ok = False
            titles.append(title)
    limit = None
    if "limit" in entries:
        limit = chk.integer(entries["limit"], low=1)
        ok = ok and limit is not None
    if not ok:
        return None
    return Recipients(owner=False, roles=tuple(roles), titles=tuple(titles), limit=limit)


def _audience(chk, node, common, index, ids, explicit) -> Step | None:
    entries = chk.mapping(node, *SHAPES["audience_step"])
    if entries is None:
        return None
    errors_before = len(chk.errors)
    name = chk.text(entries["list"]) if "list" in entries else None
    action = None
    if "action" in entries:
        action = plain(entries["action"].value)
        if action not in ("add", "remove"):
            chk.error(entries["action"], f"'action' is add or remove, found {describe(action)}")
            action = None
    connector = _connector(chk, entries, node, "audience")
    if len(chk.errors) > errors_before or None in (name, action, connector):
        return None
    return AudienceStep(**common, connector=connector, list=name, action=action)


def _alert(chk, node, common, index, ids, explicit) -> Step | None:
    entries = chk.mapping(node, *SHAPES["alert"])
    if entries is None:
        return None
    errors_before = len(chk.errors)
    to = chk.email_address(entries["to"], allow_owner=True) if "to" in entries else None
    message = template_text(chk, entries["message"]) if "message" in entries else None
    connector = _connector(chk, entries, node, "alert")
    if len(chk.errors) > errors_before or None in (to, message, connector):
        return None
    return AlertStep(**common, to=to, message=message, connector=connector)


def _task(chk, node, common, index, ids, explicit) -> Step | None:
    entries = chk.mapping(node, *SHAPES["task"])
    if entries is None:
        return None
    errors_before = len(chk.errors)
    to = chk.email_address(entries["to"], allow_owner=True) if "to" in entries else None
    title = template_text(chk, entries["title"]) if "title" in entries else None
    due = chk.duration(entries["due"]) if "due" in entries else None
    connector = _connector(chk, entries, node, "task")
    if len(chk.errors) > errors_before or None in (to, title, connector):
        return None
    return TaskStep(**common, to=to, title=title, due=due, connector=connector)


def _webhook(chk, node, common, index, ids, explicit) -> Step | None:
    entries = chk.mapping(node, *SHAPES["webhook"])
    if entries is None:
        return None
    errors_before = len(chk.errors)
    payload = None
    if "payload" in entries:
        if not entries["payload"].is_map:
            chk.error(entries["payload"], f"'payload' is a mapping, found {describe(entries['payload'].value)}")
        else:
            payload = _json(chk, entries["payload"], 0)
    connector = _connector(chk, entries, node, "webhook")
    if len(chk.errors) > errors_before or payload is None or connector is None:
        return None
    return WebhookStep(**common, connector=connector, payload=payload)


def _json(chk: Checker, node: Node, depth: int) -> Any:
    """The payload as plain JSON; every string is rendered as a template."""
    chk.visit()
    if depth > MAX_DEPTH:
        chk.error(node, f"the payload nests more than {MAX_DEPTH} levels deep")
        return None
    value = plain(node.value)
    if node.is_map:
        result = {}
        for key, child, (line, col) in node.items():
            if not isinstance(plain(key), str):
                chk.error((line, col, node.path), f"a payload key must be text, found {describe(key)}")
                continue
            result[str(key)] = _json(chk, child, depth + 1)
        return result
    if node.is_seq:
        return [_json(chk, element, depth + 1) for element in node.elements()]
    if isinstance(value, str):
        return template_text(chk, node)
    if value is None or isinstance(value, (bool, int, float)):
        if isinstance(value, float) and value != value:
            chk.error(node, "NaN is not a JSON value")
        elif isinstance(value, float) and value in (float("inf"), float("-inf")):
            chk.error(node, "infinity is not a JSON value")
        return value
    chk.error(node, f"{describe(node.value)} is not a JSON value; quote it")
    return None


# --- flow steps -------------------------------------------------------------------


def _set_stage(chk, node, common, index, ids, explicit) -> Step | None:
    stage = chk.text(node)
    if stage is None:
        return None
    if stage not in chk.workspace.stages:
        chk.error(node, unknown("stage", stage, chk.workspace.stages, listing="stages"))
        return None
    return SetStageStep(**common, stage=stage)


def _wait(chk, node, common, index, ids, explicit) -> Step | None:
    value = chk.duration(node)
    return WaitStep(**common, duration=value) if value is not None else None


def _wait_until(chk, node, common, index, ids, explicit) -> Step | None:
    entries = chk.mapping(node, *SHAPES["wait_until"])
    if entries is None:
        return None
    errors_before = len(chk.errors)
    condition = parse_condition(chk, entries["condition"]) if "condition" in entries else None
    timeout = chk.duration(entries["timeout"]) if "timeout" in entries else None
    on_timeout = "continue"
    if "on_timeout" in entries:
        value = plain(entries["on_timeout"].value)
        if value in ("continue", "exit"):
            on_timeout = value
        else:
            on_timeout = _jump(chk, entries["on_timeout"], index, ids, explicit)
    if len(chk.errors) > errors_before or None in (condition, timeout, on_timeout):
        return None
    return WaitUntilStep(**common, condition=condition, timeout=timeout, on_timeout=on_timeout)


def _branch(chk, node, common, index, ids, explicit) -> Step | None:
    entries = chk.mapping(node, *SHAPES["branch"])
    if entries is None:
        return None
    errors_before = len(chk.errors)
    condition = parse_condition(chk, entries["if"]) if "if" in entries else None
    then = _jump(chk, entries["then"], index, ids, explicit) if "then" in entries else None
    otherwise = _jump(chk, entries["else"], index, ids, explicit) if "else" in entries else None
    if len(chk.errors) > errors_before or condition is None or then is None:
        return None
    return BranchStep(**common, condition=condition, then=then, else_=otherwise)


def _exit(chk, node, common, index, ids, explicit) -> Step | None:
    if plain(node.value) is not True:
        chk.error(node, f"'exit' takes true, found {describe(node.value)} (remove the step to not exit)")
        return None
    return ExitStep(**common)


_PARSERS = {
    "email": _email, "audience": _audience, "alert": _alert, "task": _task, "webhook": _webhook,
    "set_stage": _set_stage, "wait": _wait, "wait_until": _wait_until, "branch": _branch, "exit": _exit,
}
