"""Condition semantics, exactly as documented in playbooks.conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playbooks import load
from playbooks.conditions import (
    AccountFacts,
    Activity,
    And,
    ContactsMatch,
    FieldMatch,
    Not,
    Or,
    condition_from_dict,
    evaluate,
    match_value,
)
from playbooks.workspace import Workspace

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def holds(condition, **fields) -> bool:
    return evaluate(condition, AccountFacts(fields=fields), NOW)


@pytest.mark.parametrize(
    ("actual", "op", "value", "expected"),
    [
        # equality: exact, case-sensitive, typed
        ("fintech", "eq", "fintech", True),
        ("Fintech", "eq", "fintech", False),
        (1, "eq", 1.0, True),
        (True, "eq", 1, False),
        ("1", "eq", 1, False),
        (None, "eq", "x", False),
        # ne / not_in are the negations: missing values match
        (None, "ne", "x", True),
        ("x", "ne", "x", False),
        (None, "not_in", ("a",), True),
        ("a", "not_in", ("a", "b"), False),
        ("c", "in", ("a", "b"), False),
        (None, "in", ("a",), False),
        # ordering: numbers with numbers, strings with strings, else false
        (5, "gt", 4, True),
        (4, "gt", 4, False),
        (4, "gte", 4, True),
        (4.5, "lt", 5, True),
        (5, "lte", 5, True),
        (None, "gt", 1, False),
        ("10", "gt", 9, False),
        (True, "gt", 0, False),
        ("2026-05-01", "lt", "2026-06-01", True),
        # contains: substring on text (case-sensitive), membership on lists
        ("Northwind Bank", "contains", "Bank", True),
        ("Northwind Bank", "contains", "bank", False),
        (42, "contains", "4", False),
        (["vip", "q3"], "contains", "vip", True),
        (["VIP"], "contains", "vip", False),
        # lists behave as sets for eq / in / ne / not_in
        (["vip", "q3"], "eq", "q3", True),
        (["vip"], "in", ("q3", "vip"), True),
        ([], "ne", "vip", True),
        (["vip"], "ne", "vip", False),
        (["vip"], "not_in", ("a", "b"), True),
        ([1, 2], "gt", 0, False),
        # exists: not missing, not "", not []
        ("x", "exists", True, True),
        ("", "exists", True, False),
        ([], "exists", True, False),
        (None, "exists", True, False),
        (None, "exists", False, True),
        (0, "exists", True, True),
        (False, "exists", True, True),
    ],
)
def test_operator_semantics(actual, op, value, expected):
    assert match_value(actual, op, value) is expected


def test_attributes_are_read_from_the_attributes_dict():
    condition = FieldMatch("attributes.segment", "eq", "enterprise")
    assert holds(condition, attributes={"segment": "enterprise"})
    assert not holds(condition, attributes={"segment": "smb"})
    assert not holds(condition, attributes=None)
    assert holds(FieldMatch("attributes.segment", "exists", False))


def test_combinators():
    tier1 = FieldMatch("tier", "eq", 1)
    bank = FieldMatch("industry", "eq", "banking")
    assert holds(And((tier1, bank)), tier=1, industry="banking")
    assert not holds(And((tier1, bank)), tier=1, industry="retail")
    assert holds(Or((tier1, bank)), tier=2, industry="banking")
    assert not holds(Or(()), tier=1)
    assert holds(And(()), tier=1)
    assert holds(Not(tier1), tier=2)


def test_activity_window_is_inclusive_and_ignores_future_events():
    activity = Activity(("email_click",), timedelta(days=14), 2)
    events = [("email_click", NOW - timedelta(days=14)), ("email_click", NOW)]
    assert evaluate(activity, AccountFacts(events=events), NOW)
    late = [("email_click", NOW - timedelta(days=14, seconds=1)), ("email_click", NOW)]
    assert not evaluate(activity, AccountFacts(events=late), NOW)
    future = [("email_click", NOW), ("email_click", NOW + timedelta(seconds=1))]
    assert not evaluate(activity, AccountFacts(events=future), NOW)
    other_type = [("web_visit", NOW), ("email_click", NOW)]
    assert not evaluate(activity, AccountFacts(events=other_type), NOW)
    any_type_all_time = Activity((), None, 2)
    assert evaluate(any_type_all_time, AccountFacts(events=[("a", NOW - timedelta(days=900)), ("b", NOW)]), NOW)


def test_contacts_counts_matching_contacts():
    condition = ContactsMatch(And((FieldMatch("role", "in", ("decision_maker", "champion")),
                                   FieldMatch("title", "contains", "VP"))), 2)
    contacts = [
        {"role": "decision_maker", "title": "VP Security"},
        {"role": "champion", "title": "SVP Engineering"},
        {"role": "user", "title": "VP Sales"},
    ]
    assert evaluate(condition, AccountFacts(contacts=contacts), NOW)
    assert not evaluate(condition, AccountFacts(contacts=contacts[1:]), NOW)


def compile_where(where_yaml: str):
    source = f"version: 1\nkey: cond\nname: Cond\naudience:\n  where: {where_yaml}\nsteps:\n  - wait: 1d\n"
    result = load(source, "cond.yaml", Workspace.default())
    assert result.errors == [], [str(e) for e in result.errors]
    return result.playbook.audience.where


def test_yaml_forms_compile_to_the_documented_ast():
    assert compile_where("{tier: 1}") == FieldMatch("tier", "eq", 1)
    assert compile_where("{tier: [1, 2]}") == FieldMatch("tier", "in", (1, 2))
    assert compile_where("{employees: {gte: 100, lt: 1000}}") == And(
        (FieldMatch("employees", "gte", 100), FieldMatch("employees", "lt", 1000))
    )
    assert compile_where("{any: [{tier: 1}, {not: {tags: vip}}]}") == Or(
        (FieldMatch("tier", "eq", 1), Not(FieldMatch("tags", "eq", "vip")))
    )
    assert compile_where("{activity: {type: email_click, within: 14d, at_least: 2}}") == Activity(
        ("email_click",), timedelta(days=14), 2
    )
    assert compile_where("{contacts: {role: [champion], title: {contains: VP}, at_least: 2}}") == ContactsMatch(
        And((FieldMatch("role", "in", ("champion",)), FieldMatch("title", "contains", "VP"))), 2
    )
    assert compile_where("{contacts: {at_least: 3}}") == ContactsMatch(And(()), 3)


scalars = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", "Bank", ""]), st.booleans())
leaves = st.builds(
    FieldMatch,
    st.sampled_from(["tier", "industry", "tags", "attributes.x"]),
    st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "contains"]),
    scalars,
) | st.builds(FieldMatch, st.just("tier"), st.sampled_from(["in", "not_in"]), st.tuples(scalars, scalars)) | st.builds(
    Activity, st.tuples(st.sampled_from(["email_click", "web_visit"])),
    st.one_of(st.none(), st.integers(1, 30).map(lambda d: timedelta(days=d))), st.integers(1, 3),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(inner, max_size=3).map(lambda items: Or(tuple(items))),
        inner.map(Not),
    ),
    max_leaves=8,
)
records = st.fixed_dictionaries({
    "tier": st.one_of(st.none(), st.integers(-5, 5)),
    "industry": st.one_of(st.none(), st.sampled_from(["a", "Bank", ""])),
    "tags": st.lists(st.sampled_from(["a", "b"]), max_size=2),
    "attributes": st.fixed_dictionaries({"x": scalars}),
})


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions, records)
def test_to_dict_round_trip_and_negation_laws(condition, record):
    assert condition_from_dict(condition.to_dict()) == condition
    facts = AccountFacts(fields=record, events=[("email_click", NOW - timedelta(days=3))])
    assert evaluate(Not(condition), facts, NOW) is (not evaluate(condition, facts, NOW))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["tier", "industry", "tags", "attributes.x"]), scalars, records)
def test_ne_is_exactly_not_eq_and_not_in_is_not_in(field, value, record):
    facts = AccountFacts(fields=record)
    assert evaluate(FieldMatch(field, "ne", value), facts, NOW) is not evaluate(FieldMatch(field, "eq", value), facts, NOW)
    values = (value, "a")
    assert evaluate(FieldMatch(field, "not_in", values), facts, NOW) is not evaluate(
        FieldMatch(field, "in", values), facts, NOW
    )
