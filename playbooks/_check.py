"""The loader's toolkit: located YAML nodes and the error collector.

A :class:`Node` is a value of the parsed document with its dotted path and its
1-based line and column. Validators take nodes, report problems to a
:class:`Checker`, and return the compiled value (or None when it was wrong).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar

from playbooks import duration
from playbooks.errors import PlaybookError
from playbooks.workspace import Workspace

MAX_DEPTH = 24
#: How many condition and payload values one document may expand to (anchors and
#: aliases can make a small file describe an exponential tree).
MAX_VALUES = 5_000
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


@dataclass(frozen=True)
class Node:
    value: Any
    path: str
    line: int
    col: int

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_seq(self) -> bool:
        return isinstance(self.value, list)

    def child_path(self, key: str | int) -> str:
        """``a.b``, ``a[0]``; keys that are not plain words are JSON-quoted, spaces escaped (``a["x\\u0020y"]``), so
        that a path never holds a space."""
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        if not _PLAIN_KEY.match(key):
            quoted = json.dumps(key).replace(" ", "\\u0020")
            return f"{self.path}[{quoted}]"
        return f"{self.path}.{key}" if self.path and self.path != "playbook" else str(key)

    def items(self) -> Iterator[tuple[Any, Node, tuple[int, int]]]:
        """(key, value node, (key line, key column)) for a mapping node."""
        mapping = self.value
        for key in list(mapping.keys()):
            key_pos = _position(mapping, "key", key, (self.line, self.col))
            value_pos = _position(mapping, "value", key, key_pos)
            yield key, Node(mapping[key], self.child_path(str(key)), *value_pos), key_pos

    def elements(self) -> Iterator[Node]:
        for index, item in enumerate(self.value):
            pos = _position(self.value, "item", index, (self.line, self.col))
            yield Node(item, self.child_path(index), *pos)


def _position(container: Any, kind: str, key: Any, default: tuple[int, int]) -> tuple[int, int]:
    try:
        if kind == "item":
            line, col = container.lc.item(key)
        elif kind == "key":
            line, col = container.lc.key(key)
        else:
            line, col = container.lc.value(key)
        return int(line) + 1, int(col) + 1
    except Exception:  # noqa: BLE001 - merged keys and plain dicts carry no position
        return default


def root_node(data: Any) -> Node:
    line, col = 1, 1
    if isinstance(data, (CommentedMap, CommentedSeq)):
        try:
            line, col = data.lc.line + 1, data.lc.col + 1
        except Exception:  # noqa: BLE001
            pass
    return Node(data, "playbook", line, col)


def plain(value: Any) -> Any:
    """A ruamel scalar as a plain Python value (anchored bools are int subclasses;
    ``!!str 1`` is the text "1")."""
    if isinstance(value, TaggedScalar) and str(value.tag) == "tag:yaml.org,2002:str":
        return str(value.value)
    if type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def describe(value: Any) -> str:
    """How a value's type reads in a message."""
    value = plain(value)
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list" if value else "an empty list"
    if isinstance(value, (date, datetime)):
        return f"the date {value} (quote it to make it text)"
    if isinstance(value, TaggedScalar):
        return f"a value tagged {value.tag!s}"
    return f"a {type(value).__name__}"


def suggest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown(kind: str, word: Any, choices: Iterable[str], listing: str = "allowed") -> str:
    choices = list(choices)
    close = suggest(str(word), choices) if isinstance(word, str) else None
    if close:
        return f"unknown {kind} '{word}'; did you mean '{close}'?"
    return f"unknown {kind} '{word}' ({listing}: {', '.join(choices)})"


class TooLarge(Exception):
    """The document expands to more than :data:`MAX_VALUES` values."""


class Checker:
    """Collects every error; the validators below share it."""

    def __init__(self, filename: str, workspace: Workspace):
        self.filename = filename
        self.workspace = workspace
        self.errors: list[PlaybookError] = []
        self.contexts: dict[bool, dict] = {False: {}, True: {}}
        self.visited = 0
        #: Set once the time for validating is spent (reported once).
        self.out_of_time = False
        #: The line of each step, by index.
        self.step_lines: list[int] = []

    def visit(self) -> None:
        """Count one value against :data:`MAX_VALUES`; raises :class:`TooLarge`."""
        self.visited += 1
        if self.visited > MAX_VALUES:
            raise TooLarge

    def template_context(self, email: bool) -> dict:
        """The sample context templates are rendered against (``email``: with contact)."""
        return self.contexts[email]

    def error(self, node: Node | tuple[int, int, str], message: str) -> None:
        if isinstance(node, Node):
            line, col, path = node.line, node.col, node.path
        else:
            line, col, path = node
        self.errors.append(PlaybookError(self.filename, line, col, path, message))

    # -- mappings ---------------------------------------------------------------

    def mapping(self, node: Node, allowed: Iterable[str], required: Iterable[str] = (),
                what: str = "key") -> dict[str, Node] | None:
        """The known entries of a mapping node; reports non-mappings, unknown keys
        (with a "did you mean") and missing required keys."""
        if not node.is_map:
            self.error(node, f"expected a mapping (key: value lines), found {describe(node.value)}")
            return None
        allowed = list(allowed)
        entries: dict[str, Node] = {}
        suggested: set[str] = set()
        for key, child, (line, col) in node.items():
            if not isinstance(plain(key), str):
                self.error((line, col, node.path), f"a key must be text, found {describe(key)}")
            elif key not in allowed:
                self.error((line, col, child.path), unknown(what, key, allowed))
                suggested.add(suggest(str(key), allowed) or "")
            else:
                entries[str(key)] = child
        for key in required:
            # A misspelt required key is reported once, as the misspelling.
            if key not in entries and key not in node.value and key not in suggested:
                self.error(node, f"missing required key '{key}'")
        return entries

    # -- scalars ----------------------------------------------------------------

    def text(self, node: Node, allow_empty: bool = False) -> str | None:
        value = plain(node.value)
        if not isinstance(value, str):
            self.error(node, f"expected text, found {describe(node.value)}")
            return None
        if not allow_empty and not value.strip():
            self.error(node, "must not be empty")
            return None
        return value

    def integer(self, node: Node, low: int | None = None, high: int | None = None) -> int | None:
        value = plain(node.value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, f"expected a whole number, found {describe(node.value)}")
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.error(node, f"{value} is out of range; it must be {bounds}")
            return None
        return value

    def number(self, node: Node) -> float | int | None:
        value = plain(node.value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.error(node, f"expected a number, found {describe(node.value)}")
            return None
        return value

    def duration(self, node: Node) -> timedelta | None:
        value = plain(node.value)
        try:
            return duration.parse(value)
        except duration.DurationError as exc:
            self.error(node, str(exc))
            return None

    def email_address(self, node: Node, allow_owner: bool) -> str | None:
        value = self.text(node)
        if value is None:
            return None
        if allow_owner and value == "owner":
            return value
        if not _EMAIL.match(value):
            expected = "'owner' or an email address" if allow_owner else "an email address"
            self.error(node, f"'{value}' is not {expected}")
            return None
        return value

    def string_list(self, node: Node, what: str) -> list[tuple[str, Node]] | None:
        """A non-empty list of texts (a single text is accepted as a list of one)."""
        if isinstance(plain(node.value), str):
            value = self.text(node)
            return [(value, node)] if value is not None else None
        if not node.is_seq:
            self.error(node, f"expected a list of {what}, found {describe(node.value)}")
            return None
        if not node.value:
            self.error(node, f"the list of {what} is empty")
            return None
        result = []
        for element in node.elements():
            value = self.text(element)
            if value is not None:
                result.append((value, element))
        return result
