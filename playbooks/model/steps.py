"""The steps of a compiled playbook: one frozen dataclass a kind, and their JSON round trip."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from playbooks import duration
from playbooks.conditions import Condition, condition_from_dict
from playbooks.model._json import _cond, _dur, _uncond, _undur
from playbooks.patterns import search_any
from playbooks.variants import Variant

#: The channel each touch-making step kind is served on.
CHANNEL_OF_KIND = {"email": "email", "audience": "ads", "alert": "alert", "task": "task", "webhook": "webhook"}
TOUCH_KINDS = tuple(CHANNEL_OF_KIND)
STEP_KINDS = TOUCH_KINDS + ("set_stage", "wait", "wait_until", "branch", "exit")


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
