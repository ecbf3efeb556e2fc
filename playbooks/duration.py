"""Durations as playbooks write them: an integer followed by m, h, d or w.

``30m`` is thirty minutes, ``4h`` four hours, ``3d`` three days, ``2w`` two weeks.
Nothing else is accepted (no ``1.5d``, no ``3 days``, no ``0d``): a playbook is read by
people, and one spelling per duration keeps it readable.
"""

from __future__ import annotations

import re
from datetime import timedelta

_PATTERN = re.compile(r"^([0-9]{1,6})([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}

HINT = "write an integer followed by m, h, d or w (30m, 4h, 3d, 2w)"


class DurationError(ValueError):
    """A text that is not a duration; the message says what to write instead."""


def parse(text: str) -> timedelta:
    """Parse ``"3d"`` into ``timedelta(days=3)``.

    Raises :class:`DurationError` for anything that is not a positive integer
    (at most six digits) followed by one of ``m h d w``.
    """
    if not isinstance(text, str):
        raise DurationError(f"{text!r} is not a duration; {HINT}")
    match = _PATTERN.match(text.strip())
    if not match:
        raise DurationError(f"{text!r} is not a duration; {HINT}")
    amount = int(match.group(1))
    if amount == 0:
        raise DurationError(f"{text!r} is zero; a duration must be at least 1{match.group(2)}")
    return timedelta(seconds=amount * _UNITS[match.group(2)])


def format(value: timedelta) -> str:  # noqa: A001 - mirrors parse
    """The shortest playbook spelling of ``value`` (``timedelta(days=14)`` -> ``"2w"``).

    ``value`` must be a positive whole number of minutes; ``parse(format(v)) == v``.
    """
    seconds = int(value.total_seconds())
    if seconds <= 0 or seconds % 60 or value.microseconds:
        raise DurationError(f"{value!r} is not a positive whole number of minutes")
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    raise AssertionError("unreachable: minutes always divide")
