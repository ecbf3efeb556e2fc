"""The loader's happy path and the checks the broken corpus does not spell out."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from playbooks import (
    AlertStep,
    BranchStep,
    Cap,
    EmailStep,
    Playbook,
    PlaybookError,
    SendWindow,
    WaitStep,
    Workspace,
    load,
    load_file,
)
from playbooks.conditions import FieldMatch, Or
from tests.playbooks.conftest import corpus_workspace

MINIMAL = """version: 1
key: minimal
name: Minimal
audience:
  where: {tier: 1}
steps:
  - wait: 1d
"""


def spec_example() -> str:
    """The complete example of the spec (playbooks.md), copied verbatim."""
    return (Path(__file__).parent / "spec_example.yaml").read_text()


def test_the_spec_example_loads_and_compiles():
    workspace = corpus_workspace()
    workspace.template_loader = lambda name: "<p>Hi {{ contact.first_name or 'there' }}</p>" if name == "intro.html" else None
    result = load(spec_example(), "tier1.yaml", workspace)
    assert result.errors == []
    playbook = result.playbook
    assert playbook.key == "tier1-security-expansion" and playbook.priority == 70
    assert playbook.holdout == 10.0 and playbook.reenroll is None
    assert playbook.exit_when == Or((FieldMatch("stage", "in", ("opportunity", "customer", "lost")),
                                     FieldMatch("score", "gte", 80)))
    assert playbook.send_window == SendWindow("America/New_York", ("mon", "tue", "wed", "thu", "fri"), 540, 1020)
    assert [step.id for step in playbook.steps] == [
        "intro", "step-2", "linkedin", "engaged", "tell-ae", "step-6", "step-7", "nurture"]
    intro = playbook.steps[0]
    assert isinstance(intro, EmailStep)
    assert intro.to.roles == ("decision_maker", "champion") and intro.to.limit == 3
    assert intro.template == "intro.html" and intro.body.startswith("<p>Hi")
    assert intro.connector == "outbox"  # the workspace default for email
    assert playbook.steps[2].connector == "linkedin-ads"
    assert isinstance(playbook.steps[1], WaitStep) and playbook.steps[1].duration == timedelta(days=3)
    assert playbook.steps[3].on_timeout == "nurture" and playbook.steps[3].timeout == timedelta(days=14)
    assert isinstance(playbook.steps[4], AlertStep) and playbook.steps[4].connector == "slack"
    assert Playbook.from_dict(json.loads(json.dumps(playbook.to_dict()))) == playbook


def test_the_spec_error_examples_are_reproduced_exactly():
    workspace = corpus_workspace()
    workspace.template_loader = lambda name: "<p>Hi</p>"
    source = spec_example().replace("roles: [decision_maker, champion]", "roles: [decision-maker, champion]")
    errors = [str(error) for error in load(source, "tier1.yaml", workspace).errors]
    assert len(errors) == 1
    assert re.fullmatch(r"tier1\.yaml:\d+:\d+ steps\[0\]\.email\.to\.roles\[0\]: unknown role 'decision-maker'; "
                        r"did you mean 'decision_maker'\?", errors[0])
    line = errors[0].split(":")[1]
    assert source.splitlines()[int(line) - 1].strip().startswith("to: {roles: [decision-maker")


def test_error_string_format_and_dict():
    error = PlaybookError("tier1.yaml", 14, 18, "steps[0].email.to.roles[0]", "unknown role 'x'")
    assert str(error) == "tier1.yaml:14:18 steps[0].email.to.roles[0]: unknown role 'x'"
    assert error.to_dict() == {"file": "tier1.yaml", "line": 14, "column": 18,
                               "path": "steps[0].email.to.roles[0]", "message": "unknown role 'x'"}


def test_minimal_playbook_defaults():
    result = load(MINIMAL)
    assert result.ok
    playbook = result.playbook
    assert (playbook.priority, playbook.holdout, playbook.reenroll) == (50, 0.0, None)
    assert playbook.send_window is None and playbook.caps == () and playbook.trigger is None
    assert playbook.steps[0].id == "step-1" and playbook.steps[0].index == 0


def test_every_error_is_reported_at_once_across_sections():
    source = MINIMAL.replace("tier: 1", "tier: one").replace("wait: 1d", "wait: soon") + "priority: 500\n"
    errors = load(source, "x.yaml").errors
    assert [error.path for error in errors] == ["audience.where.tier", "steps[0].wait", "priority"]
    assert all(error.file == "x.yaml" for error in errors)


def test_send_window_defaults_to_workspace_timezone_all_days_whole_day():
    source = MINIMAL + "send_window: {hours: \"08:00-24:00\"}\n"
    playbook = load(source, workspace=Workspace.default(default_timezone="Asia/Tokyo")).playbook
    assert playbook.send_window == SendWindow("Asia/Tokyo", ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), 480, 1440)


def test_caps_take_the_workspace_form_and_the_list_form():
    workspace_form = load(MINIMAL + "caps: {contact: {max: 1, per: 5d}}\n").playbook
    assert workspace_form.caps == (Cap("contact", 1, timedelta(days=5), "email"),)
    list_form = load(MINIMAL + "caps: [{per: account, max: 3, within: 2w, channel: ads}, "
                               "{per: contact, max: 5, within: 30d}]\n").playbook
    assert list_form.caps == (Cap("account", 3, timedelta(weeks=2), "ads"), Cap("contact", 5, timedelta(days=30)))


def test_percent_and_reenroll_forms():
    playbook = load(MINIMAL + "holdout: 12.5%\nreenroll: 90d\n").playbook
    assert playbook.holdout == 12.5 and playbook.reenroll == timedelta(days=90)
    assert load(MINIMAL + "holdout: 50%\n").ok
    assert not load(MINIMAL + "holdout: 50.5%\n").ok


def test_stages_and_roles_come_from_the_workspace():
    workspace = Workspace.default(stages=["lead", "client"], roles=["buyer"])
    source = MINIMAL.replace("- wait: 1d", "- set_stage: client\n  - email: {to: {roles: [buyer]}, subject: s, body: b}")
    assert load(source, workspace=workspace).ok
    errors = load(source.replace("client", "clients"), workspace=workspace).errors
    assert [error.message for error in errors] == ["unknown stage 'clients'; did you mean 'client'?"]
    errors = load(source.replace("client", "customer"), workspace=workspace).errors
    assert [error.message for error in errors] == ["unknown stage 'customer' (stages: lead, client)"]


def test_connector_must_exist_and_serve_the_channel():
    workspace = Workspace.default(connectors={"slack": ("alert",)}, default_connectors={})
    source = MINIMAL.replace("- wait: 1d", "- alert: {to: owner, message: hi}")
    errors = load(source, workspace=workspace).errors
    assert [error.message for error in errors] == [
        "no connector given and the workspace has no default connector for channel 'alert'; "
        "name one with 'connector:'"]
    assert load(source.replace("message: hi", "message: hi, connector: slack"), workspace=workspace).ok


def test_template_loader_failure_is_a_located_error():
    def broken_loader(name):
        raise OSError("disk on fire")

    source = MINIMAL.replace("- wait: 1d", "- email: {to: owner, subject: s, template: intro.html}")
    errors = load(source, "f.yaml", Workspace.default(template_loader=broken_loader)).errors
    assert [str(error) for error in errors] == [
        "f.yaml:7:46 steps[0].email.template: template file 'intro.html' could not be read: disk on fire"]


def test_anchors_and_merge_keys_are_understood():
    source = """version: 1
key: anchors
name: Anchors
audience:
  where: &big {tier: 1, employees: {gte: 1000}}
exit_when:
  not: *big
steps:
  - &ping
    alert: {to: owner, message: ping}
  - wait: 1d
  - branch: {if: {<<: *big, stage: target}, then: last}
  - id: last
    alert: {to: owner, message: done}
"""
    result = load(source)
    assert result.errors == []
    branch = result.playbook.steps[2]
    assert isinstance(branch, BranchStep) and branch.then == "last"


def test_titles_are_kept_as_given_and_jumps_resolve():
    source = MINIMAL.replace("- wait: 1d", """- email: {to: {titles: ["^vp\\\\b", CISO]}, subject: s, body: b}
  - branch: {if: {score: {gt: 1}}, then: end, else: step-3}
  - wait: 1d
  - id: end
    exit: true""")
    result = load(source)
    assert result.errors == []
    assert result.playbook.steps[0].to.titles == ("^vp\\b", "CISO")
    assert result.playbook.steps[1].else_ == "step-3"


def test_non_text_input_is_an_error_not_a_crash():
    result = load(b"version: 1")  # type: ignore[arg-type]
    assert result.playbook is None and result.errors[0].path == "yaml"


def test_alias_bombs_are_refused_quickly():
    items = ["&c0 {tier: 1}"] + [f"&c{i} {{any: [" + ", ".join([f"*c{i - 1}"] * 10) + "]}" for i in range(1, 10)]
    source = "version: 1\nkey: bomb\nname: Bomb\naudience:\n  where:\n    any:\n" + "\n".join(
        "      - " + item for item in items) + "\nsteps:\n  - wait: 1d\n"
    errors = [str(error) for error in load(source, "bomb.yaml").errors]
    assert errors == ["bomb.yaml:1:1 playbook: the document expands to more than 5,000 values "
                      "(through anchors and aliases?); a playbook is far smaller"]


def test_load_file_names_the_path_and_locates_encoding_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL, encoding="utf-8")
    assert load_file(good).ok
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(MINIMAL.replace("Minimal", "Caf\xe9").encode("latin-1"))
    errors = [str(error) for error in load_file(bad).errors]
    assert errors == [f"{bad}:3:10 yaml: the file is not UTF-8 text; save it as UTF-8"]
    missing = load_file(tmp_path / "nope.yaml")
    assert missing.errors[0].message == "cannot read the file: No such file or directory"


def test_a_touch_step_overrides_the_playbooks_on_cap_and_max_delay():
    source = MINIMAL.replace("  - wait: 1d\n", """  - id: hello
    on_cap: defer
    max_delay: 2d
    alert: {to: owner, message: hi}
  - alert: {to: owner, message: again}
""") + "on_cap: skip\nmax_delay: 10d\n"
    result = load(source)
    assert result.ok, result.errors
    playbook = result.playbook
    first, second = playbook.steps
    assert playbook.cap_policy(first) == ("defer", timedelta(days=2))
    assert playbook.cap_policy(second) == ("skip", timedelta(days=10))  # the playbook's
    assert Playbook.from_dict(json.loads(json.dumps(playbook.to_dict()))) == playbook


def test_on_cap_on_a_step_that_makes_no_touch_is_a_located_error():
    errors = load(MINIMAL.replace("  - wait: 1d\n", "  - wait: 1d\n    on_cap: skip\n")).errors
    assert [(e.path, e.message) for e in errors] == [
        ("steps[0].on_cap", "'on_cap' applies to steps that make touches (email, audience, alert, task, webhook), "
                            "not to a wait step")]
    errors = load(MINIMAL.replace("  - wait: 1d\n", "  - id: x\n    on_cap: later\n    webhook: {payload: {}}\n")).errors
    assert "steps[0].on_cap" in [e.path for e in errors]
