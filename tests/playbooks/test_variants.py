"""A/B variants of an email step: the language, the stable weighted assignment, and the
step each variant sends."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import jsonschema
import pytest
from ruamel.yaml import YAML

from playbooks import Playbook, load
from playbooks.json_schema import build
from playbooks.variants import Variant, apply, assign, contact_bucket, shares
from tests.playbooks.conftest import corpus_workspace

SOURCE = """version: 1
key: ab-test
name: A/B test
audience:
  where: {tier: 1}
steps:
  - id: intro
    email:
      to: {roles: [champion]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p>"
      text: "Hi {{ contact.first_name }}"
      variants:
        - name: control
          weight: 70
        - name: short
          weight: 30
          subject: "{{ account.name }}?"
          from: "Dana Reyes <dana@example.com>"
        - name: file
          template: security-intro.html
"""


def _load(source: str = SOURCE, workspace=None):
    return load(source, "ab.yaml", workspace or corpus_workspace())


def test_an_email_step_with_variants_validates_and_round_trips():
    result = _load()
    assert result.errors == []
    step = result.playbook.steps[0]
    assert [(v.name, v.weight) for v in step.variants] == [("control", 70), ("short", 30), ("file", 1)]
    assert step.variants[1].overrides == ("subject", "from")
    assert step.variants[2].template == "security-intro.html" and "<" in step.variants[2].body
    stored = json.loads(json.dumps(result.playbook.to_dict()))
    assert Playbook.from_dict(stored) == result.playbook


def test_a_step_without_variants_stores_as_before():
    """A version stored before variants existed compares equal to the same step now."""
    result = _load(SOURCE.split("      variants:")[0])
    assert "variants" not in result.playbook.to_dict()["steps"][0]


def test_the_json_schema_accepts_variants_and_refuses_a_zero_weight():
    data = YAML(typ="safe").load(SOURCE)
    jsonschema.validate(data, build())
    data["steps"][0]["email"]["variants"][0]["weight"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, build())
    data["steps"][0]["email"]["variants"] = [{"name": "alone"}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, build())


def test_a_variant_sends_its_own_fields_and_the_step_s_for_the_rest():
    step = _load().playbook.steps[0]
    control, short, from_file = (apply(step, v) for v in step.variants)
    assert (control.subject, control.body, control.text, control.sender) == (
        step.subject, step.body, step.text, step.sender)
    assert (short.subject, short.body, short.text, short.sender) == (
        "{{ account.name }}?", step.body, step.text, "Dana Reyes <dana@example.com>")
    # A new body brings no text of the step's: the text part is derived from the new HTML.
    assert (from_file.template, from_file.text, from_file.subject) == ("security-intro.html", None, step.subject)
    assert all(s.variants == () for s in (control, short, from_file))


VARIANTS = (Variant("a", 70), Variant("b", 20), Variant("c", 10))


def test_assignment_follows_the_weights_within_tolerance_on_many_contacts():
    n = 20_000
    counts = Counter(assign("ab-test", "intro", contact_id, VARIANTS).name for contact_id in range(1, n + 1))
    for name, share in shares(VARIANTS).items():
        # 4 standard deviations of a binomial share: fails by chance about once in 15,000 runs,
        # and the assignment is deterministic, so never at random.
        sd = (share * (1 - share) / n) ** 0.5
        assert abs(counts[name] / n - share) < 4 * sd, (name, counts[name])


def test_assignment_is_stable_and_independent_of_the_order_contacts_come_in():
    first = {cid: assign("ab-test", "intro", cid, VARIANTS).name for cid in range(500)}
    again = {cid: assign("ab-test", "intro", cid, VARIANTS).name for cid in reversed(range(500))}
    assert first == again
    # The bucket is SHA-256 of "key:step:contact", the holdout's rule: recomputed by hand here.

    digest = hashlib.sha256(b"ab-test:intro:42").digest()
    assert contact_bucket("ab-test", "intro", 42) == int.from_bytes(digest[:8], "big") / 2**64 * 100


def test_another_step_or_playbook_draws_independently():
    one = [assign("ab-test", "intro", cid, VARIANTS[:2]).name for cid in range(4000)]
    other = [assign("ab-test", "follow-up", cid, VARIANTS[:2]).name for cid in range(4000)]
    same = sum(x == y for x, y in zip(one, other, strict=True)) / 4000
    expected = sum(share ** 2 for share in shares(VARIANTS[:2]).values())  # 0.65 if independent; 1.0 if not
    assert abs(same - expected) < 0.04


def test_raising_a_weight_moves_only_contacts_towards_that_variant():
    before = {cid: assign("k", "s", cid, (Variant("a", 50), Variant("b", 50))).name for cid in range(3000)}
    after = {cid: assign("k", "s", cid, (Variant("a", 60), Variant("b", 40))).name for cid in range(3000)}
    moved = [cid for cid in before if before[cid] != after[cid]]
    assert all(before[cid] == "b" and after[cid] == "a" for cid in moved)
    assert 0.06 < len(moved) / 3000 < 0.14
