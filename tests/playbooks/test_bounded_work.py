"""Bounded work: user regular expressions on RE2, templates with limits on output, loop
iterations and time, and validation that answers in bounded time, each limit named and
located. The timeouts below are not speed measurements: on a backtracking engine or an
unbounded template these calls do not return for minutes."""

from __future__ import annotations

import pytest

from playbooks import load, loader, sandbox
from playbooks.loader import MAX_SOURCE_BYTES
from playbooks.model import Recipients
from playbooks.patterns import PatternError, compile_pattern
from playbooks.templates import TemplateError, render

EVIL_TITLE = "(.|.)*Z"
NESTED_LOOPS = """Hello
{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}"""

PLAYBOOK = """version: 1
key: bounded
name: Bounded
audience:
  where: {tier: [1]}
steps:
  - id: invite
    email:
      to: {titles: [%(title)s]}
      subject: "Hi {{ account.name }}"
      body: %(body)s
"""


def _playbook(title: str = '"CISO"', body: str = '"<p>Hello</p>"') -> str:
    return PLAYBOOK % {"title": title, "body": body}


@pytest.mark.timeout(20)
def test_a_catastrophic_title_pattern_answers_at_once():
    recipients = Recipients(titles=(EVIL_TITLE,))
    assert not recipients.matches({"title": "a" * 40 + "x"})
    assert recipients.matches({"title": "vice president z"})
    assert load(_playbook(title=f'"{EVIL_TITLE}"')).errors == []


def test_a_pattern_re2_cannot_run_is_a_located_error():
    result = load(_playbook(title=r'"(a)\\1", "(?=chief)"'))
    messages = [(e.line, e.path, e.message) for e in result.errors]
    assert [(line, path) for line, path, _ in messages] == [
        (9, "steps[0].email.to.titles[0]"), (9, "steps[0].email.to.titles[1]")]
    assert "invalid regular expression '(a)\\1'" in messages[0][2]
    with pytest.raises(PatternError, match="longer than"):
        compile_pattern("a" * 5000)


@pytest.mark.timeout(20)
def test_nested_loops_stop_at_the_iteration_limit_with_the_template_line():
    with pytest.raises(TemplateError) as caught:
        render(NESTED_LOOPS, {})
    assert caught.value.limit == "loop iterations" and caught.value.line == 2
    assert "10,000 iterations" in str(caught.value) and "template line 2" in str(caught.value)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("source, limit", [
    ("{{ 'x' * 10**9 }}", "output"),
    ("{{ 'x'|center(1000000000) }}", "output"),
    ("{{ 'x'.ljust(1000000000) }}", "output"),
    ("{{ '%999999999d' % 1 }}", "output"),
    ("{{ '{:>{w}}'.format(1, w=1000000000) }}", "output"),
    ("{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "output"),
    ("{% macro grow(s) %}{{ grow(s ~ s) }}{% endmacro %}{{ grow('x') }}", "output"),
    ("{{ range(9000)|map('string')|join('x' * 100000) }}", "output"),
    ("{% for i in range(3000) %}{{ 'y' * 100 }}{% endfor %}", "output"),
    ("{{ 2 ** 1000000000 }}", "number size"),
    ("{% macro down(n) %}{{ down(n + 1) }}{% endmacro %}{{ down(1) }}", "recursion"),
])
def test_templates_that_would_make_huge_values_stop_at_a_named_limit(source, limit):
    with pytest.raises(TemplateError) as caught:
        render(source, {})
    assert caught.value.limit == limit


@pytest.mark.timeout(20)
def test_a_slow_template_stops_at_the_time_limit(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_SECONDS", 0.05)
    slow = "{% for i in range(9000) %}{{ ('ab' * 50000)|replace('a', 'c')|length }}{% endfor %}"
    with pytest.raises(TemplateError) as caught:
        render(slow, {})
    assert caught.value.limit == "time"


def test_ordinary_templates_still_render():
    source = ("{% for c in contacts %}{{ loop.index }}/{{ loop.length }} {{ c|upper }};{% endfor %}"
              "{{ '{:,}'.format(1234567) }} {{ '%05.1f' % 3.14159 }} {{ 'ab'|center(6) }} {{ [1, 2]|join('-') }}")
    assert render(source, {"contacts": ["a", "b"]}) == "1/2 A;2/2 B;1,234,567 003.1   ab   1-2"


@pytest.mark.timeout(20)
def test_validation_names_the_limit_and_the_yaml_line():
    body = '"{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"'
    result = load(_playbook(body=body), filename="nested.yaml")
    [error] = result.errors
    assert (error.file, error.line, error.path) == ("nested.yaml", 11, "steps[0].email.body")
    assert "10,000 iterations" in error.message


@pytest.mark.timeout(60)
def test_many_slow_templates_stop_validation_once_the_time_is_spent(monkeypatch):
    monkeypatch.setattr(loader, "VALIDATION_SECONDS", 1.0)
    slow = "{% for i in range(9000) %}{{ ('ab' * 5000)|replace('a', 'c')|length }}{% endfor %}"
    steps = "".join(f"  - id: a{i}\n    alert:\n      to: owner\n      message: \"{slow}\"\n" for i in range(90))
    source = _playbook().split("  - id: invite")[0] + steps
    result = load(source)
    [error] = result.errors
    assert error.path.endswith(".alert.message") and error.line > 7
    assert "1 s altogether (time limit)" in error.message


def test_a_source_over_the_size_limit_is_one_located_error():
    result = load(_playbook() + "#" * MAX_SOURCE_BYTES)
    [error] = result.errors
    assert (error.line, error.column) == (1, 1) and "larger than 256 KiB" in error.message


@pytest.mark.timeout(60)
@pytest.mark.parametrize("steps, line, limit", [
    ("".join(f"  - id: s{i}\n    wait: 1d\n" for i in range(5000)), 4000, "more than 10,000 values (size limit)"),
    ("".join(f"  - wait: {i + 1}d\n" for i in range(150)), 107, "at most 100 steps (step limit), this one 150"),
])
def test_a_huge_playbook_stops_at_a_located_size_limit_at_once(steps, line, limit):
    source = _playbook().split("  - id: invite")[0] + steps
    result = load(source, filename="huge.yaml")
    [error] = result.errors
    assert (error.file, error.line) == ("huge.yaml", line)
    assert limit in error.message


@pytest.mark.timeout(60)
def test_reading_a_large_document_stops_where_the_time_runs_out(monkeypatch):
    monkeypatch.setattr(loader, "VALIDATION_SECONDS", 0.05)
    steps = "".join(f"  - id: s{i}\n    wait: {{duration: 1d}}\n" for i in range(90))
    filler = "description: [" + ", ".join(f"w{i}" for i in range(5000)) + "]\n"
    result = load(filler + _playbook().split("  - id: invite")[0] + steps)
    [error] = result.errors
    assert error.path == "yaml" and error.line == 1 and error.column > 64
    assert "0.05 s altogether (time limit)" in error.message
