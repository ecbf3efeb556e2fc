"""The arithmetic behind the shared KPIs: attribution shares, rates, intervals, lift.

Pure functions, no database: the KPI service feeds them rows. Definitions (with
worked examples) are in docs/kpis.md.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

Z95 = 1.959963984540054
#: The attribution models (docs/kpis.md, "Attribution models"), in the order pages show them.
MODELS = ("first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay", "markov")
#: Names still accepted from settings saved before the models were renamed.
MODEL_ALIASES = {"even": "linear"}
START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"


def position_weights(n: int, model: str, lead_at: int | None = None, ages: Sequence[float] = (),
                     half_life: float = 7.0) -> list[float]:
    """The weights of the ``n`` touches before one conversion (oldest first); they add up to one.

    The reference for the SQL in :mod:`abm.services.kpi_sql` (tests hold them equal).
    ``lead_at``: the number (1-based) of the last touch before the lead, the W-shaped
    model's middle anchor; ``ages``: each touch's age in days at the conversion.
    """
    model = MODEL_ALIASES.get(model, model)
    if n == 0:
        return []
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "time_decay":
        raw = [2 ** (-age / half_life) for age in ages]
        return [r / sum(raw) for r in raw]
    if model == "w_shaped" and lead_at is not None and 1 < lead_at < n:
        if n == 3:
            return [1 / 3] * 3
        return [0.3 if i in (1, lead_at, n) else 0.1 / (n - 3) for i in range(1, n + 1)]
    if model in ("u_shaped", "w_shaped"):
        if n <= 2:
            return [1.0 / n] * n
        return [0.4 if i in (1, n) else 0.2 / (n - 2) for i in range(1, n + 1)]
    raise ValueError(f"unknown attribution model {model!r} (use {', '.join(MODELS)})")


def attribution_shares(touch_keys: Sequence, model: str = "last_touch") -> dict:
    """Split one conversion over the touches before it (oldest first); shares add up to one.

    ``touch_keys`` are whatever the caller groups by, one per touch, in time order (a
    key that appears twice gets both touches' shares).
    """
    out: dict = {}
    for key, w in zip(touch_keys, position_weights(len(touch_keys), model, ages=[0.0] * len(touch_keys)),
                      strict=True):
        if w:
            out[key] = out.get(key, 0.0) + w
    return out


def conversion_probability(transitions: dict[tuple[str, str], float], removed: str | None = None) -> float:
    """The chance that a journey from ``(start)`` ends in ``(conversion)`` in the first-order
    Markov chain of ``transitions`` (counts of moves between states), with the state
    ``removed`` taken out (every move into it ends the journey without conversion)."""
    out: dict[str, dict[str, float]] = {}
    for (a, b), count in transitions.items():
        target = NULL if b == removed else b
        out.setdefault(a, {})[target] = out.get(a, {}).get(target, 0.0) + count
    states = [s for s in out if s not in (removed, CONVERSION, NULL)]
    index = {s: i for i, s in enumerate(states)}
    k = len(states)
    # p = Q p + r, solved as (I - Q) p = r by Gauss-Jordan elimination (k is the number of groups + 1)
    m = [[0.0] * (k + 1) for _ in range(k)]
    for s, i in index.items():
        total = sum(out[s].values())
        m[i][i] += 1.0
        for t, count in out[s].items():
            if t == CONVERSION:
                m[i][k] += count / total
            elif t in index:
                m[i][index[t]] -= count / total
    for col in range(k):
        pivot = max(range(col, k), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12:
            continue
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(k):
            if r != col and m[r][col]:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    i = index.get(START)
    return 0.0 if i is None or abs(m[i][i]) < 1e-12 else m[i][k] / m[i][i]


def removal_effects(transitions: dict[tuple[str, str], float]) -> dict[str, float]:
    """Each state's removal effect (Anderl, Becker, von Wangenheim and Schumann, 2016):
    the share of conversions lost when the state is removed from the chain."""
    base = conversion_probability(transitions)
    groups = {s for pair in transitions for s in pair} - {START, CONVERSION, NULL}
    if base <= 0:
        return dict.fromkeys(groups, 0.0)
    return {g: max(0.0, 1 - conversion_probability(transitions, removed=g) / base) for g in groups}


def cents(value: float | None) -> float | None:
    """An amount rounded to the cent, halves away from zero, as one rounds by hand
    (0.125 -> 0.13, 2.675 -> 2.68; ``round`` gives 0.12 and 2.67: it rounds halves to
    even and sees the binary value). The float noise of sums and divisions is first
    rounded off at the ninth decimal, so that 0.1249999999999 counts as the half it is."""
    if value is None:
        return None
    clean = Decimal(repr(float(value))).quantize(Decimal("1e-9"), ROUND_HALF_EVEN)
    return float(clean.quantize(Decimal("0.01"), ROUND_HALF_UP))


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
