"""``abm playbook validate|plan|apply|activate|pause|resume|archive`` and ``abm scheduler``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from abm.errors import ApiError
from abm.services import change_control, playbooks
from abm.services import connectors as connector_service
from playbooks import json_schema
from workers.scheduler import run as run_scheduler


@click.group("playbook", help="Playbooks: validate, plan (dry run), apply a new version, and the life cycle.")
def playbook_group():
    pass


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{path}: not a UTF-8 text file; save the playbook as UTF-8") from None
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read the file ({exc.strerror})") from None


def _print_errors(errors) -> None:
    for error in errors:
        click.echo(str(error))


@playbook_group.command("schema", help="Print the JSON Schema of the playbook language (for editors; also at "
                        "/api/v1/playbook-schema.json; its $id is that URL under ABM_BASE_URL).")
@with_appcontext
def schema():
    click.echo(json.dumps(json_schema.build(current_app.config["BASE_URL"]), indent=2))


@playbook_group.command("validate", help="Check playbook files; errors as FILE:LINE:COL PATH: MESSAGE.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@with_appcontext
def validate(files):
    failed = False
    if not connector_service.channels_by_name():
        click.echo("no connector is configured yet: connector names are checked against the stand-ins "
                   "'log' (every channel) and 'outbox' (email); add connectors before `abm playbook apply` "
                   "(docs/connectors.md)", err=True)
    for path in files:
        result = playbooks.validate(_read(path), filename=path, stand_ins=True)
        if result.errors:
            failed = True
            _print_errors(result.errors)
        else:
            click.echo(f"{path}: ok ({result.playbook.key}, {len(result.playbook.steps)} steps)", err=True)
    sys.exit(1 if failed else 0)


@playbook_group.command("plan", help="The dry run: the engine simulated over the real audience, caps, send windows "
                        "and branches, without sending: the audience funnel, what each step would send, postpone "
                        "and suppress, and a rendered sample of each touch.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--account", help="Also show this account's schedule (id or domain).")
@click.option("--contact", help="Also show this contact's schedule (email).")
@click.option("--migrate", "move", is_flag=True, help="With the running enrollments moved to this version "
              "(as apply --migrate would): the mapping, and their touches counted.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@with_appcontext
def plan(file, account, contact, move, as_json):
    try:
        result = playbooks.plan(_read(file), filename=file, account=account, contact=contact, migrate=move)
    except playbooks.PlaybookInvalid as exc:
        _print_errors(exc.errors)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    click.echo(f"{result['key']}: {result['name']} (simulated from {result['now']} to {result['simulated_until']})")
    simulated = "" if result["simulated"] == result["entering"] else f" (simulated: {result['simulated']})"
    click.echo(f"  accounts entering: {result['entering']}{simulated}, held out: {result['held_out']}")
    _echo_funnel(result["funnel"])
    if result["migration"] is not None:
        click.echo(f"  running enrollments moving to this version: {result['moving']}")
        _echo_mapping(result["migration"])
    for account_row in result["sample"]:
        click.echo(f"    e.g. {account_row['name']} ({account_row['domain']})")
    click.echo("  steps:")
    for step in result["steps"]:
        _echo_step(step)
    if result["channels"]:
        click.echo("  touches by channel: " + ", ".join(f"{k} {v}" for k, v in sorted(result["channels"].items())))
    click.echo("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(result["outcomes"].items())))
    if result["schedule"] is not None:
        _echo_schedule(result["schedule"])
    for sample in result["rendered"]:
        _echo_rendered(sample)
    for warning in result["warnings"]:
        click.echo(f"  warning: {warning}")
    click.echo("  assuming: " + "; ".join(result["assumptions"]))


def _echo_funnel(steps) -> None:
    if steps:
        click.echo("  audience funnel:")
    for step in steps:
        click.echo(f"    {step['kept']:>8}  {step['label']}")


def _echo_step(step) -> None:
    line = f"    {step['id']:<20} {step['kind']:<11} {step['after']}, reached by {step['reached']}"
    if "touches" in step:
        line += f", {step['touches']} touch(es)"
    if "timeout" in step:
        line += f", times out {step['timeout']}"
    if step.get("skipped"):
        line += f", skipped {step['skipped']} (when false)"
    if step["depends_on_engagement"]:
        line += " [depends on engagement]"
    click.echo(line)
    for label in ("postponed", "suppressed", "failed"):
        for reason, n in sorted((step.get(label) or {}).items()):
            click.echo(f"      {label} {n}: {reason}")
    for variant in step.get("variants") or ():
        click.echo(f"      variant {variant['name']} ({variant['share']:.0%} by weight): {variant['touches']} touch(es)"
                   + (f", {variant['suppressed']} suppressed" if variant["suppressed"] else ""))


def _echo_schedule(schedule) -> None:
    who = schedule.get("account") or schedule.get("contact")
    if not schedule["found"]:
        click.echo(f"  schedule of {who}: not found")
        return
    click.echo(f"  schedule of {who}:" + ("" if schedule["touches"] else " no touch"))
    for touch in schedule["touches"]:
        reason = f" ({touch['reason']})" if touch["reason"] else ""
        click.echo(f"    {touch['at']}  {touch['step']:<16} {touch['channel']:<8} {touch['expected']}"
                   f"{' to ' + touch['contact'] if touch['contact'] else ''}{reason}")


def _echo_rendered(sample) -> None:
    variant = f" variant {sample['variant']}" if sample.get("variant") else ""
    click.echo(f"  rendered {sample['step']}{variant}:")
    if sample.get("error"):
        click.echo(f"    error: {sample['error']}")
        return
    if sample.get("rendered") is None:
        click.echo(f"    ({sample.get('note')})")
        return
    click.echo(f"    for {sample.get('contact') or sample.get('account')}:")
    for key, value in sample["rendered"].items():
        if key in ("headers", "html"):
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        click.echo(f"      {key}: {text.strip()[:300]}")


@playbook_group.command("apply", help="Validate and store a new version of the playbook. With --migrate, the "
                        "running enrollments move to it by step id (see the mapping first with plan --migrate).")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--migrate", "move", is_flag=True, help="Move the running enrollments to the new version.")
@with_appcontext
def apply(file, move):
    try:
        row, version = playbooks.apply(_read(file), filename=file)
    except playbooks.PlaybookInvalid as exc:
        _print_errors(exc.errors)
        sys.exit(1)
    click.echo(f"{row.key}: version {version} stored (status {row.status})")
    if move:
        _echo_migration(playbooks.migrate(row.key))


@playbook_group.command("migrate", help="Move the running enrollments on older versions to the current version, "
                        "by step id.")
@click.argument("key")
@with_appcontext
def migrate(key):
    try:
        _echo_migration(playbooks.migrate(key))
    except ApiError as exc:
        raise click.ClickException(exc.message) from None


def _echo_migration(result: dict) -> None:
    click.echo(f"{result['key']}: {result['moved']} running enrollment(s) moved to version {result['version']}")
    _echo_mapping(result["mapping"])


def _echo_mapping(mapping) -> None:
    for group in mapping:
        click.echo(f"    {group['enrollments']:>6} {group['state']:<8} v{group['version']} {group['step'] or '(end)'}"
                   f" -> {group['to'] or '(end: they complete)'}")


@playbook_group.command("diff", help="What changed between two versions: the settings and steps added, removed, "
                        "changed or moved, then the YAML as a unified diff.")
@click.argument("key")
@click.argument("old", type=int)
@click.argument("new", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@with_appcontext
def diff(key, old, new, as_json):
    try:
        result = change_control.diff(key, old, new)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{key}: version {result['from']} -> {result['to']}")
    click.echo("  settings changed: " + (", ".join(result["settings"]) or "none"))
    steps = result["steps"]
    for label in ("added", "removed", "moved"):
        click.echo(f"  steps {label}: " + (", ".join(steps[label]) or "none"))
    for change in steps["changed"]:
        click.echo(f"  step {change['id']} changed: {', '.join(change['fields'])}")
    for line in result["yaml"]:
        click.echo(line)


@playbook_group.command("clone", help="Store the current version of a playbook as a new draft under another key.")
@click.argument("key")
@click.argument("new_key")
@click.option("--name", help="The new playbook's name (default: NAME (copy)).")
@with_appcontext
def clone(key, new_key, name):
    try:
        row, version = change_control.clone(key, new_key, name)
    except playbooks.PlaybookInvalid as exc:
        _print_errors(exc.errors)
        sys.exit(1)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{row.key}: version {version} stored as a copy of {key} (status {row.status})")


@playbook_group.command("test-send", help="Send a test of an email step to an address, rendered for a chosen "
                        "account and contact, through the step's connector (by a worker). It is no touch.")
@click.argument("key")
@click.argument("step")
@click.option("--to", "to", required=True, help="Where the test goes (your own address).")
@click.option("--account", required=True, help="The account to render it for (id or domain).")
@click.option("--contact", help="The contact to render it for (email; default: the first the step picks).")
@click.option("--variant", help="The A/B variant to send (default: the one the contact is assigned).")
@with_appcontext
def test_send(key, step, to, account, contact, variant):
    try:
        result = change_control.test_send(key, step, to, account, contact, variant=variant)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"queued: {result['subject']!r} to {result['to']} (rendered for {result['contact']} at "
               f"{result['account']}); job {result['job']}")


def _life_cycle(name: str):
    @click.argument("key")
    @with_appcontext
    def command(key):
        try:
            result = getattr(playbooks, name)(key)
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        _echo_life_cycle(key, result)

    command.__name__ = name
    return command


@playbook_group.command("activate", help="Start the playbook: enrolls its audience now. A playbook whose audience "
                        "would enroll no account is refused, with the audience funnel, unless --allow-empty.")
@click.argument("key")
@click.option("--allow-empty", is_flag=True, help="Activate even when no account would enter now.")
@with_appcontext
def activate(key, allow_empty):
    try:
        result = playbooks.activate(key, allow_empty=allow_empty)
    except playbooks.EmptyAudience as exc:
        _echo_funnel(exc.funnel)
        raise click.ClickException(exc.message) from None
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    _echo_life_cycle(key, result)


def _echo_life_cycle(key: str, result: dict) -> None:
    details = ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("key", "status"))
    click.echo(f"{key}: {result['status']}" + (f" ({details})" if details else ""))


for _name, _help in (("pause", "Stop every touch of the playbook at once (nothing queued is sent)."),
                     ("resume", "Go on where each enrollment was."),
                     ("archive", "End the playbook: running enrollments exit, unsent touches are skipped.")):
    playbook_group.command(_name, help=_help)(_life_cycle(_name))


@click.command("scheduler", help="Run the periodic jobs: dispatcher, sweeps, recovery, event drain.")
@with_appcontext
def scheduler():
    run_scheduler(current_app._get_current_object())


commands = [playbook_group, scheduler]
