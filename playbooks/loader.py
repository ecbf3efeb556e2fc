"""Loading a playbook: YAML text -> validated :class:`~playbooks.model.Playbook`."""

from __future__ import annotations

import os
import re
import zoneinfo
from functools import lru_cache
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from playbooks import sandbox, templates
from playbooks._check import MAX_VALUES, Checker, Node, TooLarge, describe, plain, root_node, suggest, unknown
from playbooks._condition_schema import parse_condition
from playbooks._shapes import SHAPES, TOP_LEVEL_KEYS  # noqa: F401 - TOP_LEVEL_KEYS: this module's API too
from playbooks._step_schema import parse_on_cap, parse_steps
from playbooks.errors import LoadResult, PlaybookError
from playbooks.model import (
    DAYS,
    ActivityTrigger,
    Audience,
    Cap,
    Playbook,
    ScoreCrossedTrigger,
    SendWindow,
    StageChangedTrigger,
    Trigger,
)
from playbooks.workspace import Workspace

_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")
_HOURS = re.compile(r"^\s*([0-9]{2}):([0-9]{2})\s*-\s*([0-9]{2}):([0-9]{2})\s*$")
_TRIGGERS = ("stage_changed", "score_crossed", "activity")
_CAP_CHANNELS = ("email", "ads", "alert", "task", "webhook")
#: The largest playbook source accepted (UTF-8 bytes): a hundred times a long playbook,
#: small enough that parsing and checking it answers within a few seconds.
MAX_SOURCE_BYTES = 256 * 1024
#: The most YAML values (scalars, lists, mappings) a source may hold: some sixty times
#: the longest example, and what the YAML library reads in about a second.
MAX_YAML_NODES = 10_000
#: The time validating one playbook may take altogether (seconds): reading the YAML,
#: checking it and rendering every template against the sample account. Going over it
#: is a located error at the value where it stopped.
VALIDATION_SECONDS = 3.0
SAMPLE_UNSUBSCRIBE_URL = "https://abm.example.com/u/sample-token"
SAMPLE_BROWSER_URL = "https://abm.example.com/v/sample-token"


def load(source: str, filename: str = "playbook.yaml", workspace: Workspace | None = None) -> LoadResult:
    """Parse and validate ``source`` (the YAML text of one playbook).

    All or nothing: ``LoadResult.playbook`` is set only when there is no error, and
    ``LoadResult.errors`` holds every error found, sorted by line and column, each a
    :class:`~playbooks.errors.PlaybookError` located in ``filename``. Never raises for
    bad input. ``workspace`` defaults to ``Workspace.default()``.
    """
    workspace = workspace if workspace is not None else Workspace.default()
    chk = Checker(filename, workspace)
    with sandbox.deadline(VALIDATION_SECONDS):
        data = _parse_yaml(chk, source)
        playbook = _checked(chk, data) if not chk.errors else None
    errors = sorted(set(chk.errors), key=lambda e: (e.line, e.column, e.path, e.message))
    if errors:
        return LoadResult(None, errors)
    return LoadResult(playbook, [], chk.step_lines)


def _checked(chk: Checker, data: Any):
    """The compiled playbook of the parsed ``data``, every problem reported to ``chk``."""
    try:
        return _compile(chk, root_node(data))
    except RecursionError:
        chk.error((1, 1, "playbook"), "the document nests too deeply to be a playbook")
    except TooLarge:
        chk.error((1, 1, "playbook"), f"the document expands to more than {MAX_VALUES:,} values "
                                      "(through anchors and aliases?); a playbook is far smaller")
    except Exception as exc:  # noqa: BLE001 - a located error, never a stack trace
        chk.error((1, 1, "playbook"), f"internal error while validating ({type(exc).__name__}: {exc}); "
                                      "please report it with the file")
    return None


def load_file(path: str | os.PathLike, workspace: Workspace | None = None) -> LoadResult:
    """:func:`load` for a file on disk; errors name the path as given. A file that
    cannot be read or is not UTF-8 text is a located error too."""
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8-sig") as handle:
            source = handle.read()
    except UnicodeDecodeError as exc:
        before = b""
        try:
            with open(filename, "rb") as handle:
                before = handle.read()[: exc.start]
        except OSError:
            pass
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        error = PlaybookError(filename, line, column, "yaml", "the file is not UTF-8 text; save it as UTF-8")
        return LoadResult(None, [error])
    except OSError as exc:
        return LoadResult(None, [PlaybookError(filename, 1, 1, "playbook", f"cannot read the file: {exc.strerror}")])
    return load(source, filename, workspace)


def _parse_yaml(chk: Checker, source: str) -> Any:
    if not isinstance(source, str):
        chk.error((1, 1, "yaml"), f"expected the YAML text of a playbook, got {type(source).__name__}")
        return None
    if len(source) > MAX_SOURCE_BYTES or len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        chk.error((1, 1, "yaml"), f"the playbook is larger than {MAX_SOURCE_BYTES // 1024} KiB; "
                                  "a playbook is far smaller (split it into several)")
        return None
    yaml = YAML(typ="rt")
    yaml.Composer = _BoundedComposer
    try:
        return yaml.load(source)
    except _ReadingStopped as stop:
        chk.error((stop.line, stop.column, "yaml"), stop.message)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if type(exc).__name__ == "DuplicateKeyError":
            match = re.search(r'duplicate key "([^"]*)"', problem)
            problem = f"duplicate key '{match.group(1) if match else '?'}'; a key may appear once in a mapping"
        elif exc.context and exc.problem:
            where = exc.context_mark
            if where is not None and (where.line, where.column) != (mark.line, mark.column):
                problem = f"{exc.problem} ({exc.context} that starts at line {where.line + 1}, column {where.column + 1})"
            else:
                problem = f"{exc.problem} ({exc.context})"
        chk.error((line, col, "yaml"), f"invalid YAML: {problem}")
    except YAMLError as exc:
        position = getattr(exc, "position", None)
        line, col = _line_col(source, position) if isinstance(position, int) else (1, 1)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        chk.error((line, col, "yaml"), f"invalid YAML: {message}")
    except RecursionError:
        chk.error((1, 1, "yaml"), "invalid YAML: the document nests too deeply")
    except Exception as exc:  # noqa: BLE001 - the YAML library failed on odd input
        chk.error((1, 1, "yaml"), f"invalid YAML: {exc}")
    return None


class _ReadingStopped(Exception):
    def __init__(self, mark: Any, message: str):
        super().__init__(message)
        self.line, self.column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        self.message = message


class _BoundedComposer(Composer):
    """The YAML library's composer, stopped at the value where the document goes over
    :data:`MAX_YAML_NODES` values or the validation's time runs out."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.abm_nodes = getattr(self, "abm_nodes", 0) + 1
        if self.abm_nodes > MAX_YAML_NODES:
            raise _ReadingStopped(self.parser.peek_event().start_mark,
                                  f"the document holds more than {MAX_YAML_NODES:,} values (size limit); "
                                  "a playbook is far smaller (split it into several)")
        if not self.abm_nodes & 63 and sandbox.deadline_passed():
            raise _ReadingStopped(self.parser.peek_event().start_mark,
                                  f"reading the YAML stopped here: it took longer than the "
                                  f"{sandbox.deadline_seconds():g} s altogether (time limit) that validating "
                                  "a playbook may take")
        return super().compose_node(parent, index)


def _line_col(source: str, position: int) -> tuple[int, int]:
    before = source[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def _compile(chk: Checker, root: Node) -> Playbook | None:
    if root.value is None:
        chk.error(root, "the file is empty; a playbook is a mapping with version, key, name and steps")
        return None
    entries = chk.mapping(root, *SHAPES["playbook"])
    if entries is None:
        return None
    values: dict[str, Any] = {}

    version = plain(entries["version"].value) if "version" in entries else 1
    if isinstance(version, bool) or version != 1:
        chk.error(entries["version"], f"'version' must be 1, found {describe(entries['version'].value)}")
    if "key" in entries:
        key = chk.text(entries["key"])
        if key is not None and not _KEY.match(key):
            chk.error(entries["key"], f"'{key}' is not a valid key: 2 to 64 lowercase letters, digits and "
                                      "dashes, starting with a letter or digit (such as tier1-expansion)")
        values["key"] = key
    if "name" in entries:
        values["name"] = chk.text(entries["name"])
    for optional in ("product", "description"):
        if optional in entries and entries[optional].value is not None:
            values[optional] = chk.text(entries[optional], allow_empty=True)
    if "priority" in entries:
        values["priority"] = chk.integer(entries["priority"], 0, 100)
    _entry(chk, entries, root, values)
    if "holdout" in entries:
        values["holdout"] = _holdout(chk, entries["holdout"])
    if "reenroll" in entries:
        node = entries["reenroll"]
        values["reenroll"] = None if plain(node.value) == "never" else chk.duration(node)
    if "exit_when" in entries:
        values["exit_when"] = parse_condition(chk, entries["exit_when"])
    if "send_window" in entries:
        values["send_window"] = _send_window(chk, entries["send_window"])
    if "caps" in entries:
        values["caps"] = _caps(chk, entries["caps"])
    parse_on_cap(chk, entries, values)
    _set_template_contexts(chk, values)
    steps = parse_steps(chk, entries["steps"]) if "steps" in entries else None
    if chk.errors or steps is None:
        return None
    return Playbook(steps=tuple(steps), **values)


def _entry(chk: Checker, entries: dict[str, Node], root: Node, values: dict) -> None:
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


def load_condition(source: str, filename: str = "condition.yaml", workspace: Workspace | None = None):
    """A condition alone (a segment's), in the playbook condition language: ``(condition
    or None, [located errors])``."""
    workspace = workspace if workspace is not None else Workspace.default()
    chk = Checker(filename, workspace)
    data = _parse_yaml(chk, source)
    condition = None
    if not chk.errors:
        if data is None:
            chk.error((1, 1, "condition"), "the condition is empty; write at least one field (such as tier: [1])")
        else:
            try:
                condition = parse_condition(chk, root_node(data))
            except (RecursionError, TooLarge):
                chk.error((1, 1, "condition"), "the condition nests too deeply or is too large")
    errors = sorted(set(chk.errors), key=lambda e: (e.line, e.column, e.path, e.message))
    return (None if errors else condition), errors


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


def _holdout(chk: Checker, node: Node) -> float | None:
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


@lru_cache(maxsize=1)
def _timezones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _send_window(chk: Checker, node: Node) -> SendWindow | None:
    entries = chk.mapping(node, *SHAPES["send_window"])
    if entries is None:
        return None
    ok = True
    timezone = chk.workspace.default_timezone
    if "timezone" in entries:
        name = chk.text(entries["timezone"])
        if name is None:
            ok = False
        elif name not in _timezones():
            close = suggest(name, _timezones())
            hint = f"did you mean '{close}'?" if close else "use an IANA name such as America/New_York"
            chk.error(entries["timezone"], f"unknown time zone '{name}'; {hint}")
            ok = False
        else:
            timezone = name
    days = DAYS
    if "days" in entries:
        listed = chk.string_list(entries["days"], "days")
        if listed is None:
            ok = False
        else:
            for day, element in listed:
                if day not in DAYS:
                    chk.error(element, unknown("day", day, DAYS, listing="days"))
                    ok = False
            days = tuple(day for day in DAYS if day in {value for value, _ in listed})
    start, end = 0, 1440
    if "hours" in entries:
        hours = _hours(chk, entries["hours"])
        if hours is None:
            ok = False
        else:
            start, end = hours
    return SendWindow(timezone, days, start, end) if ok else None


def _hours(chk: Checker, node: Node) -> tuple[int, int] | None:
    value = plain(node.value)
    match = _HOURS.match(value) if isinstance(value, str) else None
    problem = None
    if not match:
        problem = f"'hours' is a quoted span such as \"09:00-17:00\", found {describe(value)}"
    else:
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            problem = f"'{value}' is not a valid span of hours (00:00 to 24:00)"
        elif start >= end:
            problem = f"the window '{value}' must end after it starts (windows across midnight are not supported)"
    if problem:
        chk.error(node, problem)
        return None
    return start, end


def _caps(chk: Checker, node: Node) -> tuple[Cap, ...] | None:
    """Two forms. The workspace's: ``{contact: {max: 2, per: 7d}, account: {max: 4,
    per: 7d}}`` (caps on marketing emails). The list form, for other channels:
    ``[{per: contact|account, max: N, within: DURATION, channel?: CHANNEL}]`` (no
    channel: every touch channel)."""
    if node.is_map:
        return _workspace_form_caps(chk, node)
    if not node.is_seq:
        chk.error(node, f"'caps' is a mapping such as {{contact: {{max: 2, per: 7d}}}} or a list such as "
                        f"[{{per: account, max: 4, within: 7d, channel: ads}}], found {describe(node.value)}")
        return None
    caps = []
    ok = True
    for element in node.elements():
        entries = chk.mapping(element, *SHAPES["cap"])
        if entries is None:
            ok = False
            continue
        per = plain(entries["per"].value) if "per" in entries else None
        if "per" in entries and per not in ("contact", "account"):
            chk.error(entries["per"], f"'per' is contact or account, found {describe(per)}")
            per = None
        most = chk.integer(entries["max"], low=1) if "max" in entries else None
        within = chk.duration(entries["within"]) if "within" in entries else None
        channel = None
        if "channel" in entries:
            channel = plain(entries["channel"].value)
            if channel not in _CAP_CHANNELS:
                chk.error(entries["channel"], unknown("channel", channel, _CAP_CHANNELS, listing="channels"))
                ok = False
        if per is None or most is None or within is None:
            ok = False
            continue
        caps.append(Cap(per, most, within, channel))
    return tuple(caps) if ok else None


def _workspace_form_caps(chk: Checker, node: Node) -> tuple[Cap, ...] | None:
    entries = chk.mapping(node, *SHAPES["caps.workspace"])
    if entries is None:
        return None
    caps = []
    ok = True
    for per, child in entries.items():
        fields = chk.mapping(child, *SHAPES["caps.workspace.entry"])
        if fields is None:
            ok = False
            continue
        most = chk.integer(fields["max"], low=1) if "max" in fields else None
        within = chk.duration(fields["per"]) if "per" in fields else None
        if most is None or within is None:
            ok = False
            continue
        caps.append(Cap(per, most, within, "email"))
    return tuple(caps) if ok else None


def _set_template_contexts(chk: Checker, values: dict) -> None:
    info = {"key": values.get("key") or "sample", "name": values.get("name") or "Sample",
            "product": values.get("product")}
    workspace = chk.workspace
    chk.contexts = {
        False: templates.build_context(info, workspace.sample_account),
        True: templates.build_context(info, workspace.sample_account, workspace.sample_contact,
                                      SAMPLE_UNSUBSCRIBE_URL, SAMPLE_BROWSER_URL),
    }


__all__ = ["load", "load_file", "LoadResult", "PlaybookError", "TOP_LEVEL_KEYS"]
