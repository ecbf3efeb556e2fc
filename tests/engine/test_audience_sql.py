"""The audience SQL compiler agrees with ``playbooks.conditions.evaluate`` exactly.

A hypothesis property test on both backends: random accounts (with contacts, events,
tags and typed attributes) and random conditions; the set of accounts the one SQL
query selects must equal the set the evaluator accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from abm.db import db
from abm.models import Account, Contact, Event, Opportunity, User
from abm.services import audience
from playbooks.conditions import Activity, And, ContactsMatch, FieldMatch, Not, OpportunityMatch, Or, evaluate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WORDS = ["a", "ab", "B", "fintech", "banking", "", "é", "1"]
STAGES = ["target", "aware", "engaged", "lost"]
TYPES = ["email_click", "web_visit", "form_fill"]

scalar = st.one_of(st.sampled_from(WORDS), st.integers(-2, 3), st.sampled_from([0.5, 1.0, 2.5]),
                   st.booleans())
json_value = st.one_of(st.none(), scalar, st.lists(scalar, max_size=3), st.just({"k": 1}))

account_st = st.fixed_dictionaries({
    "tier": st.one_of(st.none(), st.integers(1, 3)),
    "stage": st.sampled_from(STAGES),
    "industry": st.one_of(st.none(), st.sampled_from(WORDS)),
    "employees": st.one_of(st.none(), st.integers(0, 3)),
    "annual_revenue": st.one_of(st.none(), st.sampled_from([0, 1, 2.5])),
    "score": st.sampled_from([0.0, 1.0, 2.5, 3.0]),
    "tags": st.lists(st.sampled_from(WORDS), max_size=3),
    "attributes": st.dictionaries(st.sampled_from(["x", "y"]), json_value, max_size=2),
    "owner": st.booleans(),
    "contacts": st.lists(st.fixed_dictionaries({
        "role": st.one_of(st.none(), st.sampled_from(["decision_maker", "user"])),
        "title": st.one_of(st.none(), st.sampled_from(["VP Sales", "vp", ""])),
        "seniority": json_value,
    }), max_size=3),
    "events": st.lists(st.tuples(st.sampled_from(TYPES), st.integers(-3, 40)), max_size=4),
    # (stage, product, amount, days ago): deals opened before, at and after NOW.
    "opportunities": st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["Won", "won", "Open"])),
                                        st.one_of(st.none(), st.sampled_from(WORDS)),
                                        st.one_of(st.none(), st.sampled_from([0, 1, 2.5, 10000])),
                                        st.integers(-3, 40)), max_size=3),
})

ACCOUNT_FIELDS = ["tier", "stage", "industry", "employees", "annual_revenue", "score", "tags",
                  "attributes.x", "attributes.y", "owner", "country"]
OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]


def matcher(fields):
    def build(field, op, value, values, flag):
        if op in ("in", "not_in"):
            return FieldMatch(field, op, tuple(values))
        if op == "exists":
            return FieldMatch(field, op, flag)
        return FieldMatch(field, op, value)
    return st.builds(build, st.sampled_from(fields), st.sampled_from(OPS),
                     st.one_of(scalar, st.sampled_from(STAGES)),
                     st.lists(st.one_of(scalar, st.sampled_from(STAGES)), min_size=1, max_size=3),
                     st.booleans())


contact_condition = st.recursive(
    matcher(["role", "title", "seniority", "email"]),
    lambda inner: st.one_of(st.builds(lambda xs: And(tuple(xs)), st.lists(inner, max_size=2)),
                            st.builds(lambda xs: Or(tuple(xs)), st.lists(inner, min_size=1, max_size=2)),
                            st.builds(Not, inner)),
    max_leaves=3)

opportunity_condition = st.recursive(
    matcher(["stage", "product", "amount"]),
    lambda inner: st.one_of(st.builds(lambda xs: And(tuple(xs)), st.lists(inner, max_size=2)),
                            st.builds(Not, inner)),
    max_leaves=3)

leaf = st.one_of(
    matcher(ACCOUNT_FIELDS),
    st.builds(lambda types, days, n: Activity(tuple(types), timedelta(days=days) if days else None, n),
              st.lists(st.sampled_from(TYPES), max_size=2, unique=True), st.sampled_from([0, 1, 7, 30]),
              st.integers(1, 2)),
    st.builds(ContactsMatch, contact_condition, st.integers(1, 2)),
    st.builds(lambda where, days: OpportunityMatch(where, timedelta(days=days) if days else None),
              opportunity_condition, st.sampled_from([0, 1, 7, 30])),
)
condition_st = st.recursive(
    leaf,
    lambda inner: st.one_of(st.builds(lambda xs: And(tuple(xs)), st.lists(inner, max_size=3)),
                            st.builds(lambda xs: Or(tuple(xs)), st.lists(inner, min_size=1, max_size=3)),
                            st.builds(Not, inner)),
    max_leaves=5)


def _populate(accounts: list[dict]) -> None:
    for model in (Event, Contact, Opportunity, Account, User):
        db.session.execute(delete(model))
    owner = User(email="owner@example.com", role="ae", name="Owner")
    db.session.add(owner)
    db.session.flush()
    for i, data in enumerate(accounts):
        account = Account(name=f"Acc {i}", domain=f"acc{i}.example", tier=data["tier"], stage=data["stage"],
                          industry=data["industry"], employees=data["employees"],
                          annual_revenue=data["annual_revenue"], score=data["score"], tags=data["tags"],
                          attributes=data["attributes"], owner_id=owner.id if data["owner"] else None)
        db.session.add(account)
        db.session.flush()
        for j, c in enumerate(data["contacts"]):
            attributes = {} if c["seniority"] is None else {"seniority": c["seniority"]}
            db.session.add(Contact(account_id=account.id, email=f"p{j}@acc{i}.example", title=c["title"],
                                   buying_role=c["role"], attributes=attributes))
        for event_type, days_ago in data["events"]:
            db.session.add(Event(type=event_type, account_id=account.id,
                                 occurred_at=NOW - timedelta(days=days_ago)))
        for stage, product, amount, days_ago in data.get("opportunities", ()):
            db.session.add(Opportunity(account_id=account.id, name="Deal", stage=stage, product=product,
                                       amount=amount, created_at=NOW - timedelta(days=days_ago)))
    db.session.commit()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(accounts=st.lists(account_st, min_size=1, max_size=8),
       conditions=st.lists(condition_st, min_size=1, max_size=6))
def test_sql_agrees_with_evaluate(app, accounts, conditions):
    _populate(accounts)
    ids = [a.id for a in db.session.query(Account).order_by(Account.id)]
    facts = audience.load_facts(ids, NOW, since=None)
    for condition in conditions:
        expected = {i for i in ids if evaluate(condition, facts[i], NOW)}
        got = set(audience.matching_ids(condition, NOW))
        assert got == expected, condition


def test_known_cases(app):
    _populate([
        {"tier": 1, "stage": "target", "industry": "fintech", "employees": 2000, "annual_revenue": 5,
         "score": 10.0, "tags": ["vip"], "attributes": {"plan": "Pro", "seats": 12}, "owner": True,
         "contacts": [{"role": "decision_maker", "title": "CISO", "seniority": "c"}],
         "events": [("email_click", 1), ("email_click", 3)]},
        {"tier": 2, "stage": "aware", "industry": None, "employees": None, "annual_revenue": None,
         "score": 0.0, "tags": [], "attributes": {}, "owner": False, "contacts": [], "events": []},
    ])
    first, second = [a.id for a in db.session.query(Account).order_by(Account.id)]
    cases = {
        FieldMatch("industry", "ne", "fintech"): {second},
        FieldMatch("attributes.plan", "eq", "pro"): set(),
        FieldMatch("attributes.seats", "gte", 10): {first},
        FieldMatch("tags", "contains", "vip"): {first},
        FieldMatch("tags", "exists", False): {second},
        Activity(("email_click",), timedelta(days=2), 1): {first},
        Activity(("email_click",), timedelta(days=14), 2): {first},
        ContactsMatch(FieldMatch("role", "eq", "decision_maker"), 1): {first},
        Not(ContactsMatch(And(()), 1)): {second},
    }
    for condition, expected in cases.items():
        assert set(audience.matching_ids(condition, NOW)) == expected, condition
