"""The loader never crashes and always answers with located errors.

Three sources of bad input: YAML-ish token soup, random edits of the example
playbooks, and random (well-formed YAML) trees built from the language's own words.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from playbooks import Playbook, load
from playbooks.loader import TOP_LEVEL_KEYS
from playbooks.model import STEP_KINDS
from tests.playbooks.conftest import corpus_workspace

#: Multiply the example counts for a long local run: PLAYBOOKS_FUZZ_SCALE=20 pytest ...
SCALE = int(os.environ.get("PLAYBOOKS_FUZZ_SCALE", "1"))
EXAMPLES = [path.read_text() for path in sorted((Path(__file__).parents[2] / "playbooks" / "examples").glob("*.yaml"))]
WORKSPACE = corpus_workspace()
ERROR_FORMAT = re.compile(r"^fuzz\.yaml:\d+:\d+ \S+: .+", re.S)

WORDS = list(TOP_LEVEL_KEYS) + list(STEP_KINDS) + [
    "where", "tier", "stage", "score", "any", "all", "not", "gte", "in", "exists", "contains", "activity",
    "contacts", "at_least", "within", "to", "roles", "titles", "limit", "subject", "body", "template",
    "condition", "timeout", "on_timeout", "if", "then", "else", "id", "when", "on", "owner", "connector",
    "list", "action", "payload", "message", "title", "due", "per", "max", "timezone", "days", "hours",
    "3d", "15m", "10%", "true", "null", "exit", "continue", "step-1", "intro.html", "decision_maker",
    "{{ account.name }}", "{{ nope }}", "{% if %}", "[VP", "09:00-17:00", "America/New_York", "outbox", "1", "-3",
]
TOKENS = WORDS + [":", ": ", "- ", "-", "[", "]", "{", "}", ",", "\n", "\n  ", "\n    ", "  ", "&a ", "*a", "<<: ",
                  "!!python/object ", "!tag ", "? ", "|", ">", "'", '"', "#", "%YAML 1.2\n", "---\n", "...\n",
                  "\t", "\\", "\x00", "\ufeff", "é", "😀", "1e9", ".nan", "0x1F", "2026-01-01"]


def check(source: str) -> None:
    result = load(source, "fuzz.yaml", WORKSPACE)
    assert (result.playbook is None) == bool(result.errors)
    lines = source.count("\n") + 2
    for error in result.errors:
        text = str(error)
        assert ERROR_FORMAT.match(text), text
        assert error.file == "fuzz.yaml"
        assert 1 <= error.line <= lines, text
        assert error.column >= 1, text
        assert error.path and error.message
        assert "internal error" not in error.message, text
    if result.playbook is not None:
        assert Playbook.from_dict(result.playbook.to_dict()) == result.playbook


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_token_soup_never_crashes(source):
    check(source)


@settings(max_examples=60 * SCALE, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(source):
    check(source)


@st.composite
def mutated_example(draw):
    lines = draw(st.sampled_from(EXAMPLES)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(lines) - 1))
        operation = draw(st.sampled_from(["delete", "duplicate", "swap", "token", "indent", "truncate", "word"]))
        if operation == "delete" and len(lines) > 1:
            del lines[position]
        elif operation == "duplicate":
            lines.insert(position, lines[position])
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[position], lines[other] = lines[other], lines[position]
        elif operation == "token":
            line = lines[position]
            cut = draw(st.integers(0, len(line)))
            lines[position] = line[:cut] + draw(st.sampled_from(TOKENS)) + line[cut:]
        elif operation == "indent":
            lines[position] = draw(st.sampled_from(["", " ", "   ", "      "])) + lines[position].lstrip()
        elif operation == "truncate":
            line = lines[position]
            lines[position] = line[: draw(st.integers(0, len(line)))]
        else:
            line = lines[position]
            if ":" in line:
                key, _, value = line.partition(":")
                if draw(st.booleans()):
                    lines[position] = f"{key}: {draw(st.sampled_from(WORDS))}"
                else:
                    indent = key[: len(key) - len(key.lstrip())]
                    lines[position] = f"{indent}{draw(st.sampled_from(WORDS))}:{value}"
    return "\n".join(lines) + "\n"


@settings(max_examples=60 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_example())
def test_mutated_examples_never_crash(source):
    check(source)


scalars = st.one_of(st.sampled_from(WORDS), st.integers(-3, 200), st.booleans(), st.none(), st.floats(allow_nan=False))
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(WORDS), children, max_size=4),
    ),
    max_leaves=25,
)


@settings(max_examples=50 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries(
    {"version": st.just(1), "key": st.just("fuzz"), "name": st.just("Fuzz")},
    optional={word: trees for word in ("audience", "trigger", "exit_when", "send_window", "caps", "steps", "holdout")},
))
def test_random_trees_never_crash(tree):
    buffer = io.StringIO()
    YAML(typ="safe", pure=True).dump(tree, buffer)
    check(buffer.getvalue())
