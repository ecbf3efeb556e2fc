"""The condition language: its AST, its exact semantics, and an evaluator.

One grammar serves ``audience.where``, ``exit_when``, ``wait_until.condition`` and a
step's ``when``. The loader (``playbooks.loader``) turns YAML into this AST; the
engine evaluates it here for one account, and the SQL compiler (in ``abm``) turns the
same AST into one query. Both must agree exactly, so the semantics are written down:

Nodes
-----
- ``And(items)``: every item holds (an empty ``And`` is true).
- ``Or(items)``: at least one item holds (an empty ``Or`` is false; the loader never
  builds one).
- ``Not(item)``: the item does not hold.
- ``FieldMatch(field, op, value)``: a test of one field (see below).
- ``Activity(types, within, at_least)``: the account has at least ``at_least``
  events whose type is in ``types`` (any type when ``types`` is empty) and whose
  ``occurred_at`` satisfies ``now - within <= occurred_at <= now`` (``within`` None:
  no lower bound, still ``<= now``).
- ``ContactsMatch(where, at_least)``: at least ``at_least`` contacts of the account
  satisfy ``where``, a condition made of ``And``/``Or``/``Not``/``FieldMatch`` over
  contact fields.
- ``Intent(topics, min_score, within)``: the account has an ``intent`` event (a
  third-party signal) whose topic is one of ``topics`` (compared without case; any topic
  when empty), whose strength is at least ``min_score`` (0 to 100), and whose
  ``occurred_at`` is within the window as for ``Activity``.
- ``OpportunityMatch(where, within)``: the account has at least one opportunity (a deal)
  that satisfies ``where`` (``And``/``Or``/``Not``/``FieldMatch`` over opportunity
  fields) and whose ``created_at`` satisfies ``now - within <= created_at <= now``
  (``within`` None: no lower bound, still ``<= now``). ``OpportunityMatch()`` is "the
  account has a deal"; it does not depend on the account's stage.

Fields
------
Account fields: ``tier stage industry country employees annual_revenue domain name
owner tags score engagement`` and ``attributes.NAME``. Contact fields (inside
``ContactsMatch``): ``role title email first_name last_name country phone department
seniority`` and ``attributes.NAME``. Opportunity fields (inside ``OpportunityMatch``):
``stage product amount`` (the CRM's own stage names, not the workspace's). A field's value is read from the facts' dict; a
missing key and ``None`` are the same thing: *missing*. ``attributes.NAME`` reads
``fields["attributes"][NAME]`` (missing when either is absent).

Operators (``a`` is the field's value, ``v`` the condition's value)
-------------------------------------------------------------------
Equality is *exact and case-sensitive* for strings; numbers compare numerically
(``1 == 1.0``); a bool equals only a bool (``True`` is not ``1``); a string never
equals a number (``"1"`` is not ``1``).

When ``a`` is a scalar (not a list):

- ``eq v``: ``a`` is not missing and ``a == v``.
- ``ne v``: exactly ``not (eq v)``; so a *missing* value is ``ne`` anything.
- ``in [v...]``: ``a`` is not missing and equals one of the values.
- ``not_in [v...]``: exactly ``not (in [...])``; missing values match.
- ``gt gte lt lte v``: ``a`` is not missing and both are numbers (not bools), or both
  are strings (compared by code point, which suits ISO dates); otherwise false.
- ``contains v``: ``a`` and ``v`` are strings and ``v`` is a substring of ``a``
  (case-sensitive); otherwise false.
- ``exists true``: ``a`` is not missing and not the empty string ``""``.
  ``exists false`` is exactly its negation.

When ``a`` is a list (``tags``, or a list-valued attribute), it is a set of values:

- ``eq v`` and ``contains v``: some element equals ``v``.
- ``in [v...]``: some element equals some value.
- ``ne`` / ``not_in``: the negations of ``eq`` / ``in`` (so an empty list is ``ne``
  anything).
- ``gt gte lt lte``: false.
- ``exists true``: the list is not empty; ``exists false``: its negation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Union

from playbooks import duration

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists")

ACCOUNT_FIELDS = (
    "tier", "stage", "industry", "country", "employees", "annual_revenue", "domain",
    "name", "owner", "tags", "score", "engagement", "fit",
)
CONTACT_FIELDS = (
    "role", "title", "email", "first_name", "last_name", "country", "phone", "department", "seniority",
)
OPPORTUNITY_FIELDS = ("stage", "product", "amount")
ENGAGEMENT_LEVELS = ("cold", "warm", "hot")


@dataclass(frozen=True)
class And:
    items: tuple[Condition, ...]

    def to_dict(self) -> dict:
        return {"and": [item.to_dict() for item in self.items]}


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]

    def to_dict(self) -> dict:
        return {"or": [item.to_dict() for item in self.items]}


@dataclass(frozen=True)
class Not:
    item: Condition

    def to_dict(self) -> dict:
        return {"not": self.item.to_dict()}


@dataclass(frozen=True)
class FieldMatch:
    """``field`` is a field name or ``attributes.NAME``; ``op`` one of :data:`OPERATORS`.

    ``value`` is a scalar (str, int, float, bool) for ``eq ne gt gte lt lte contains``,
    a tuple of scalars for ``in``/``not_in``, a bool for ``exists``.
    """

    field: str
    op: str
    value: Any

    def to_dict(self) -> dict:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"field": self.field, "op": self.op, "value": value}


@dataclass(frozen=True)
class Activity:
    types: tuple[str, ...] = ()
    within: timedelta | None = None
    at_least: int = 1

    def to_dict(self) -> dict:
        return {
            "activity": {
                "types": list(self.types),
                "within": duration.format(self.within) if self.within else None,
                "at_least": self.at_least,
            }
        }


@dataclass(frozen=True)
class ContactsMatch:
    where: Condition = field(default_factory=lambda: And(()))
    at_least: int = 1

    def to_dict(self) -> dict:
        return {"contacts": {"where": self.where.to_dict(), "at_least": self.at_least}}


@dataclass(frozen=True)
class Intent:
    topics: tuple[str, ...] = ()
    min_score: int = 0
    within: timedelta | None = None

    def to_dict(self) -> dict:
        return {"intent": {"topics": list(self.topics), "min_score": self.min_score,
                           "within": duration.format(self.within) if self.within else None}}


@dataclass(frozen=True)
class OpportunityMatch:
    where: Condition = field(default_factory=lambda: And(()))
    within: timedelta | None = None

    def to_dict(self) -> dict:
        return {"opportunity": {"where": self.where.to_dict(),
                                "within": duration.format(self.within) if self.within else None}}


Condition = Union[And, Or, Not, FieldMatch, Activity, ContactsMatch, Intent, OpportunityMatch]  # noqa: UP007


@dataclass
class AccountFacts:
    """What the engine knows about one account when it evaluates a condition.

    ``fields``: the account fields listed in the module docstring (``attributes`` a
    dict). ``events``: ``(type, occurred_at)`` pairs, timezone-aware, for ``activity``;
    the engine may pass only the events of the longest window the playbook needs.
    ``contacts``: one dict per contact with the contact fields (``role``, ``title``,
    ``email``, ... and ``attributes``).
    """

    fields: dict = field(default_factory=dict)
    events: list[tuple[str, datetime]] = field(default_factory=list)
    contacts: list[dict] = field(default_factory=list)
    #: ``(topic, score, occurred_at)`` of the account's intent events, for ``intent``.
    intent: list[tuple[str, float, datetime]] = field(default_factory=list)
    #: One dict per opportunity (``stage``, ``product``, ``amount``, ``created_at``).
    opportunities: list[dict] = field(default_factory=list)


def condition_from_dict(data: Mapping) -> Condition:
    """Inverse of ``Condition.to_dict()``."""
    if "and" in data:
        return And(tuple(condition_from_dict(item) for item in data["and"]))
    if "or" in data:
        return Or(tuple(condition_from_dict(item) for item in data["or"]))
    if "not" in data:
        return Not(condition_from_dict(data["not"]))
    if "field" in data:
        value = data["value"]
        if isinstance(value, list):
            value = tuple(value)
        return FieldMatch(data["field"], data["op"], value)
    if "activity" in data:
        body = data["activity"]
        within = duration.parse(body["within"]) if body.get("within") else None
        return Activity(tuple(body.get("types") or ()), within, int(body.get("at_least", 1)))
    if "contacts" in data:
        body = data["contacts"]
        return ContactsMatch(condition_from_dict(body["where"]), int(body.get("at_least", 1)))
    if "intent" in data:
        body = data["intent"]
        within = duration.parse(body["within"]) if body.get("within") else None
        return Intent(tuple(body.get("topics") or ()), int(body.get("min_score", 0)), within)
    if "opportunity" in data:
        body = data["opportunity"]
        within = duration.parse(body["within"]) if body.get("within") else None
        return OpportunityMatch(condition_from_dict(body["where"]), within)
    raise ValueError(f"not a condition: {data!r}")


def read_field(record: Mapping, name: str) -> Any:
    """The value of ``name`` (or ``attributes.NAME``) in ``record``; None when missing."""
    if name.startswith("attributes."):
        attributes = record.get("attributes") or {}
        return attributes.get(name[len("attributes."):]) if isinstance(attributes, Mapping) else None
    return record.get(name)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def values_equal(a: Any, b: Any) -> bool:
    """Equality of two scalars as conditions define it (see the module docstring)."""
    if a is None or b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def _ordered(a: Any, op: str, b: Any) -> bool:
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    if op == "gt":
        return a > b
    if op == "gte":
        return a >= b
    if op == "lt":
        return a < b
    return a <= b


def match_value(actual: Any, op: str, value: Any) -> bool:
    """Apply one operator to a field's value, exactly as documented above."""
    if op == "ne":
        return not match_value(actual, "eq", value)
    if op == "not_in":
        return not match_value(actual, "in", value)
    if op == "exists":
        present = actual is not None and actual != "" and actual != [] and actual != ()
        return present if value else not present
    if actual is None:
        return False
    if isinstance(actual, (list, tuple)):
        if op in ("eq", "contains"):
            return any(values_equal(element, value) for element in actual)
        if op == "in":
            return any(values_equal(element, v) for element in actual for v in value)
        return False
    if op == "eq":
        return values_equal(actual, value)
    if op == "in":
        return any(values_equal(actual, v) for v in value)
    if op == "contains":
        return isinstance(actual, str) and isinstance(value, str) and value in actual
    if op in ("gt", "gte", "lt", "lte"):
        return _ordered(actual, op, value)
    raise ValueError(f"unknown operator {op!r}")


def _evaluate_on(condition: Condition, record: Mapping, facts: AccountFacts | None, now: datetime) -> bool:
    if isinstance(condition, FieldMatch):
        return match_value(read_field(record, condition.field), condition.op, condition.value)
    if isinstance(condition, And):
        return all(_evaluate_on(item, record, facts, now) for item in condition.items)
    if isinstance(condition, Or):
        return any(_evaluate_on(item, record, facts, now) for item in condition.items)
    if isinstance(condition, Not):
        return not _evaluate_on(condition.item, record, facts, now)
    if facts is None:
        raise ValueError("activity, contacts, intent and opportunity conditions apply to accounts only")
    if isinstance(condition, Activity):
        return count_activity(condition, facts.events, now) >= condition.at_least
    if isinstance(condition, ContactsMatch):
        matching = sum(1 for contact in facts.contacts if _evaluate_on(condition.where, contact, None, now))
        return matching >= condition.at_least
    if isinstance(condition, Intent):
        return any(intent_counts(condition, topic, score, at, now) for topic, score, at in facts.intent)
    if isinstance(condition, OpportunityMatch):
        return any(opportunity_counts(condition, opportunity, now) for opportunity in facts.opportunities)
    raise ValueError(f"not a condition: {condition!r}")


def count_activity(activity: Activity, events: Iterable[tuple[str, datetime]], now: datetime) -> int:
    """How many events count for ``activity`` at ``now`` (window bounds inclusive)."""
    since = now - activity.within if activity.within is not None else None
    types = set(activity.types)
    return sum(
        1
        for event_type, occurred_at in events
        if (not types or event_type in types)
        and occurred_at <= now
        and (since is None or occurred_at >= since)
    )


def intent_counts(intent: Intent, topic: str, score: float, occurred_at: datetime, now: datetime) -> bool:
    """Whether one intent event satisfies ``intent`` at ``now`` (window bounds inclusive)."""
    topics = {t.lower() for t in intent.topics}
    return ((not topics or (topic or "").lower() in topics) and score is not None and score >= intent.min_score
            and occurred_at <= now and (intent.within is None or occurred_at >= now - intent.within))


def opportunity_counts(match: OpportunityMatch, opportunity: Mapping, now: datetime) -> bool:
    """Whether one opportunity satisfies ``match`` at ``now`` (window bounds inclusive)."""
    created = opportunity.get("created_at")
    return (created is not None and created <= now and (match.within is None or created >= now - match.within)
            and _evaluate_on(match.where, opportunity, None, now))


def evaluate(condition: Condition, facts: AccountFacts, now: datetime) -> bool:
    """Whether ``condition`` holds for the account described by ``facts`` at ``now``."""
    return _evaluate_on(condition, facts.fields, facts, now)


def evaluate_contact(condition: Condition, contact: Mapping) -> bool:
    """Whether a contact-level condition (the ``where`` of ``ContactsMatch``) holds."""
    return _evaluate_on(condition, contact, None, datetime.min)


def walk(condition: Condition) -> Iterable[Condition]:
    """Every node of ``condition``, depth first (contacts' inner nodes included)."""
    yield condition
    if isinstance(condition, (And, Or)):
        for item in condition.items:
            yield from walk(item)
    elif isinstance(condition, Not):
        yield from walk(condition.item)
    elif isinstance(condition, (ContactsMatch, OpportunityMatch)):
        yield from walk(condition.where)


_OP_WORDS = {"eq": "is", "ne": "is not", "in": "is one of", "not_in": "is none of", "gt": ">", "gte": ">=",
             "lt": "<", "lte": "<=", "contains": "contains"}


def _describe_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_describe_value(v) for v in value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe(condition: Condition) -> str:
    """A condition in a line a person reads (``tier is one of 1, 2 and stage is "target"``)."""
    if isinstance(condition, FieldMatch):
        if condition.op == "exists":
            return f"{condition.field} is {'set' if condition.value else 'not set'}"
        return f"{condition.field} {_OP_WORDS[condition.op]} {_describe_value(condition.value)}"
    if isinstance(condition, (And, Or)):
        if not condition.items:
            return "always" if isinstance(condition, And) else "never"
        joined = " and " if isinstance(condition, And) else " or "
        return joined.join(_grouped(item) for item in condition.items)
    if isinstance(condition, Not):
        return f"not {_grouped(condition.item)}"
    if isinstance(condition, Activity):
        what = " or ".join(condition.types) if condition.types else "any"
        within = f" within {duration.format(condition.within)}" if condition.within else ""
        return f"at least {condition.at_least} {what} event(s){within}"
    if isinstance(condition, ContactsMatch):
        return f"at least {condition.at_least} contact(s) where {describe(condition.where)}"
    if isinstance(condition, Intent):
        what = " or ".join(condition.topics) if condition.topics else "any topic"
        within = f" within {duration.format(condition.within)}" if condition.within else ""
        return f"researching {what} (intent score at least {condition.min_score}){within}"
    if isinstance(condition, OpportunityMatch):
        where = "" if isinstance(condition.where, And) and not condition.where.items else \
            f" where {describe(condition.where)}"
        within = f" created within {duration.format(condition.within)}" if condition.within else ""
        return f"an opportunity{where}{within}"
    raise ValueError(f"not a condition: {condition!r}")


def _grouped(condition: Condition) -> str:
    text = describe(condition)
    return f"({text})" if isinstance(condition, (And, Or)) and len(condition.items) > 1 else text
