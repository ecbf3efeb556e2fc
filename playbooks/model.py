"""The compiled playbook: frozen dataclasses, JSON round trip.

``playbooks.load`` builds a :class:`Playbook`; ``Playbook.to_dict()`` gives plain
JSON (store it with the version), ``Playbook.from_dict()`` gives it back, equal.
Everything here is already validated: step ids are unique, jump targets are later
step ids, connectors are resolved (a step's ``connector`` is the name of the one
that serves it, the workspace default filled in), email template files are read
into ``body`` (so a stored version does not change when the file does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Union

from playbooks import duration
from playbooks.conditions import Condition, condition_from_dict
from playbooks.patterns import search_any
from playbooks.variants import Variant

#: The channel each touch-making step kind is served on.
CHANNEL_OF_KIND = {"email": "email", "audience": "ads", "alert": "alert", "task": "task", "webhook": "webhook"}
TOUCH_KINDS = tuple(CHANNEL_OF_KIND)
STEP_KINDS = TOUCH_KINDS + ("set_stage", "wait", "wait_until", "branch", "exit")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _dur(value: timedelta | None) -> str | None:
    return duration.format(value) if value is not None else None


def _undur(value: str | None) -> timedelta | None:
    return duration.parse(value) if value is not None else None


def _cond(value: Condition | None) -> dict | None:
    return value.to_dict() if value is not None else None


def _uncond(value: dict | None) -> Condition | None:
    return condition_from_dict(value) if value is not None else None


# --- entry -------------------------------------------------------------------


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


# --- send window and caps -----------------------------------------------------


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


# --- steps --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Step:
    """Common to every step: ``id`` (explicit or ``step-N``), ``index`` (0-based
    position) and ``when`` (None: always). ``on_cap`` and ``max_delay`` (touch-making steps
    only) override the playbook's for this step's touches; None: the playbook's."""

    kind: ClassVar[str] = ""
    id: str
    index: int
    when: Condition | None = None
    on_cap: str | None = None
    max_delay: timedelta | None = None

    @property
    def channel(self) -> str | None:
        """The connector channel of a touch-making step, None for the others."""
        return CHANNEL_OF_KIND.get(self.kind)

    @property
    def makes_touches(self) -> bool:
        return self.kind in CHANNEL_OF_KIND

    def _fields(self) -> dict:
        raise NotImplementedError

    def to_dict(self) -> dict:
        overrides = {name: value for name, value in (("on_cap", self.on_cap), ("max_delay", _dur(self.max_delay)))
                     if value is not None}
        return {"kind": self.kind, "id": self.id, "index": self.index, "when": _cond(self.when), **overrides,
                **self._fields()}


@dataclass(frozen=True)
class Recipients:
    """Who an email goes to: the account ``owner``, or the account's contacts with one
    of ``roles`` (any role when empty) and whose title matches one of ``titles``
    (case-insensitive regular expressions run by RE2, ``playbooks.patterns``; any
    title when empty),
    at most ``limit`` of them (None: all)."""

    owner: bool = False
    roles: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()
    limit: int | None = None

    def matches(self, contact: Mapping[str, Any]) -> bool:
        """Whether a contact (a dict with ``role`` and ``title``) is a recipient by role and
        title; ``owner`` recipients match no contact."""
        if self.owner:
            return False
        if self.roles and contact.get("role") not in self.roles:
            return False
        if self.titles:
            title = contact.get("title")
            if not isinstance(title, str):
                return False
            return search_any(self.titles, title)
        return True

    def select(self, contacts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The contacts an email goes to: those that :meth:`matches`, ordered by the
        position of their role in ``roles`` (stable: ties keep the given order), at most
        ``limit``. The engine passes the account's contacts in its preferred order."""
        chosen = [contact for contact in contacts if self.matches(contact)]
        if self.roles:
            rank = {role: position for position, role in enumerate(self.roles)}
            chosen.sort(key=lambda contact: rank[contact.get("role")])
        return chosen[: self.limit] if self.limit is not None else chosen

    def to_dict(self) -> dict:
        return {"owner": self.owner, "roles": list(self.roles), "titles": list(self.titles), "limit": self.limit}

    @classmethod
    def from_dict(cls, data: dict) -> Recipients:
        return cls(data["owner"], tuple(data["roles"]), tuple(data["titles"]), data.get("limit"))


@dataclass(frozen=True, kw_only=True)
class EmailStep(Step):
    """``body`` is the HTML template source (inline, or the file's text when
    ``template`` names one); ``text`` the plain-text template or None; ``sender`` the
    ``from`` address or None (the connector's default); ``variants`` its A/B variants
    (empty: none; ``playbooks.variants``)."""

    kind: ClassVar[str] = "email"
    to: Recipients
    subject: str
    body: str
    template: str | None = None
    text: str | None = None
    sender: str | None = None
    connector: str
    variants: tuple[Variant, ...] = ()

    def _fields(self) -> dict:
        fields = {
            "to": self.to.to_dict(), "subject": self.subject, "body": self.body, "template": self.template,
            "text": self.text, "from": self.sender, "connector": self.connector,
        }
        if self.variants:  # absent otherwise, so versions stored before variants compare equal
            fields["variants"] = [variant.to_dict() for variant in self.variants]
        return fields


@dataclass(frozen=True, kw_only=True)
class AudienceStep(Step):
    kind: ClassVar[str] = "audience"
    connector: str
    list: str
    action: str  # add | remove

    def _fields(self) -> dict:
        return {"connector": self.connector, "list": self.list, "action": self.action}


@dataclass(frozen=True, kw_only=True)
class AlertStep(Step):
    """``to`` is ``"owner"`` or an email address."""

    kind: ClassVar[str] = "alert"
    to: str
    message: str
    connector: str

    def _fields(self) -> dict:
        return {"to": self.to, "message": self.message, "connector": self.connector}


@dataclass(frozen=True, kw_only=True)
class TaskStep(Step):
    """``to`` is ``"owner"`` or an email; ``due`` how long after the touch it is due."""

    kind: ClassVar[str] = "task"
    to: str
    title: str
    due: timedelta | None = None
    connector: str

    def _fields(self) -> dict:
        return {"to": self.to, "title": self.title, "due": _dur(self.due), "connector": self.connector}


@dataclass(frozen=True, kw_only=True)
class WebhookStep(Step):
    """``payload`` is JSON; every string in it is a template."""

    kind: ClassVar[str] = "webhook"
    connector: str
    payload: Any

    def _fields(self) -> dict:
        return {"connector": self.connector, "payload": self.payload}


@dataclass(frozen=True, kw_only=True)
class SetStageStep(Step):
    kind: ClassVar[str] = "set_stage"
    stage: str

    def _fields(self) -> dict:
        return {"stage": self.stage}


@dataclass(frozen=True, kw_only=True)
class WaitStep(Step):
    kind: ClassVar[str] = "wait"
    duration: timedelta

    def _fields(self) -> dict:
        return {"duration": _dur(self.duration)}


@dataclass(frozen=True, kw_only=True)
class WaitUntilStep(Step):
    """``on_timeout`` is ``"continue"``, ``"exit"`` or a later step id."""

    kind: ClassVar[str] = "wait_until"
    condition: Condition
    timeout: timedelta
    on_timeout: str = "continue"

    def _fields(self) -> dict:
        return {"condition": self.condition.to_dict(), "timeout": _dur(self.timeout), "on_timeout": self.on_timeout}


@dataclass(frozen=True, kw_only=True)
class BranchStep(Step):
    """``then``/``else_`` are later step ids; ``else_`` None means the next step."""

    kind: ClassVar[str] = "branch"
    condition: Condition
    then: str
    else_: str | None = None

    def _fields(self) -> dict:
        return {"if": self.condition.to_dict(), "then": self.then, "else": self.else_}


@dataclass(frozen=True, kw_only=True)
class ExitStep(Step):
    kind: ClassVar[str] = "exit"

    def _fields(self) -> dict:
        return {}


def step_from_dict(data: dict) -> Step:
    common = {"id": data["id"], "index": data["index"], "when": _uncond(data.get("when")),
              "on_cap": data.get("on_cap"), "max_delay": _undur(data.get("max_delay"))}
    kind = data["kind"]
    if kind == "email":
        return EmailStep(
            **common, to=Recipients.from_dict(data["to"]), subject=data["subject"], body=data["body"],
            template=data.get("template"), text=data.get("text"), sender=data.get("from"),
            connector=data["connector"], variants=tuple(Variant.from_dict(v) for v in data.get("variants") or ()),
        )
    if kind == "audience":
        return AudienceStep(**common, connector=data["connector"], list=data["list"], action=data["action"])
    if kind == "alert":
        return AlertStep(**common, to=data["to"], message=data["message"], connector=data["connector"])
    if kind == "task":
        return TaskStep(
            **common, to=data["to"], title=data["title"], due=_undur(data.get("due")), connector=data["connector"]
        )
    if kind == "webhook":
        return WebhookStep(**common, connector=data["connector"], payload=data["payload"])
    if kind == "set_stage":
        return SetStageStep(**common, stage=data["stage"])
    if kind == "wait":
        return WaitStep(**common, duration=duration.parse(data["duration"]))
    if kind == "wait_until":
        return WaitUntilStep(
            **common, condition=condition_from_dict(data["condition"]), timeout=duration.parse(data["timeout"]),
            on_timeout=data.get("on_timeout") or "continue",
        )
    if kind == "branch":
        return BranchStep(**common, condition=condition_from_dict(data["if"]), then=data["then"], else_=data.get("else"))
    if kind == "exit":
        return ExitStep(**common)
    raise ValueError(f"unknown step kind {kind!r}")


# --- the playbook ---------------------------------------------------------------


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
