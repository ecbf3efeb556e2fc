"""The example playbooks validate, cover the language, and survive a JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playbooks import Playbook, load
from playbooks.model import STEP_KINDS
from playbooks.workspace import Workspace

EXAMPLES = sorted((Path(__file__).parents[2] / "playbooks" / "examples").glob("*.yaml"))


def _load(path: Path) -> Playbook:
    result = load(path.read_text(encoding="utf-8"), path.name, Workspace.default())
    assert result.errors == [], "\n".join(str(error) for error in result.errors)
    return result.playbook


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_validates_and_round_trips(path):
    playbook = _load(path)
    stored = json.loads(json.dumps(playbook.to_dict()))
    assert Playbook.from_dict(stored) == playbook
    assert playbook.key == path.stem


def test_examples_cover_every_step_kind_trigger_and_audience():
    playbooks = [_load(path) for path in EXAMPLES]
    assert len(playbooks) >= 4
    kinds = {step.kind for playbook in playbooks for step in playbook.steps}
    assert kinds == set(STEP_KINDS)
    triggers = {playbook.trigger.on for playbook in playbooks if playbook.trigger}
    assert triggers == {"stage_changed", "score_crossed", "activity"}
    assert any(playbook.audience for playbook in playbooks)
    connectors = {getattr(step, "connector", None) for playbook in playbooks for step in playbook.steps}
    assert connectors - {None} <= {"outbox", "log"}


def test_examples_only_name_templates_that_exist():
    templates_dir = Path(__file__).parents[2] / "templates" / "email"
    for path in EXAMPLES:
        for step in _load(path).steps:
            if getattr(step, "template", None):
                assert (templates_dir / step.template).is_file()
