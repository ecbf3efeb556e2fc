"""The compiled playbook itself: its entry, pacing and steps, and its JSON round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from playbooks.conditions import Condition
from playbooks.model._json import _cond, _dur, _uncond, _undur
from playbooks.model.entry import Audience, Trigger, trigger_from_dict
from playbooks.model.pacing import Cap, SendWindow
from playbooks.model.steps import Step, step_from_dict


@dataclass(frozen=True)
class Playbook:
    """A validated playbook.

    ``holdout`` is a percentage (``10.0`` for ``10%``). ``reenroll`` None means never.
    ``send_window`` None means the workspace's default window applies. Exactly one of
    ``audience`` and ``trigger`` is set.
    """

    key: str
    name: str
    steps: tuple[Step, ...]
    version: int = 1
    product: str | None = None
    description: str | None = None
    priority: int = 50
    audience: Audience | None = None
    trigger: Trigger | None = None
    holdout: float = 0.0
    reenroll: timedelta | None = None
    exit_when: Condition | None = None
    send_window: SendWindow | None = None
    caps: tuple[Cap, ...] = field(default_factory=tuple)
    #: A touch over a cap: ``defer`` waits for the next free slot (and the send window), at
    #: most ``max_delay`` after it was due, else it is skipped; ``skip``: recorded
    #: ``suppressed`` at once.
    on_cap: str = "defer"
    max_delay: timedelta = timedelta(days=7)

    def cap_policy(self, step: Step) -> tuple[str, timedelta]:
        """``(on_cap, max_delay)`` for a step's touches: the step's own, else the playbook's."""
        return (step.on_cap or self.on_cap, self.max_delay if step.max_delay is None else step.max_delay)

    def step_index(self, step_id: str) -> int:
        """The 0-based position of the step with id ``step_id`` (KeyError if none)."""
        for step in self.steps:
            if step.id == step_id:
                return step.index
        raise KeyError(step_id)

    def step(self, step_id: str) -> Step:
        return self.steps[self.step_index(step_id)]

    def to_dict(self) -> dict:
        return {
            "version": self.version, "key": self.key, "name": self.name, "product": self.product,
            "description": self.description, "priority": self.priority,
            "audience": self.audience.to_dict() if self.audience else None,
            "trigger": self.trigger.to_dict() if self.trigger else None,
            "holdout": self.holdout, "reenroll": _dur(self.reenroll), "exit_when": _cond(self.exit_when),
            "send_window": self.send_window.to_dict() if self.send_window else None,
            "caps": [cap.to_dict() for cap in self.caps],
            "on_cap": self.on_cap, "max_delay": _dur(self.max_delay),
            "steps": [step.to_dict() for step in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Playbook:
        return cls(
            version=data.get("version", 1), key=data["key"], name=data["name"], product=data.get("product"),
            description=data.get("description"), priority=data.get("priority", 50),
            audience=Audience.from_dict(data["audience"]) if data.get("audience") else None,
            trigger=trigger_from_dict(data["trigger"]) if data.get("trigger") else None,
            holdout=data.get("holdout", 0.0), reenroll=_undur(data.get("reenroll")),
            exit_when=_uncond(data.get("exit_when")),
            send_window=SendWindow.from_dict(data["send_window"]) if data.get("send_window") else None,
            caps=tuple(Cap.from_dict(cap) for cap in data.get("caps") or ()),
            on_cap=data.get("on_cap", "defer"), max_delay=_undur(data.get("max_delay")) or timedelta(days=7),
            steps=tuple(step_from_dict(step) for step in data["steps"]),
        )
