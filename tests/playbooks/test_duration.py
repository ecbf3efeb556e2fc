from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playbooks import duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", timedelta(minutes=30)), ("4h", timedelta(hours=4)), ("3d", timedelta(days=3)),
     ("2w", timedelta(weeks=2)), ("90d", timedelta(days=90))],
)
def test_parse(text, expected):
    assert duration.parse(text) == expected


@pytest.mark.parametrize("text", ["3", "3 d", "3days", "1.5d", "-1d", "0m", "d", "", "3D", 3, None, "1y"])
def test_parse_rejects_with_a_hint(text):
    with pytest.raises(duration.DurationError, match=r"m, h, d or w|at least"):
        duration.parse(text)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 99999), st.sampled_from("mhdw"))
def test_format_round_trips(amount, unit):
    value = duration.parse(f"{amount}{unit}")
    assert duration.parse(duration.format(value)) == value


def test_format_picks_the_largest_exact_unit():
    assert duration.format(timedelta(days=14)) == "2w"
    assert duration.format(timedelta(hours=36)) == "36h"
    assert duration.format(timedelta(minutes=90)) == "90m"
