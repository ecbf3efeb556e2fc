"""The template sandbox with limits: bounded output, loop iterations and time.

Jinja's own sandbox stops templates from reaching Python's internals, but not from
working forever: nested loops, a string doubled in a loop, ``'x' * 10**9`` or
``2 ** 10**9`` all pin a worker. :class:`BoundedSandbox` counts as a template runs:

- every ``for`` loop's iterations (``MAX_LOOP_ITERATIONS`` per render, all loops
  together),
- the size of strings and lists that operators, concatenation (``~``), methods and
  filters make (``MAX_OUTPUT_CHARS``), checked *before* the operations that could
  make a huge value in one step (``*``, ``**``, ``center``, ``replace``, ``join``,
  ``indent``, format widths) and after the others,
- the time (``MAX_SECONDS`` per render, or less when a caller's :func:`deadline`
  ends sooner), looked at on every iteration, call, filter and operator.

Going over a limit raises :class:`LimitExceeded`, which names the limit; the caller
(``playbooks.templates.render``) adds the template line. Filters that run regular
expressions over their whole input (``urlize``) and ``lipsum`` are not offered.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
import string
import time
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT_CHARS = 256 * 1024
MAX_LOOP_ITERATIONS = 10_000
MAX_SECONDS = 1.0
#: The largest integer an operator may make (bits): enough for any amount of money.
MAX_INT_BITS = 256
#: Filters left out: regex over the whole input (``urlize``), text generators (``lipsum``).
_DROPPED_FILTERS = ("urlize",)
_DROPPED_GLOBALS = ("lipsum",)
_NUMBER = re.compile(r"\d+")


class LimitExceeded(Exception):
    """A template went over one of the sandbox's limits; ``limit`` names which
    (``output``, ``loop iterations``, ``time``, ``number size``)."""

    def __init__(self, limit: str, message: str):
        super().__init__(message)
        self.limit = limit
        self.message = message


class _Budget:
    """What one render may still spend."""

    __slots__ = ("iterations", "ends_at", "overall")

    def __init__(self, ends_at: float, overall: float | None):
        self.iterations = 0
        self.ends_at = ends_at
        self.overall = overall  # the seconds of the enclosing deadline() when it ends first

    def tick(self) -> None:
        if time.monotonic() > self.ends_at:
            if self.overall is not None:
                raise LimitExceeded("time", f"the templates took longer than {self.overall:g} s altogether "
                                            "(time limit); make them simpler or fewer")
            raise LimitExceeded("time", f"the template took longer than {MAX_SECONDS:g} s to render (time limit)")

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise LimitExceeded("loop iterations", f"the template's loops ran more than {MAX_LOOP_ITERATIONS:,} "
                                                   "iterations altogether")
        if not self.iterations & 63:
            self.tick()


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("abm_template_budget", default=None)
_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "abm_template_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every render inside the block ends by ``seconds`` from now altogether (each
    still within its own ``MAX_SECONDS``): validation and plan use it so that a
    playbook of many templates answers in bounded time too. Nested blocks keep the
    sooner end."""
    ends = (time.monotonic() + seconds, seconds)
    outer = _DEADLINE.get()
    token = _DEADLINE.set(ends if outer is None else min(outer, ends))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def deadline_passed() -> bool:
    """Whether the enclosing :func:`deadline` has run out."""
    ends = _DEADLINE.get()
    return ends is not None and time.monotonic() > ends[0]


def seconds_left() -> float | None:
    """The seconds left before the enclosing :func:`deadline` ends (None outside one)."""
    ends = _DEADLINE.get()
    return None if ends is None else ends[0] - time.monotonic()


def deadline_seconds() -> float | None:
    """How long the enclosing :func:`deadline` was given (None outside one)."""
    ends = _DEADLINE.get()
    return None if ends is None else ends[1]


@contextlib.contextmanager
def budget() -> Iterator[None]:
    """A fresh budget for one render (the limits above)."""
    own_end = time.monotonic() + MAX_SECONDS
    overall = _DEADLINE.get()
    if overall is not None and overall[0] < own_end:
        fresh = _Budget(overall[0], overall[1])
    else:
        fresh = _Budget(own_end, None)
    token = _BUDGET.set(fresh)
    try:
        _current().tick()
        yield
    finally:
        _BUDGET.reset(token)


def _current() -> _Budget:
    spent = _BUDGET.get()
    if spent is None:  # outside a render (Jinja folding constants as it compiles): one step's limits
        return _Budget(time.monotonic() + MAX_SECONDS, None)
    return spent


def check_size(value: Any) -> Any:
    """``value``, when it is within ``MAX_OUTPUT_CHARS`` (strings) or items (lists)."""
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_OUTPUT_CHARS:
        raise LimitExceeded("output", f"the template made a value longer than {MAX_OUTPUT_CHARS:,} characters")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded("number size", "the template made a number too large to be an amount")
    return value


def _refuse_if_over(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise LimitExceeded("output", f"the template would make a value longer than {MAX_OUTPUT_CHARS:,} "
                                      "characters")


def _check_format(spec: str, args: Any = (), kwargs: Any = None) -> None:
    """Refuse a format string (``%``, ``format``) whose widths or precisions alone
    are over the output limit: written in it, or given as arguments (``%*d``,
    ``{:{width}}``)."""
    for number in _NUMBER.findall(spec):
        if len(number) > 7 or int(number) > MAX_OUTPUT_CHARS:
            _refuse_if_over(MAX_OUTPUT_CHARS + 1)
    if "*" in spec or "{" in spec:
        given = list(args) if isinstance(args, (tuple, list)) else [args]
        given += list(kwargs.values()) if isinstance(kwargs, dict) else []
        for value in given:
            if isinstance(value, int) and not isinstance(value, bool):
                _refuse_if_over(abs(value))


def _text_length(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(str(value)) if isinstance(value, (int, float)) else 0


def _precheck_method(obj: str, name: str, args: tuple, kwargs: dict) -> None:
    """The size a string method could make, refused before it is made."""
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        _refuse_if_over(args[0])
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        _refuse_if_over(len(obj) * (tab if isinstance(tab, int) else 8))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _refuse_if_over(_replaced_length(obj, args[0], args[1]))


def _replaced_length(text: str, old: str, new: str) -> int:
    count = text.count(old) if old else len(text) + 1
    return len(text) + count * max(0, len(new) - len(old))


def _bounded_items(iterable: Any) -> list:
    if isinstance(iterable, (str, list, tuple, dict, set, frozenset)):
        items = list(iterable)
    else:
        items = []
        for item in iterable:
            items.append(item)
            if len(items) > MAX_OUTPUT_CHARS:
                _refuse_if_over(len(items))
    _refuse_if_over(len(items))
    return items


class _LoopGuardGenerator(CodeGenerator):
    """Wraps every ``for`` loop's iterable in ``environment.abm_loop(...)`` and every
    ``~`` concatenation in ``environment.abm_sized(...)``."""

    def visit_For(self, node: nodes.For, frame) -> None:
        node.iter = nodes.Call(nodes.EnvironmentAttribute("abm_loop"), [node.iter], [], None, None,
                               lineno=node.iter.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.abm_sized(")
        super().visit_Concat(node, frame)
        self.write(")")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the limits of this module."""

    code_generator_class = _LoopGuardGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any):
        super().__init__(**options)
        for name in _DROPPED_FILTERS:
            self.filters.pop(name, None)
        for name in _DROPPED_GLOBALS:
            self.globals.pop(name, None)
        self.filters = {name: _bounded_filter(name, function) for name, function in self.filters.items()}

    @staticmethod
    def abm_loop(iterable: Iterable) -> Iterator:
        spent = _current()
        spent.tick()
        for item in iterable:
            spent.iterate()
            yield item

    @staticmethod
    def abm_sized(value: Any) -> Any:
        _current().tick()
        return check_size(value)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        _current().tick()
        if operator == "*":
            _precheck_repeat(left, right)
            _precheck_repeat(right, left)
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    check_size(1 << (MAX_INT_BITS + 1))
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                if max(1, left.bit_length()) * right > MAX_INT_BITS and abs(left) > 1:
                    check_size(1 << (MAX_INT_BITS + 1))
        elif operator == "%" and isinstance(left, str):
            _check_format(left, right)
        return check_size(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any):
        """``str.format`` / ``format_map`` as Jinja's sandbox wraps them, with the
        widths in the format string checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fields = [spec or "" for _, field, spec, _ in string.Formatter().parse(value.__self__) if field is not None]

        def checked(*args: Any, **kwargs: Any) -> str:
            _current().tick()
            for spec in fields:
                _check_format(spec, args, kwargs)
            return check_size(wrapped(*args, **kwargs))

        return functools.update_wrapper(checked, value)

    def call(__self, __context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        _current().tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            _precheck_method(owner, name, args, kwargs)
            if name == "join" and args:
                items = _bounded_items(args[0])
                _refuse_if_over(sum(_text_length(item) for item in items) + len(owner) * len(items))
                args = (items, *args[1:])
        return check_size(super().call(__context, __obj, *args, **kwargs))


def _precheck_repeat(sequence: Any, times: Any) -> None:
    if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
        _refuse_if_over(len(sequence) * max(0, times))


def _bounded_filter(name: str, function):
    """``function`` (a filter) checked against the budget: time before, size after,
    and the filters that can make a large value from a small one checked before."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _current().tick()
        args = _precheck_filter(name, args, kwargs)
        return check_size(function(*args, **kwargs))

    return bounded


def _precheck_filter(name: str, args: tuple, kwargs: dict) -> tuple:
    """The filter's arguments (an iterable to ``join`` made a list), after refusing a
    call whose result could only be over the limit. Jinja's filters' signatures:
    ``center(s, width)``, ``indent(s, width)``, ``format(s, *args)``,
    ``replace(eval_ctx, s, old, new)``, ``join(eval_ctx, items, separator)``."""
    if name == "center":
        width = kwargs.get("width", args[1] if len(args) > 1 else 80)
        _refuse_if_over(width if isinstance(width, int) else 0)
    elif name == "indent" and args and isinstance(args[0], str):
        width = kwargs.get("width", args[1] if len(args) > 1 else 4)
        width = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        _refuse_if_over(len(args[0]) + (args[0].count("\n") + 1) * max(0, width))
    elif name == "format" and args and isinstance(args[0], str):
        _check_format(args[0])
    elif name == "replace" and len(args) >= 4 and all(isinstance(a, str) for a in args[1:4]):
        _refuse_if_over(_replaced_length(*args[1:4]))
    elif name == "join" and len(args) >= 2:
        items = _bounded_items(args[1])
        separator = args[2] if len(args) > 2 else kwargs.get("d", "")
        _refuse_if_over(sum(_text_length(item) for item in items) + _text_length(separator) * len(items))
        args = (args[0], items, *args[2:])
    return args
