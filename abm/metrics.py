"""The arithmetic behind the shared KPIs: attribution shares, rates, intervals, lift.

Pure functions, no database: the KPI service feeds them rows. Definitions (with
worked examples) are in docs/kpis.md.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054
MODELS = ("last_touch", "first_touch", "even")


def attribution_shares(touch_keys: Sequence, model: str = "last_touch") -> dict:
    """Split one conversion over the touches before it (oldest first); shares add up to one.

    ``touch_keys`` are whatever the caller groups by (playbook, channel, (playbook, channel)...),
    one per touch, in time order. ``last_touch`` gives everything to the newest,
    ``first_touch`` to the oldest, ``even`` splits equally among the touches (a key
    that appears twice gets two shares).
    """
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r} (use {', '.join(MODELS)})")
    if not touch_keys:
        return {}
    if model == "last_touch":
        return {touch_keys[-1]: 1.0}
    if model == "first_touch":
        return {touch_keys[0]: 1.0}
    share = 1.0 / len(touch_keys)
    out: dict = {}
    for key in touch_keys:
        out[key] = out.get(key, 0.0) + share
    return out


def rate(numerator: float, denominator: float) -> float | None:
    return None if not denominator else numerator / denominator


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def wilson(successes: int, n: int, z: float = Z95) -> Interval | None:
    """Wilson score interval of a proportion."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def difference(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> Interval | None:
    """Newcombe's hybrid score interval for p1 - p2 (method 10), well behaved at 0 and small n."""
    a, b = wilson(s1, n1, z), wilson(s2, n2, z)
    if a is None or b is None:
        return None
    d = a.estimate - b.estimate
    low = d - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    high = d + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high))


def n_per_group(p_control: float, lift: float = 0.05, alpha_z: float = Z95, power_z: float = 0.8416212335729143) -> int:
    """Accounts needed in each group to detect an absolute ``lift`` over ``p_control``
    (two-sided 5% test, 80% power)."""
    p1 = min(max(p_control, 0.0), 1.0)
    p2 = min(p1 + lift, 1.0)
    if p2 <= p1:
        return 0
    pbar = (p1 + p2) / 2
    num = (alpha_z * math.sqrt(2 * pbar * (1 - pbar)) + power_z * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2
    return math.ceil(num / (p2 - p1) ** 2)


def lift_sentence(metric: str, s_t: int, n_t: int, s_c: int, n_c: int, target_lift: float = 0.05) -> str:
    """A plain sentence about one lift figure, as a marketer would say it."""
    if n_t == 0:
        return f"no enrolled accounts yet, so nothing can be said about {metric}"
    if n_c == 0:
        return (f"no held-out accounts: set a holdout (for example 10%) to measure the lift on {metric}")
    diff = difference(s_t, n_t, s_c, n_c)
    pt, pc = s_t / n_t, s_c / n_c
    need = n_per_group(min(max(pc, 0.01), 1 - target_lift), target_lift)
    if diff.low > 0:
        return (f"{metric}: {pt:.1%} of enrolled accounts against {pc:.1%} held out, a lift of "
                f"{diff.estimate * 100:+.1f} points (95% interval {diff.low * 100:+.1f} to {diff.high * 100:+.1f}): "
                f"the playbook works")
    if diff.high < 0:
        return (f"{metric}: {pt:.1%} of enrolled accounts against {pc:.1%} held out "
                f"({diff.estimate * 100:+.1f} points, 95% interval {diff.low * 100:+.1f} to {diff.high * 100:+.1f}): "
                f"enrolled accounts do worse than the control group")
    if n_c < need:
        return (f"not enough accounts yet: about {need - n_c:,} more held-out accounts would be needed to see a "
                f"{target_lift * 100:.0f}-point lift on {metric} (now {pt:.1%} enrolled against {pc:.1%} held out)")
    return (f"{metric}: no measurable lift ({diff.estimate * 100:+.1f} points, 95% interval "
            f"{diff.low * 100:+.1f} to {diff.high * 100:+.1f}) with {n_t:,} enrolled and {n_c:,} held-out accounts")
