"""The JSON forms the compiled playbook stores durations and conditions in (``None`` stays ``None``)."""

from __future__ import annotations

from datetime import timedelta

from playbooks import duration
from playbooks.conditions import Condition, condition_from_dict


def _dur(value: timedelta | None) -> str | None:
    return duration.format(value) if value is not None else None


def _undur(value: str | None) -> timedelta | None:
    return duration.parse(value) if value is not None else None


def _cond(value: Condition | None) -> dict | None:
    return value.to_dict() if value is not None else None


def _uncond(value: dict | None) -> Condition | None:
    return condition_from_dict(value) if value is not None else None
