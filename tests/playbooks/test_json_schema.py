"""The JSON Schema of the playbook language against the validator: every example
validates against it, and it rejects the broken playbooks whose mistakes are of shape
(unknown or missing keys, wrong types, bad patterns); the rest of the corpus (unknown
connectors, stages, templates, jumps) needs the workspace or the whole file, which only
the validator has (``abm playbook validate``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from playbooks import json_schema, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "playbooks" / "examples").glob("*.yaml"))
BROKEN = ROOT / "tests" / "playbooks" / "broken"
#: Broken playbooks whose errors are all of shape: the schema must reject each.
#: The broken playbooks only the validator refuses: their mistakes need the workspace
#: (connectors, stages, roles, templates) or the whole file (jumps to known later ids).
ONLY_THE_VALIDATOR = {"connectors", "jumps", "stages-roles", "templates", "trigger-activity"}
SHAPE_ERRORS = sorted(p.stem for p in BROKEN.glob("*.yaml")
                      if p.stem not in ONLY_THE_VALIDATOR and not p.stem.startswith("yaml-"))


def _data(path: Path):
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def test_the_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(json_schema.build())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_validates_against_the_schema(path):
    assert not load(path.read_text(encoding="utf-8")).errors
    errors = list(Draft202012Validator(json_schema.build()).iter_errors(_data(path)))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("name", SHAPE_ERRORS)
def test_the_schema_rejects_what_the_validator_rejects_for_its_shape(name):
    path = BROKEN / f"{name}.yaml"
    assert load(path.read_text(encoding="utf-8")).errors  # the validator rejects it
    data = _data(path)
    assert list(Draft202012Validator(json_schema.build()).iter_errors(data)), name


@pytest.mark.parametrize("name", sorted(ONLY_THE_VALIDATOR))
def test_what_the_schema_lets_through_the_validator_refuses(name):
    path = BROKEN / f"{name}.yaml"
    assert not list(Draft202012Validator(json_schema.build()).iter_errors(_data(path)))
    assert load(path.read_text(encoding="utf-8")).errors
