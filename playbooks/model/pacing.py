"""When and how often touches go out: the send window and the frequency caps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from playbooks import duration
from playbooks.model._json import _dur

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SendWindow:
    """Touches go out on ``days`` between ``start`` and ``end`` (minutes after local
    midnight, ``0 <= start < end <= 1440``) in the IANA ``timezone``."""

    timezone: str
    days: tuple[str, ...] = DAYS
    start: int = 0
    end: int = 1440

    @property
    def hours(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"

    def to_dict(self) -> dict:
        return {"timezone": self.timezone, "days": list(self.days), "hours": self.hours}

    @classmethod
    def from_dict(cls, data: dict) -> SendWindow:
        start, end = data["hours"].split("-")
        return cls(data["timezone"], tuple(data["days"]), _minutes(start), _minutes(end))


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class Cap:
    """At most ``max`` touches ``per`` contact or account within ``within``, on
    ``channel`` (None: every touch-making channel)."""

    per: str
    max: int
    within: timedelta
    channel: str | None = None

    def to_dict(self) -> dict:
        return {"per": self.per, "max": self.max, "within": _dur(self.within), "channel": self.channel}

    @classmethod
    def from_dict(cls, data: dict) -> Cap:
        return cls(data["per"], data["max"], duration.parse(data["within"]), data.get("channel"))
