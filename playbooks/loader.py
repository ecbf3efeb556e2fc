"""Loading a playbook: YAML text -> validated :class:`~playbooks.model.Playbook`.

The YAML is read by ``_yaml_reader``; the entry (audience, trigger, holdout) is checked
by ``_entry_schema``, the send window and caps by ``_pacing_schema``, conditions by
``_condition_schema`` and the steps by ``_step_schema``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from playbooks import sandbox, templates
from playbooks._check import MAX_VALUES, Checker, Node, TooLarge, describe, plain, root_node
from playbooks._condition_schema import parse_condition
from playbooks._entry_schema import parse_entry, parse_holdout
from playbooks._pacing_schema import parse_caps, parse_send_window
from playbooks._shapes import SHAPES, TOP_LEVEL_KEYS  # noqa: F401 - TOP_LEVEL_KEYS: this module's API too
from playbooks._step_schema import parse_on_cap, parse_steps
from playbooks._yaml_reader import MAX_SOURCE_BYTES, parse_yaml  # MAX_SOURCE_BYTES: this module's API too
from playbooks.errors import LoadResult, PlaybookError
from playbooks.model import Playbook
from playbooks.workspace import Workspace

_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
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
        data = parse_yaml(chk, source)
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
    parse_entry(chk, entries, root, values)
    if "holdout" in entries:
        values["holdout"] = parse_holdout(chk, entries["holdout"])
    if "reenroll" in entries:
        node = entries["reenroll"]
        values["reenroll"] = None if plain(node.value) == "never" else chk.duration(node)
    if "exit_when" in entries:
        values["exit_when"] = parse_condition(chk, entries["exit_when"])
    if "send_window" in entries:
        values["send_window"] = parse_send_window(chk, entries["send_window"])
    if "caps" in entries:
        values["caps"] = parse_caps(chk, entries["caps"])
    parse_on_cap(chk, entries, values)
    _set_template_contexts(chk, values)
    steps = parse_steps(chk, entries["steps"]) if "steps" in entries else None
    if chk.errors or steps is None:
        return None
    return Playbook(steps=tuple(steps), **values)



def load_condition(source: str, filename: str = "condition.yaml", workspace: Workspace | None = None):
    """A condition alone (a segment's), in the playbook condition language: ``(condition
    or None, [located errors])``."""
    workspace = workspace if workspace is not None else Workspace.default()
    chk = Checker(filename, workspace)
    data = parse_yaml(chk, source)
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



def _set_template_contexts(chk: Checker, values: dict) -> None:
    info = {"key": values.get("key") or "sample", "name": values.get("name") or "Sample",
            "product": values.get("product")}
    workspace = chk.workspace
    chk.contexts = {
        False: templates.build_context(info, workspace.sample_account),
        True: templates.build_context(info, workspace.sample_account, workspace.sample_contact,
                                      SAMPLE_UNSUBSCRIBE_URL, SAMPLE_BROWSER_URL),
    }



__all__ = ["load", "load_file", "load_condition", "LoadResult", "MAX_SOURCE_BYTES", "PlaybookError", "TOP_LEVEL_KEYS"]
