"""YAML conditions -> the AST of :mod:`playbooks.conditions`, with located errors."""

from __future__ import annotations

import math
import re
from typing import Any

from ruamel.yaml.comments import CommentedMap

from playbooks._check import MAX_DEPTH, Checker, Node, describe, plain, unknown
from playbooks.conditions import (
    ENGAGEMENT_LEVELS,
    OPERATORS,
    Activity,
    And,
    Condition,
    ContactsMatch,
    FieldMatch,
    Intent,
    Not,
    OpportunityMatch,
    Or,
)

#: Field -> type. int and number are numeric; stage, role and engagement are names
#: checked against their lists; list is a list of texts (tags); any is an attribute.
ACCOUNT_FIELD_TYPES = {
    "tier": "int", "stage": "stage", "industry": "text", "country": "text", "employees": "number",
    "annual_revenue": "number", "domain": "text", "name": "text", "owner": "text", "tags": "list",
    "score": "number", "engagement": "engagement", "fit": "number",
}
#: Words for numeric comparisons that read naturally in a playbook (``fit: {at_least: 70}``).
_OP_ALIASES = {"at_least": "gte", "at_most": "lte"}
CONTACT_FIELD_TYPES = {
    "role": "role", "title": "text", "email": "text", "first_name": "text", "last_name": "text",
    "country": "text", "phone": "text", "department": "text", "seniority": "text",
}
#: Fields of an opportunity (inside ``opportunity:``); its stage is the CRM's, free text.
OPPORTUNITY_FIELD_TYPES = {"stage": "text", "product": "text", "amount": "number"}
FIELD_TYPES_BY_SCOPE = {"account": ACCOUNT_FIELD_TYPES, "contact": CONTACT_FIELD_TYPES,
                        "opportunity": OPPORTUNITY_FIELD_TYPES}
#: Keys of an account condition that hold a condition of their own (not a field).
ACCOUNT_ONLY = ("activity", "contacts", "intent", "opportunity")
_OPS_BY_TYPE = {
    "int": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists"),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists"),
    "text": ("eq", "ne", "in", "not_in", "contains", "exists"),
    "list": ("eq", "ne", "in", "not_in", "contains", "exists"),
    "stage": ("eq", "ne", "in", "not_in", "exists"),
    "role": ("eq", "ne", "in", "not_in", "exists"),
    "engagement": ("eq", "ne", "in", "not_in", "exists"),
    "any": OPERATORS,
}
_COMBINATORS = ("any", "all", "not")
_ATTRIBUTE = re.compile(r"^attributes\.[A-Za-z0-9_][A-Za-z0-9_-]*$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")


def parse_condition(chk: Checker, node: Node, scope: str = "account", depth: int = 0,
                    allow_empty: bool = False) -> Condition | None:
    """Compile a condition node; ``scope`` is ``account``, ``contact`` or ``opportunity``.
    An empty mapping is an error (it would match everything) unless ``allow_empty``."""
    chk.visit()
    if depth > MAX_DEPTH:
        chk.error(node, f"conditions nest more than {MAX_DEPTH} levels deep")
        return None
    if not node.is_map:
        chk.error(node, f"expected a condition (a mapping of field to matcher, or any/all/not), "
                        f"found {describe(node.value)}")
        return None
    if not node.value and not allow_empty:
        chk.error(node, "an empty condition matches everything; write at least one field (such as tier: [1])")
        return None
    field_types = FIELD_TYPES_BY_SCOPE[scope]
    known = list(field_types) + list(_COMBINATORS) + (list(ACCOUNT_ONLY) if scope == "account" else [])
    items: list[Condition] = []
    ok = True
    for key, child, (line, col) in node.items():
        key = plain(key)
        result: Condition | None = None
        if not isinstance(key, str):
            chk.error((line, col, node.path), f"a field name must be text, found {describe(key)}")
        elif key in ("any", "all"):
            result = _combination(chk, child, key, scope, depth)
        elif key == "not":
            inner = parse_condition(chk, child, scope, depth + 1)
            result = Not(inner) if inner is not None else None
        elif key == "activity" and scope == "account":
            result = _activity(chk, child)
        elif key == "contacts" and scope == "account":
            result = _contacts(chk, child, depth)
        elif key == "intent" and scope == "account":
            result = _intent(chk, child)
        elif key == "opportunity" and scope == "account":
            result = _opportunity(chk, child, depth)
        elif key in field_types:
            result = _matcher(chk, child, key, field_types[key])
        elif _ATTRIBUTE.match(key) and scope != "opportunity":
            result = _matcher(chk, child, key, "any")
        else:
            chk.error((line, col, child.path), _unknown_key(key, scope, known))
        if result is None:
            ok = False
        else:
            items.append(result)
    if not ok:
        return None
    return items[0] if len(items) == 1 else And(tuple(items))


def _unknown_key(key: str, scope: str, known: list[str]) -> str:
    if scope != "account" and key in ACCOUNT_ONLY:
        return f"'{key}' applies to accounts, not inside {'a contacts' if scope == 'contact' else 'an opportunity'} condition"
    if scope == "opportunity":
        return unknown("opportunity field", key, known + ["created_within"], listing="fields")
    return unknown(f"{scope} field", key, known + ["attributes.NAME"], listing="fields")


def _combination(chk: Checker, node: Node, key: str, scope: str, depth: int) -> Condition | None:
    if not node.is_seq or not node.value:
        chk.error(node, f"'{key}' takes a non-empty list of conditions, found {describe(node.value)}")
        return None
    parts = [parse_condition(chk, element, scope, depth + 1) for element in node.elements()]
    if any(part is None for part in parts):
        return None
    return Or(tuple(parts)) if key == "any" else And(tuple(parts))


def _value(chk: Checker, node: Node, field: str, kind: str, op: str) -> Any:
    """One comparison value, checked against the field's type; None when wrong."""
    value = plain(node.value)
    if value is None:
        chk.error(node, f"'{field}' cannot be compared with an empty value; use 'exists: false' "
                        "to match a missing value")
        return None
    if isinstance(value, (dict, list)) or not isinstance(value, (str, int, float, bool)):
        chk.error(node, f"expected a single value for '{field}', found {describe(node.value)}")
        return None
    if isinstance(value, float) and not math.isfinite(value):
        chk.error(node, f"{value} is not a usable number")
        return None
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        chk.error(node, f"'{field}' is a whole number, found {describe(value)}")
        return None
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        chk.error(node, f"'{field}' is a number, found {describe(value)}")
        return None
    if kind in ("text", "list", "stage", "role", "engagement") and not isinstance(value, str):
        chk.error(node, f"'{field}' is text, found {describe(value)}; quote it")
        return None
    if kind == "stage" and value not in chk.workspace.stages:
        chk.error(node, unknown("stage", value, chk.workspace.stages, listing="stages"))
        return None
    if kind == "role" and value not in chk.workspace.roles:
        chk.error(node, unknown("role", value, chk.workspace.roles, listing="roles"))
        return None
    if kind == "engagement" and value not in ENGAGEMENT_LEVELS:
        chk.error(node, unknown("engagement level", value, ENGAGEMENT_LEVELS, listing="levels"))
        return None
    if op in ("gt", "gte", "lt", "lte") and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
        chk.error(node, f"'{op}' compares numbers or texts, found {describe(value)}")
        return None
    return value


def _values(chk: Checker, node: Node, field: str, kind: str, op: str) -> tuple | None:
    if not node.is_seq or not node.value:
        chk.error(node, f"'{op}' takes a non-empty list of values, found {describe(node.value)}")
        return None
    values = [_value(chk, element, field, kind, "eq") for element in node.elements()]
    if any(value is None for value in values):
        return None
    return tuple(values)


def _matcher(chk: Checker, node: Node, field: str, kind: str) -> Condition | None:
    chk.visit()
    allowed = _OPS_BY_TYPE[kind]
    if node.is_seq:
        values = _values(chk, node, field, kind, "in")
        return FieldMatch(field, "in", values) if values is not None else None
    if not node.is_map:
        value = _value(chk, node, field, kind, "eq")
        return FieldMatch(field, "eq", value) if value is not None else None
    if not node.value:
        chk.error(node, f"the matcher of '{field}' is empty; write a value, a list, or operators "
                        f"({', '.join(allowed)})")
        return None
    matches: list[Condition] = []
    ok = True
    for op, child, (line, col) in node.items():
        op = plain(op)
        if kind in ("int", "number") and op in _OP_ALIASES:
            op = _OP_ALIASES[op]
        match: FieldMatch | None = None
        if op not in OPERATORS:
            chk.error((line, col, child.path), unknown("operator", op, OPERATORS, listing="operators"))
        elif op not in allowed:
            chk.error((line, col, child.path),
                      f"'{op}' does not apply to '{field}' (it takes: {', '.join(allowed)})")
        elif op in ("in", "not_in"):
            values = _values(chk, child, field, kind, op)
            match = FieldMatch(field, op, values) if values is not None else None
        elif op == "exists":
            flag = plain(child.value)
            if not isinstance(flag, bool):
                chk.error(child, f"'exists' takes true or false, found {describe(child.value)}")
            else:
                match = FieldMatch(field, op, flag)
        else:
            value = _value(chk, child, field, "text" if (op == "contains" and kind == "list") else kind, op)
            match = FieldMatch(field, op, value) if value is not None else None
        if match is None:
            ok = False
        else:
            matches.append(match)
    if not ok:
        return None
    return matches[0] if len(matches) == 1 else And(tuple(matches))


def _activity(chk: Checker, node: Node) -> Condition | None:
    entries = chk.mapping(node, ("type", "within", "at_least"))
    if entries is None:
        return None
    ok = True
    types: tuple[str, ...] = ()
    if "type" in entries:
        listed = chk.string_list(entries["type"], "event types")
        if listed is None:
            ok = False
        else:
            for value, element in listed:
                if not _EVENT_TYPE.match(value):
                    chk.error(element, f"'{value}' is not an event type (lowercase words joined by _, "
                                       "such as email_click)")
                    ok = False
            types = tuple(value for value, _ in listed)
    within = None
    if "within" in entries:
        within = chk.duration(entries["within"])
        ok = ok and within is not None
    at_least = 1
    if "at_least" in entries:
        counted = chk.integer(entries["at_least"], low=1)
        ok = ok and counted is not None
        at_least = counted or 1
    if not ok:
        return None
    return Activity(types, within, at_least)


def _intent(chk: Checker, node: Node) -> Condition | None:
    """``intent: {topic: NAME or [NAMES], min_score: 0-100, within: DURATION}``."""
    entries = chk.mapping(node, ("topic", "min_score", "within"))
    if entries is None:
        return None
    ok = True
    topics: tuple[str, ...] = ()
    if "topic" in entries:
        child = entries["topic"]
        if isinstance(plain(child.value), str):
            topics = (plain(child.value),)
        else:
            listed = chk.string_list(child, "topics")
            ok = listed is not None
            topics = tuple(value for value, _ in listed or ())
    min_score = 0
    if "min_score" in entries:
        counted = chk.integer(entries["min_score"], low=0)
        if counted is not None and counted > 100:
            chk.error(entries["min_score"], f"an intent score runs from 0 to 100, found {counted}")
            counted = None
        ok = ok and counted is not None
        min_score = counted or 0
    within = None
    if "within" in entries:
        within = chk.duration(entries["within"])
        ok = ok and within is not None
    return Intent(topics, min_score, within) if ok else None


def _contacts(chk: Checker, node: Node, depth: int) -> Condition | None:
    if not node.is_map:
        chk.error(node, f"'contacts' takes a mapping of contact fields (and at_least), found {describe(node.value)}")
        return None
    at_least: int | None = 1
    for key, child, _ in node.items():
        if key == "at_least":
            at_least = chk.integer(child, low=1)
    where = parse_condition(chk, _without(node, "at_least"), "contact", depth + 1, allow_empty=True)
    if where is None or at_least is None:
        return None
    return ContactsMatch(where, at_least)


def _opportunity(chk: Checker, node: Node, depth: int) -> Condition | None:
    """``opportunity: {stage, product, amount, created_within}``: the account has a deal
    that matches (``opportunity: {}`` -- any deal)."""
    if not node.is_map:
        chk.error(node, "'opportunity' takes a mapping of opportunity fields (stage, product, amount) and "
                        f"created_within, found {describe(node.value)}")
        return None
    within, ok = None, True
    for key, child, _ in node.items():
        if key == "created_within":
            within = chk.duration(child)
            ok = within is not None
    where = parse_condition(chk, _without(node, "created_within"), "opportunity", depth + 1, allow_empty=True)
    if where is None or not ok:
        return None
    return OpportunityMatch(where, within)


def _without(node: Node, key: str) -> Node:
    """The same mapping node minus one key, positions kept."""
    original = node.value
    copy = CommentedMap()
    for k in original:
        if k == key:
            continue
        copy[k] = original[k]
        try:
            copy.lc.add_kv_line_col(k, original.lc.data[k])
        except Exception:  # noqa: BLE001 - no position to carry
            pass
    return Node(copy, node.path, node.line, node.col)
