"""Reading a playbook's YAML text, within its size and time limits; errors located for the checker."""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from playbooks import sandbox
from playbooks._check import Checker

#: The largest playbook source accepted (UTF-8 bytes): a hundred times a long playbook,
#: small enough that parsing and checking it answers within a few seconds.
MAX_SOURCE_BYTES = 256 * 1024
#: The most YAML values (scalars, lists, mappings) a source may hold: some sixty times
#: the longest example, and what the YAML library reads in about a second.
MAX_YAML_NODES = 10_000


def parse_yaml(chk: Checker, source: str) -> Any:
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

