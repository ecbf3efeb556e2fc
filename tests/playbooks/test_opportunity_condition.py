"""``opportunity: {stage, product, amount, created_within}`` in the condition language:
parsed with located errors (see also broken/opportunity.yaml), evaluated in memory,
described in words, round-tripped, and accepted by the JSON Schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from playbooks import json_schema, load
from playbooks.conditions import (
    AccountFacts,
    FieldMatch,
    OpportunityMatch,
    condition_from_dict,
    describe,
    evaluate,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PLAYBOOK = """version: 1
key: deals
name: Until a deal opens
audience:
  where:
    tier: [1]
    not: {opportunity: {stage: {not_in: [Closed Lost]}}}
exit_when:
  opportunity: {created_within: 30d}
steps:
  - wait_until:
      condition:
        opportunity: {product: Platform, amount: {at_least: 10000}, stage: [Prospecting, Proposal]}
      timeout: 14d
"""


def _facts(*deals) -> AccountFacts:
    return AccountFacts(opportunities=[{"stage": s, "product": p, "amount": a, "created_at": NOW - timedelta(days=d)}
                                       for s, p, a, d in deals])


def test_a_playbook_with_opportunity_conditions_loads_and_reads_as_written():
    result = load(PLAYBOOK)
    assert result.ok, [str(e) for e in result.errors]
    pb = result.playbook
    assert pb.exit_when == OpportunityMatch(within=timedelta(days=30))
    assert describe(pb.exit_when) == "an opportunity created within 30d"
    waited = pb.steps[0].condition
    assert describe(waited) == ('an opportunity where product is "Platform" and amount >= 10000 '
                                'and stage is one of "Prospecting", "Proposal"')
    assert condition_from_dict(waited.to_dict()) == waited
    assert condition_from_dict(pb.exit_when.to_dict()) == pb.exit_when


def test_the_json_schema_accepts_what_the_validator_accepts():
    errors = list(Draft202012Validator(json_schema.build()).iter_errors(YAML(typ="safe").load(PLAYBOOK)))
    assert errors == [], [e.message for e in errors]


def test_evaluation_follows_the_documented_semantics():
    pb = load(PLAYBOOK).playbook
    exit_when, waited = pb.exit_when, pb.steps[0].condition
    big = ("Prospecting", "Platform", 25000.0, 3)
    assert evaluate(exit_when, _facts(big), NOW)
    assert not evaluate(exit_when, _facts(("Prospecting", "Platform", 1.0, 31)), NOW)  # opened before the window
    assert not evaluate(exit_when, _facts(("Prospecting", "Platform", 1.0, -1)), NOW)  # not opened yet at NOW
    assert not evaluate(exit_when, AccountFacts(), NOW)
    assert evaluate(waited, _facts(big), NOW)
    # One deal must match every field: a big deal of another product and a small
    # Platform deal do not add up to one.
    assert not evaluate(waited, _facts(("Prospecting", "Other", 25000.0, 3), ("Proposal", "Platform", 5.0, 3)), NOW)
    assert not evaluate(waited, _facts(("prospecting", "Platform", 25000.0, 3)), NOW)  # stages are case-sensitive
    assert not evaluate(waited, _facts(("Prospecting", "Platform", None, 3)), NOW)  # no amount: not >= anything
    lost_only = _facts(("Closed Lost", "Platform", 1.0, 90))
    audience = pb.audience.where
    assert evaluate(audience, AccountFacts(fields={"tier": 1}), NOW)
    assert evaluate(audience, AccountFacts(fields={"tier": 1}, opportunities=lost_only.opportunities), NOW)
    assert not evaluate(audience, AccountFacts(fields={"tier": 1}, opportunities=_facts(big).opportunities), NOW)
    missing_stage = OpportunityMatch(FieldMatch("stage", "ne", "Closed Lost"))
    assert evaluate(missing_stage, _facts((None, None, None, 1)), NOW)  # ne: a missing stage is not "Closed Lost"
