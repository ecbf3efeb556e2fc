"""How accounts enter a playbook: an audience (batch entry) or a trigger (event entry)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Union

from playbooks.conditions import Condition, condition_from_dict
from playbooks.model._json import _dur, _undur


@dataclass(frozen=True)
class Audience:
    """Batch entry: accounts matching ``where`` now and later; at most ``limit``.
    ``segment``: the saved segment whose condition ``where`` is (as it was when the
    version was applied)."""

    where: Condition
    limit: int | None = None
    segment: str | None = None  # the saved segment ``where`` came from, if any

    def to_dict(self) -> dict:
        return {"where": self.where.to_dict(), "limit": self.limit, "segment": self.segment}

    @classmethod
    def from_dict(cls, data: dict) -> Audience:
        return cls(condition_from_dict(data["where"]), data.get("limit"), data.get("segment"))


@dataclass(frozen=True)
class StageChangedTrigger:
    """Enter when the account's stage changes to one of ``to`` (from one of ``from_``,
    any stage when ``from_`` is empty)."""

    on: ClassVar[str] = "stage_changed"
    to: tuple[str, ...]
    from_: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"on": self.on, "to": list(self.to), "from": list(self.from_)}


@dataclass(frozen=True)
class ScoreCrossedTrigger:
    """Enter when the engagement score goes from ``<= above`` to ``> above``."""

    on: ClassVar[str] = "score_crossed"
    above: float

    def to_dict(self) -> dict:
        return {"on": self.on, "above": self.above}


@dataclass(frozen=True)
class ActivityTrigger:
    """Enter on an engagement event of one of ``types`` (any when empty) that occurred
    within ``within`` before it is processed (None: no age limit)."""

    on: ClassVar[str] = "activity"
    types: tuple[str, ...] = ()
    within: timedelta | None = None

    def to_dict(self) -> dict:
        return {"on": self.on, "type": list(self.types), "within": _dur(self.within)}


Trigger = Union[StageChangedTrigger, ScoreCrossedTrigger, ActivityTrigger]  # noqa: UP007


def trigger_from_dict(data: dict) -> Trigger:
    if data["on"] == "stage_changed":
        return StageChangedTrigger(tuple(data["to"]), tuple(data.get("from") or ()))
    if data["on"] == "score_crossed":
        return ScoreCrossedTrigger(data["above"])
    if data["on"] == "activity":
        return ActivityTrigger(tuple(data.get("type") or ()), _undur(data.get("within")))
    raise ValueError(f"unknown trigger {data['on']!r}")
