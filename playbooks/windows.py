"""Send windows: when touches may go out.

A window is a set of weekdays and a span of local wall-clock time ``[start, end)`` in
an IANA time zone (``playbooks.model.SendWindow``). Local time is what counts: a
``09:00-17:00`` window opens at 09:00 on the clock in that zone, summer and winter.
Around DST changes: a local time that occurs twice (autumn) is in the window both
times; a window opening inside the spring-forward gap opens at the first instant that
exists after the gap (the transition itself).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from zoneinfo import ZoneInfo

from playbooks.model import DAYS, SendWindow


def _local(window: SendWindow, at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("send window computations need a timezone-aware datetime")
    return at.astimezone(ZoneInfo(window.timezone))


def in_window(window: SendWindow, at: datetime) -> bool:
    """Whether the aware instant ``at`` falls inside the window (start inclusive, end
    exclusive, by local wall-clock time)."""
    local = _local(window, at)
    if DAYS[local.weekday()] not in window.days:
        return False
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return window.start * 60 <= seconds < window.end * 60


def next_window_opening(window: SendWindow, at: datetime) -> datetime:
    """When a touch due at ``at`` may go out: ``at`` itself if it is inside the window,
    else the next instant the window opens. The computation is in the window's zone;
    the result is aware and in UTC (a ZoneInfo datetime inside a repeated autumn hour
    never compares equal to another zone's, PEP 495, so UTC is the safe currency).

    The engine calls it for every touch a step makes (``send_at =
    next_window_opening(window, now)``) with the playbook's window, or the workspace's
    when the playbook has none; the enrollment itself moves on (waits keep counting).
    """
    zone = ZoneInfo(window.timezone)
    local = _local(window, at)
    if in_window(window, at):
        return at.astimezone(UTC)
    if not window.days or window.start >= window.end:
        raise ValueError("this send window never opens")
    hours, minutes = divmod(window.start, 60)
    for offset in range(0, 8):
        day = local.date() + timedelta(days=offset)
        if DAYS[day.weekday()] not in window.days:
            continue
        candidate = _opening_instant(window, datetime.combine(day, time_of_day(hours, minutes)), zone)
        if candidate > at:
            return candidate.astimezone(UTC)
    raise AssertionError("a window with at least one day opens within eight days")


def _opening_instant(window: SendWindow, wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at which the local clock shows ``wall`` or, inside a DST gap,
    the first instant after the gap."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    earliest = min(first, second, key=lambda d: d.timestamp())
    roundtrip = datetime.fromtimestamp(earliest.timestamp(), zone)
    if roundtrip.replace(tzinfo=None) == wall:
        return roundtrip
    # ``wall`` does not exist (spring forward): the window opens when the clock jumps.
    low = min(first.timestamp(), second.timestamp())
    high = max(first.timestamp(), second.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if in_window(window, datetime.fromtimestamp(middle, zone)):
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, zone)
