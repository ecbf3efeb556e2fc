"""Regular expressions written by users (a playbook's ``titles``): one place compiles them.

They run on RE2 (``google-re2``), whose matching time is linear in the text whatever
the pattern: ``(.|.)*Z`` against a long title answers at once, where Python's ``re``
backtracks for minutes. RE2 has no backreferences or lookaround; such a pattern is a
located error at validation (:class:`PatternError`), never a slow match later.
Matching is case-insensitive and searches anywhere in the text (``re.search``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import re2

#: The longest pattern accepted, and the memory RE2 may use for one (bytes).
MAX_PATTERN_LENGTH = 1_000
_MAX_MEMORY = 1 << 20


class PatternError(ValueError):
    """A pattern that RE2 does not accept; the message says why."""


def _options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.max_mem = _MAX_MEMORY
    return options


_OPTIONS = _options()


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str):
    """The compiled pattern (cached); raises :class:`PatternError`."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"is longer than {MAX_PATTERN_LENGTH:,} characters")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(str(reason)) from None


def search_any(patterns: Iterable[str], text: str) -> bool:
    """Whether any of ``patterns`` (already validated) occurs in ``text``."""
    return any(compile_pattern(pattern).search(text) for pattern in patterns)
