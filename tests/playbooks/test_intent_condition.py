"""``intent: {topic, min_score, within}`` in the condition language: parsed with located
errors, evaluated in memory and in SQL with the same answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from abm.db import db, utcnow
from abm.models import Account, Event
from abm.services import audience
from playbooks.conditions import evaluate
from playbooks.settings import SettingsError, parse_account_condition


def parse(value):
    return parse_account_condition(value, "audience", ["target"], ["user"])


def test_intent_conditions_are_checked_where_they_are_written():
    assert parse({"intent": {"topic": "Zero Trust", "min_score": 60, "within": "2w"}}).min_score == 60
    with pytest.raises(SettingsError) as caught:
        parse({"intent": {"topic": "Zero Trust", "min_score": 160, "whithin": "2w"}})
    messages = " | ".join(caught.value.messages)
    assert "audience.intent.whithin" in messages or "whithin" in messages
    with pytest.raises(SettingsError, match="0 to 100"):
        parse({"intent": {"min_score": 160}})


def test_intent_in_memory_and_in_sql_agree(app):
    now = utcnow()
    db.session.execute(insert(Account), [{"name": n, "domain": f"{n}.example", "stage": "target"}
                                         for n in ("hot", "weak", "old", "other", "none")])
    ids = {a.name: a.id for a in db.session.query(Account)}
    rows = [("hot", "Zero Trust", 78, 3), ("weak", "zero trust", 40, 3), ("old", "Zero Trust", 90, 40),
            ("other", "SASE", 95, 1)]
    db.session.execute(insert(Event), [
        {"type": "intent", "account_id": ids[n], "occurred_at": now - timedelta(days=d),
         "properties": {"topic": t, "score": s, "provider": "bombora"}, "dedup_key": f"k{n}"}
        for n, t, s, d in rows])
    db.session.commit()
    cases = {
        "zero trust, 60, 2 weeks": ({"intent": {"topic": "zero trust", "min_score": 60, "within": "2w"}}, {"hot"}),
        "any topic, 60": ({"intent": {"min_score": 60}}, {"hot", "old", "other"}),
        "two topics": ({"intent": {"topic": ["SASE", "Zero Trust"], "within": "14d"}}, {"hot", "weak", "other"}),
        "not researching": ({"not": {"intent": {"within": "2w"}}}, {"old", "none"}),
    }
    for name, (value, expected) in cases.items():
        condition = parse(value)
        in_sql = {n for n, i in ids.items() if i in set(audience.matching_ids(condition, now))}
        facts = audience.load_facts(list(ids.values()), now, audience.longest_window([condition]))
        in_memory = {n for n, i in ids.items() if evaluate(condition, facts[i], now)}
        assert in_sql == in_memory == expected, name
