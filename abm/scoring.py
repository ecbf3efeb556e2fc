"""How engagement becomes a score: weights, URL rules, decay and levels.

An event of weight ``w`` that happened at ``t`` is worth ``w * 0.5 ** (age / half_life)``
now. An account's score is the sum over its events. To keep that exact under
incremental updates, each account stores ``score_ref``, the sum of
``w * 2 ** ((t - SCORE_EPOCH) / half_life)``; its score at any time ``now`` is
``score_ref * 2 ** (-(now - SCORE_EPOCH) / half_life)``. Adding events adds terms, in
any order, and ordering accounts by ``score_ref`` orders them by their score now.
A change of weights or half-life re-scores the whole history (``abm engagement recompute``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import case, literal, literal_column

SCORE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
DAY = 86400.0
LEVELS = ("cold", "warm", "hot")


def url_rule(url: str | None, settings: dict) -> dict | None:
    """The first URL rule whose pattern the address contains (the rules are tried in order)."""
    for rule in settings.get("url_rules", []) if url else ():
        if rule["pattern"] in url:
            return rule
    return None


def event_weight(event_type: str, url: str | None, settings: dict) -> float:
    """The weight of one event: the type's weight, or the first matching URL rule's for web visits."""
    rule = url_rule(url, settings) if event_type == "web_visit" else None
    if rule is not None:
        return float(rule["weight"])
    return float(settings["weights"].get(event_type, 0))


def ref_term(weight: float, occurred_at: datetime, half_life_days: float) -> float:
    """One event's term in ``score_ref``."""
    return weight * 2.0 ** ((occurred_at - SCORE_EPOCH).total_seconds() / (half_life_days * DAY))


def score_at(score_ref: float, now: datetime, half_life_days: float) -> float:
    return score_ref * 2.0 ** (-(now - SCORE_EPOCH).total_seconds() / (half_life_days * DAY))


def decayed(weight: float, occurred_at: datetime, now: datetime, half_life_days: float) -> float:
    """``weight`` decayed from ``occurred_at`` to ``now`` (an event in the future counts fully)."""
    age = max(0.0, (now - occurred_at).total_seconds())
    return weight * 0.5 ** (age / (half_life_days * DAY))


def _floors(thresholds: dict) -> list[tuple[str, float]]:
    """The level rule: (level, lowest score of it), from the highest level down; below
    every floor an account is ``cold``. :func:`level` (Python) and :func:`level_case`
    (SQL) are both written from it, so they cannot disagree."""
    return [(name, float(thresholds[name])) for name in reversed(LEVELS[1:])]


def level(score: float, thresholds: dict) -> str:
    for name, floor in _floors(thresholds):
        if score >= floor:
            return name
    return LEVELS[0]


def level_case(score, thresholds: dict):
    """The level of ``score`` (an SQL expression) as an SQL ``CASE``."""
    return case(*[(score >= literal(floor), name) for name, floor in _floors(thresholds)], else_=LEVELS[0])


def level_sql(score_sql: str, thresholds: dict, dialect) -> str:
    """:func:`level_case` as SQL text, for statements written as text (thresholds inlined)."""
    return str(level_case(literal_column(score_sql), thresholds).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True}))


def driven_by(score: float, passive: float) -> str | None:
    """What made a score: ``passive`` when passive exposure (impressions, opens) is at
    least half of it, ``active`` otherwise, None for no score. ``score`` and ``passive``
    may be both ``score_ref`` and ``passive_ref``: the decay cancels out."""
    if score <= 1e-9:
        return None
    return "passive" if passive >= score / 2 else "active"


def level_rank(name: str) -> int:
    return LEVELS.index(name) if name in LEVELS else 0


def round_score(value: float) -> float:
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-9) else round(value, 2)
