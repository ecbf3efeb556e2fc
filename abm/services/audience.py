"""Conditions as SQL: the condition AST compiled to one boolean expression over accounts.

``account_filter(condition, now)`` returns a SQLAlchemy expression over ``accounts``
that holds exactly when ``playbooks.conditions.evaluate`` would hold for the same
account, on SQLite and PostgreSQL alike (a property test checks both against the
evaluator). ``activity`` and ``contacts`` become correlated ``COUNT``/``EXISTS``
subqueries (``intent`` and ``opportunity`` too), so an audience of 100,000 accounts is
one query, never one per account.

How the semantics are kept in SQL:

- Every leaf is *two-valued*: a missing value (SQL NULL) never turns ``NOT`` into
  NULL, because each leaf is ``COALESCE(test, FALSE)`` and guards ``IS NOT NULL``.
- Types are decided at compile time where the column has one (a string never equals
  a number, a bool equals only a bool); JSON values (``tags``, ``attributes.NAME``,
  contact ``department``/``seniority``) are tested by their JSON type at run time.
- Strings compare exactly and by code point (``COLLATE "C"`` on PostgreSQL, BINARY
  on SQLite); ``contains`` is ``strpos``/``instr``, never the case-blind ``LIKE``.

``load_facts(account_ids, now, since)`` builds the ``AccountFacts`` the evaluator
takes, for a whole batch of accounts in three queries.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from abm.db import db, in_list
from abm.models import Account, Contact, Event, Opportunity, User
from playbooks.conditions import (
    AccountFacts,
    Activity,
    And,
    Condition,
    ContactsMatch,
    FieldMatch,
    Intent,
    Not,
    OpportunityMatch,
    Or,
    walk,
)

NUM, STR = "num", "str"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Compiler:
    def __init__(self, dialect: str, now: datetime):
        self.pg = dialect == "postgresql"
        self.now = now

    # -- fields ------------------------------------------------------------------
    def account_field(self, name: str):
        """(kind, expression) where kind is NUM, STR or ("json", column, key|None)."""
        columns = {
            "tier": (NUM, Account.tier), "employees": (NUM, Account.employees),
            "annual_revenue": (NUM, cast(Account.annual_revenue, Float)), "score": (NUM, Account.score),
            "fit": (NUM, Account.fit_score),
            "stage": (STR, Account.stage), "industry": (STR, Account.industry),
            "country": (STR, Account.country), "domain": (STR, Account.domain),
            "name": (STR, Account.name), "engagement": (STR, Account.engagement),
        }
        if name in columns:
            return columns[name]
        if name == "owner":
            return STR, select(User.email).where(User.id == Account.owner_id).scalar_subquery()
        if name == "tags":
            return ("json", Account.tags, None), None
        if name.startswith("attributes."):
            return ("json", Account.attributes, name[len("attributes."):]), None
        return ("missing",), None

    def contact_field(self, name: str):
        columns = {
            "role": Contact.buying_role, "title": Contact.title, "email": Contact.email,
            "first_name": Contact.first_name, "last_name": Contact.last_name,
            "country": Contact.country, "phone": Contact.phone,
        }
        if name in columns:
            return STR, columns[name]
        if name in ("department", "seniority"):
            return ("json", Contact.attributes, name), None
        if name.startswith("attributes."):
            return ("json", Contact.attributes, name[len("attributes."):]), None
        return ("missing",), None

    @staticmethod
    def opportunity_field(name: str):
        columns = {"stage": (STR, Opportunity.stage), "product": (STR, Opportunity.product),
                   "amount": (NUM, cast(Opportunity.amount, Float))}
        return columns.get(name, (("missing",), None))

    # -- conditions --------------------------------------------------------------
    def compile(self, condition: Condition, field_of) -> ColumnElement:
        if isinstance(condition, And):
            if not condition.items:
                return true()
            return and_(*(self.compile(item, field_of) for item in condition.items))
        if isinstance(condition, Or):
            if not condition.items:
                return false()
            return or_(*(self.compile(item, field_of) for item in condition.items))
        if isinstance(condition, Not):
            return not_(self.compile(condition.item, field_of))
        if isinstance(condition, FieldMatch):
            kind, expr = field_of(condition.field)
            return func.coalesce(self.match(kind, expr, condition.op, condition.value), false())
        if isinstance(condition, Activity):
            return self.activity(condition)
        if isinstance(condition, ContactsMatch):
            return self.contacts(condition)
        if isinstance(condition, Intent):
            return self.intent(condition)
        if isinstance(condition, OpportunityMatch):
            return self.opportunity(condition)
        raise ValueError(f"not a condition: {condition!r}")

    def intent(self, node: Intent) -> ColumnElement:
        topic = self.json_text(Event.properties, "topic")
        where = [Event.account_id == Account.id, Event.type == "intent", Event.occurred_at <= self.now,
                 cast(self.json_text(Event.properties, "score"), Float) >= node.min_score]
        if node.topics:
            where.append(func.lower(topic).in_([t.lower() for t in node.topics]))
        if node.within is not None:
            where.append(Event.occurred_at >= self.now - node.within)
        return exists().where(*where)

    def opportunity(self, node: OpportunityMatch) -> ColumnElement:
        where = [Opportunity.account_id == Account.id, Opportunity.created_at <= self.now,
                 self.compile(node.where, self.opportunity_field)]
        if node.within is not None:
            where.append(Opportunity.created_at >= self.now - node.within)
        return exists().where(*where)

    def json_text(self, column, key: str):
        return column.op("->>")(key) if self.pg else func.json_extract(column, f"$.{key}")

    def activity(self, node: Activity) -> ColumnElement:
        where = [Event.account_id == Account.id, Event.occurred_at <= self.now]
        if node.types:
            where.append(Event.type.in_(node.types))
        if node.within is not None:
            where.append(Event.occurred_at >= self.now - node.within)
        if node.at_least <= 0:
            return true()
        if node.at_least == 1:
            return exists().where(*where)
        counted = select(func.count()).select_from(Event).where(*where).scalar_subquery()
        return counted >= node.at_least

    def contacts(self, node: ContactsMatch) -> ColumnElement:
        where = [Contact.account_id == Account.id, self.compile(node.where, self.contact_field)]
        if node.at_least <= 0:
            return true()
        if node.at_least == 1:
            return exists().where(*where)
        counted = select(func.count()).select_from(Contact).where(*where).scalar_subquery()
        return counted >= node.at_least

    # -- one operator ------------------------------------------------------------
    def text(self, expr):
        return expr.collate("C") if self.pg else expr

    def match(self, kind, expr, op: str, value) -> ColumnElement:
        if op == "ne":
            return not_(func.coalesce(self.match(kind, expr, "eq", value), false()))
        if op == "not_in":
            return not_(func.coalesce(self.match(kind, expr, "in", value), false()))
        if kind == ("missing",):
            return literal(op == "exists" and not value)
        if isinstance(kind, tuple):
            return self.match_json(kind[1], kind[2], op, value)
        present = expr.is_not(None) if kind == NUM else and_(expr.is_not(None), expr != "")
        if op == "exists":
            return present if value else not_(present)
        if op == "eq":
            return self.scalar_eq(kind, expr, value)
        if op == "in":
            tests = [self.scalar_eq(kind, expr, v) for v in value]
            return or_(*tests) if tests else false()
        if op == "contains":
            if kind != STR or not isinstance(value, str):
                return false()
            return and_(expr.is_not(None), self.position(expr, value) > 0)
        if op in ("gt", "gte", "lt", "lte"):
            if kind == NUM and _is_number(value):
                return and_(expr.is_not(None), self.compare(expr, op, value))
            if kind == STR and isinstance(value, str):
                return and_(expr.is_not(None), self.compare(self.text(expr), op, value))
            return false()
        raise ValueError(f"unknown operator {op!r}")

    def scalar_eq(self, kind, expr, value) -> ColumnElement:
        if kind == NUM and _is_number(value):
            return and_(expr.is_not(None), expr == value)
        if kind == STR and isinstance(value, str):
            return and_(expr.is_not(None), self.text(expr) == value)
        return false()

    def position(self, expr, value):
        return func.strpos(expr, value) if self.pg else func.instr(expr, value)

    @staticmethod
    def compare(expr, op: str, value):
        return {"gt": expr > value, "gte": expr >= value, "lt": expr < value, "lte": expr <= value}[op]

    # -- JSON values ---------------------------------------------------------------
    def json_parts(self, column, key):
        """(type, text, number) expressions of a JSON value; type is one of
        string number boolean array object null (NULL when missing)."""
        if self.pg:
            node = column if key is None else column.op("->")(cast(literal(key), String))
            jtype = func.jsonb_typeof(node)
            as_text = (column.op("->>", return_type=String)(cast(literal(key), String)) if key is not None
                       else node.op("#>>", return_type=String)(cast(literal("{}"), ARRAY(String))))
            return node, jtype, as_text
        path = "$" if key is None else "$." + json.dumps(key)
        raw = func.json_type(column, path)
        return (column, path), raw, func.json_extract(column, path)

    def json_type_is(self, jtype, wanted: str):
        if self.pg:
            return jtype == wanted
        names = {"string": ("text",), "number": ("integer", "real"), "boolean": ("true", "false"),
                 "array": ("array",), "object": ("object",), "null": ("null",)}[wanted]
        return jtype.in_(names)

    def value_eq(self, jtype, as_text, value) -> ColumnElement:
        """A JSON scalar (given by its type and extracted value) equals a Python scalar."""
        if isinstance(value, bool):
            if self.pg:
                return and_(jtype == "boolean", as_text == ("true" if value else "false"))
            return jtype == ("true" if value else "false")
        if _is_number(value):
            if self.pg:
                return and_(jtype == "number", self.number(jtype, as_text) == value)
            return and_(jtype.in_(("integer", "real")), as_text == value)
        if isinstance(value, str):
            return and_(self.json_type_is(jtype, "string"), self.text(as_text) == value)
        return false()

    @staticmethod
    def number(jtype, as_text):
        """The JSON value as a float on PostgreSQL, cast only when it is a number (the
        planner may evaluate a cast before the type test that guards it)."""
        return case((jtype == "number", cast(as_text, Float)))

    def elements(self, node):
        """A table of the elements of a JSON array: (type, text) columns."""
        if self.pg:
            table = func.jsonb_array_elements(node).table_valued("value").alias("el")
            value = table.c.value
            return table, func.jsonb_typeof(value), value.op("#>>", return_type=String)(cast(literal("{}"), ARRAY(String)))
        column, path = node
        table = func.json_each(column, path).table_valued("type", "value", "atom").alias("el")
        return table, table.c.type, table.c.atom

    def any_element(self, node, jtype, test) -> ColumnElement:
        table, el_type, el_text = self.elements(node)
        return and_(self.json_type_is(jtype, "array"),
                    exists(select(literal(1)).select_from(table).where(test(el_type, el_text))))

    def match_json(self, column, key, op: str, value) -> ColumnElement:
        node, jtype, as_text = self.json_parts(column, key)
        is_array = self.json_type_is(jtype, "array")
        if op == "exists":
            if self.pg:
                present = and_(jtype.is_not(None), jtype != "null",
                               or_(jtype != "string", as_text != ""),
                               or_(jtype != "array", func.jsonb_array_length(node) > 0))
            else:
                present = and_(jtype.is_not(None), jtype != "null",
                               or_(jtype != "text", as_text != ""),
                               or_(jtype != "array", func.json_array_length(*node) > 0))
            present = func.coalesce(present, false())
            return present if value else not_(present)
        if op in ("eq", "contains"):
            listed = self.any_element(node, jtype, lambda t, x: self.value_eq(t, x, value))
            if op == "eq":
                scalar = and_(not_(is_array), self.value_eq(jtype, as_text, value))
            elif isinstance(value, str):
                scalar = and_(self.json_type_is(jtype, "string"), self.position(as_text, value) > 0)
            else:
                scalar = false()
            return or_(scalar, listed)
        if op == "in":
            if not value:
                return false()
            scalar = or_(*(self.value_eq(jtype, as_text, v) for v in value))
            listed = self.any_element(node, jtype, lambda t, x: or_(*(self.value_eq(t, x, v) for v in value)))
            return or_(and_(not_(is_array), scalar), listed)
        if op in ("gt", "gte", "lt", "lte"):
            if _is_number(value):
                if self.pg:
                    return and_(jtype == "number", self.compare(self.number(jtype, as_text), op, value))
                return and_(jtype.in_(("integer", "real")), self.compare(as_text, op, value))
            if isinstance(value, str):
                return and_(self.json_type_is(jtype, "string"), self.compare(self.text(as_text), op, value))
            return false()
        raise ValueError(f"unknown operator {op!r}")


def account_filter(condition: Condition, now: datetime, dialect: str | None = None) -> ColumnElement:
    """The condition as a boolean SQL expression over ``accounts`` (see the module doc)."""
    compiler = _Compiler(dialect or db.dialect, now)
    return compiler.compile(condition, compiler.account_field)


def matching_ids(condition: Condition, now: datetime, limit: int | None = None) -> list[int]:
    """Ids of the accounts that match ``condition`` at ``now``, in id order."""
    query = select(Account.id).where(account_filter(condition, now)).order_by(Account.id)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.execute(query).scalars())


def count_matching(condition: Condition, now: datetime) -> int:
    return db.session.execute(
        select(func.count()).select_from(Account).where(account_filter(condition, now))).scalar_one()


# -- facts for the evaluator ------------------------------------------------------


def longest_window(conditions) -> timedelta | None:
    """The longest ``activity.within`` among ``conditions``; None when one has no bound
    (all events are needed) -- and a zero timedelta when no condition reads events."""
    longest = timedelta(0)
    for condition in conditions:
        if condition is None:
            continue
        for node in walk(condition):
            if isinstance(node, (Activity, Intent)):
                if node.within is None:
                    return None
                longest = max(longest, node.within)
    return longest


def account_fields(account, owner_email: str | None) -> dict:
    """The fields conditions and templates read, as plain values (numbers as numbers).
    ``account``: an ``Account`` or a row with the same attribute names."""
    revenue = account.annual_revenue
    return {
        "id": account.id, "name": account.name, "domain": account.domain, "industry": account.industry,
        "employees": account.employees,
        "annual_revenue": float(revenue) if revenue is not None else None,
        "country": account.country, "tier": account.tier, "tags": list(account.tags or []),
        "owner": owner_email, "stage": account.stage, "score": account.score,
        "fit": account.fit_score,
        "engagement": account.engagement, "timezone": account.timezone,
        "attributes": dict(account.attributes or {}),
    }


def contact_fields(contact) -> dict:
    """A contact's fields for conditions and templates (``Contact`` or a row like it)."""
    attributes = dict(contact.attributes or {})
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
    return {
        "id": contact.id, "account_id": contact.account_id, "email": contact.email,
        "first_name": contact.first_name, "last_name": contact.last_name, "name": name,
        "title": contact.title, "role": contact.buying_role, "country": contact.country,
        "phone": contact.phone, "department": attributes.get("department"),
        "seniority": attributes.get("seniority"), "attributes": attributes,
        "unsubscribed_at": contact.unsubscribed_at, "bounced_at": contact.bounced_at,
        "erased_at": contact.erased_at,
    }


_ACCOUNT_COLUMNS = ("id", "name", "domain", "industry", "employees", "annual_revenue", "country", "tier", "tags",
                    "stage", "score", "engagement", "timezone", "attributes", "fit_score")
#: The contact columns ``contact_fields`` reads.
CONTACT_COLUMNS = ("id", "account_id", "email", "first_name", "last_name", "title", "buying_role", "country",
                   "phone", "attributes", "unsubscribed_at", "bounced_at", "erased_at")


def load_facts(account_ids, now: datetime, since: timedelta | None = timedelta(0),
               with_contacts: bool = True, with_crm_ids: bool = False) -> dict[int, AccountFacts]:
    """``AccountFacts`` for each account id, in five queries whatever their number
    (accounts, contacts, events, intent, opportunities; contacts and opportunities only
    ``with_contacts``: a touch being rendered needs neither).

    ``since``: how far back events are needed (``longest_window``); None for all of
    them, ``timedelta(0)`` for none. ``with_crm_ids``: the fields also hold ``crm_ids``
    (what a connector's touch carries; conditions and templates do not read them).
    """
    ids = sorted(set(account_ids))
    facts: dict[int, AccountFacts] = {}
    if not ids:
        return facts
    columns = [getattr(Account, c) for c in _ACCOUNT_COLUMNS] + ([Account.crm_ids] if with_crm_ids else [])
    rows = db.session.execute(
        select(*columns, User.email.label("owner_email")).outerjoin(User, User.id == Account.owner_id)
        .where(in_list(Account.id, ids))).all()
    for row in rows:
        facts[row.id] = AccountFacts(fields=account_fields(row, row.owner_email), events=[], contacts=[])
        if with_crm_ids:
            facts[row.id].fields["crm_ids"] = dict(row.crm_ids or {})
    if with_contacts:
        columns = [getattr(Contact, c) for c in CONTACT_COLUMNS]
        for row in db.session.execute(select(*columns).where(in_list(Contact.account_id, ids)).order_by(Contact.id)):
            facts[row.account_id].contacts.append(contact_fields(row))
        _load_opportunities(facts, ids, now)
    if since is None or since > timedelta(0):
        query = select(Event.account_id, Event.type, Event.occurred_at).where(
            in_list(Event.account_id, ids), Event.occurred_at <= now)
        if since is not None:
            query = query.where(Event.occurred_at >= now - since)
        events: dict[int, list] = defaultdict(list)
        for account_id, event_type, occurred_at in db.session.execute(query):
            events[account_id].append((event_type, occurred_at))
        for account_id, items in events.items():
            facts[account_id].events = items
        _load_intent(facts, ids, now, since)
    return facts


def _load_opportunities(facts: dict[int, AccountFacts], ids: list[int], now: datetime) -> None:
    """Each account's opportunities created by ``now`` (as ``OpportunityMatch`` reads them)."""
    query = select(Opportunity.account_id, Opportunity.stage, Opportunity.product, Opportunity.amount,
                   Opportunity.created_at).where(in_list(Opportunity.account_id, ids), Opportunity.created_at <= now)
    for account_id, stage, product, amount, created_at in db.session.execute(query):
        facts[account_id].opportunities.append({
            "stage": stage, "product": product, "amount": float(amount) if amount is not None else None,
            "created_at": created_at})


def _load_intent(facts: dict[int, AccountFacts], ids: list[int], now: datetime, since: timedelta | None) -> None:
    """Each account's intent events in the window: (topic, score, occurred_at)."""
    compiler = _Compiler(db.dialect, now)
    query = select(Event.account_id, compiler.json_text(Event.properties, "topic"),
                   cast(compiler.json_text(Event.properties, "score"), Float), Event.occurred_at).where(
        in_list(Event.account_id, ids), Event.type == "intent", Event.occurred_at <= now)
    if since is not None:
        query = query.where(Event.occurred_at >= now - since)
    for account_id, topic, score, occurred_at in db.session.execute(query):
        facts[account_id].intent.append((topic, score, occurred_at))


__all__ = ["account_filter", "matching_ids", "count_matching", "load_facts", "longest_window",
           "account_fields", "contact_fields", "CONTACT_COLUMNS"]
