"""Send windows: local wall-clock time, weekdays, and the DST edges."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from playbooks.model import SendWindow
from playbooks.windows import in_window, next_window_opening

NY = ZoneInfo("America/New_York")
WEEKDAYS_9_TO_5 = SendWindow("America/New_York", ("mon", "tue", "wed", "thu", "fri"), 9 * 60, 17 * 60)


def ny(*args) -> datetime:
    return datetime(*args, tzinfo=NY)


def test_inside_the_window_returns_the_same_instant():
    at = ny(2026, 3, 4, 10, 30)  # a Wednesday
    assert in_window(WEEKDAYS_9_TO_5, at)
    assert next_window_opening(WEEKDAYS_9_TO_5, at) == at


def test_start_is_inclusive_end_is_exclusive():
    assert in_window(WEEKDAYS_9_TO_5, ny(2026, 3, 4, 9, 0))
    assert not in_window(WEEKDAYS_9_TO_5, ny(2026, 3, 4, 17, 0))
    assert next_window_opening(WEEKDAYS_9_TO_5, ny(2026, 3, 4, 17, 0)) == ny(2026, 3, 5, 9, 0)


def test_before_opening_waits_until_the_same_morning():
    assert next_window_opening(WEEKDAYS_9_TO_5, ny(2026, 3, 4, 6, 15)) == ny(2026, 3, 4, 9, 0)


def test_friday_evening_and_weekend_wait_for_monday():
    monday = ny(2026, 3, 9, 9, 0)
    assert next_window_opening(WEEKDAYS_9_TO_5, ny(2026, 3, 6, 18, 0)) == monday
    assert next_window_opening(WEEKDAYS_9_TO_5, ny(2026, 3, 7, 12, 0)) == monday


def test_input_in_another_zone_is_converted_and_result_is_in_utc():
    at = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)  # 18:00 in New York
    result = next_window_opening(WEEKDAYS_9_TO_5, at)
    assert result == ny(2026, 3, 5, 9, 0)
    assert result.tzinfo == UTC
    assert result == datetime(2026, 3, 5, 14, 0, tzinfo=UTC)


def test_window_opens_at_local_nine_on_both_sides_of_spring_forward():
    # DST starts Sunday 2026-03-08 in New York: Friday 9:00 is EST, Monday 9:00 is EDT.
    result = next_window_opening(WEEKDAYS_9_TO_5, ny(2026, 3, 6, 20, 0))
    assert (result.astimezone(NY).hour, result.minute) == (9, 0)
    assert result.astimezone(UTC) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


def test_window_opens_at_local_nine_after_fall_back():
    # DST ends Sunday 2026-11-01: Monday 9:00 EST is 14:00 UTC.
    result = next_window_opening(WEEKDAYS_9_TO_5, ny(2026, 10, 30, 18, 0))
    assert result.astimezone(UTC) == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def test_opening_inside_the_spring_forward_gap_opens_when_the_clock_jumps():
    night = SendWindow("America/New_York", ("sun",), 2 * 60 + 30, 5 * 60)
    # 02:30 does not exist on 2026-03-08; the clock jumps from 02:00 EST to 03:00 EDT (07:00 UTC).
    result = next_window_opening(night, ny(2026, 3, 8, 1, 0))
    assert result.astimezone(UTC) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert (result.astimezone(NY).hour, result.minute) == (3, 0)


def test_repeated_hour_in_autumn_is_inside_the_window_both_times():
    night = SendWindow("America/New_York", ("sun",), 60, 2 * 60)
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)   # 01:30 EDT
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert in_window(night, first) and in_window(night, second)
    before = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)    # 00:00 EDT
    assert next_window_opening(night, before) == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # the first 01:00
    between = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)   # 02:00 EST, after both
    assert next_window_opening(night, between) == datetime(2026, 11, 8, 6, 0, tzinfo=UTC)


def test_window_until_midnight_and_every_day():
    late = SendWindow("Europe/Paris", ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), 20 * 60, 24 * 60)
    paris = ZoneInfo("Europe/Paris")
    assert in_window(late, datetime(2026, 7, 1, 23, 59, tzinfo=paris))
    assert next_window_opening(late, datetime(2026, 7, 2, 0, 0, tzinfo=paris)) == datetime(
        2026, 7, 2, 18, 0, tzinfo=UTC
    )


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_window_opening(WEEKDAYS_9_TO_5, datetime(2026, 3, 4, 10, 0))
