"""The JSON Schema of the playbook language against the validator: every example
validates against it, and it rejects the broken playbooks whose mistakes are of shape
(unknown or missing keys, wrong types, bad patterns); the rest of the corpus (unknown
connectors, stages, templates, jumps) needs the workspace or the whole file, which only
the validator has (``abm playbook validate``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from playbooks import json_schema, load
from playbooks.loader import _TRIGGERS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "playbooks" / "examples").glob("*.yaml"))
BROKEN = ROOT / "tests" / "playbooks" / "broken"
#: Broken playbooks whose errors are all of shape: the schema must reject each.
#: The broken playbooks only the validator refuses: their mistakes need the workspace
#: (connectors, stages, roles, templates) or the whole file (jumps to known later ids).
ONLY_THE_VALIDATOR = {"connectors", "jumps", "stages-roles", "templates"}
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


def _schema_paths(data) -> set[str]:
    """Where the schema's errors are, as the validator's dotted paths (``trigger.type``); an
    unknown key is where it is written (``trigger.below``)."""
    paths = set()
    for error in Draft202012Validator(json_schema.build()).iter_errors(data):
        path = ""
        for part in error.absolute_path:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
        if error.validator == "additionalProperties":  # reported on the mapping: name the key, as the validator
            paths.update(f"{path}.{key}" for key in error.instance if key not in error.schema["properties"])
        else:
            paths.add(path)
    return paths


@pytest.mark.parametrize("name", ["trigger-activity", "trigger-forms", "trigger-unknown"])
def test_the_schema_rejects_a_broken_trigger_where_the_validator_does(name):
    path = BROKEN / f"{name}.yaml"
    errors = load(path.read_text(encoding="utf-8")).errors
    assert errors
    assert _schema_paths(_data(path)) == {error.path for error in errors}


def test_every_trigger_field_is_typed():
    trigger = json_schema.build()["properties"]["trigger"]
    assert trigger["properties"]["on"]["enum"] == list(_TRIGGERS)
    for form in trigger["allOf"]:
        assert all(schema for schema in form["then"]["properties"].values())  # none is {} (anything)


@pytest.mark.parametrize("trigger, where", [
    ({"on": "activity", "type": [], "within": "3d"}, "trigger.type"),
    ({"on": "activity", "type": ["  "]}, "trigger.type[0]"),
    ({"on": "activity", "within": "0d"}, "trigger.within"),
    ({"on": "activity", "within": "3 d"}, "trigger.within"),
    ({"on": "stage_changed", "to": []}, "trigger.to"),
    ({"on": "stage_changed", "to": "opportunity", "from": 3}, "trigger.from"),
    ({"on": "stage_changed"}, "trigger"),
    ({"on": "score_crossed", "above": True}, "trigger.above"),
    ({"on": "score_crossed", "above": 40, "type": "x"}, "trigger.type"),
    ({"on": "crossed"}, "trigger.on"),
])
def test_the_schema_types_each_trigger_field(trigger, where):
    data = {"version": 1, "key": "t-key", "name": "T", "trigger": trigger, "steps": [{"wait": "1d"}]}
    assert _schema_paths(data) == {where}
    assert load(json.dumps(data)).errors  # JSON is YAML: the validator refuses it too
