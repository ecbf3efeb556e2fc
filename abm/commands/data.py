"""Data commands: CSV imports with a row-level report, and generated demo data."""

from __future__ import annotations

import contextlib
import json
import os
import sys

import click
from flask.cli import with_appcontext

from abm.services import imports, seed


def _on_terminal() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def _bar(length: int, label: str):
    """A progress callback taking a running total: a bar on a terminal, nothing in a pipe."""
    if not _on_terminal() or not length:
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        def update(done: int) -> None:
            bar.update(max(0, min(done, length) - bar.pos))

        yield update


def _print_report(name: str, kind: str, report: dict) -> None:
    click.echo(f"{name}: {report['rows']} rows: {report['created']} {kind} created, {report['updated']} updated, "
               f"{report.get('unchanged', 0)} unchanged, "
               f"{report['skipped']} skipped, {report['rejected']} rejected")
    if report.get("unlinked"):
        click.echo(f"{name}: {report['unlinked']} new contacts have no account (free-mail address or no "
                   "account with their domain)")
    if report["attribute_columns"]:
        kept = ", ".join(f"{h!r} -> attributes.{k}" for h, k in report["attribute_columns"].items())
        click.echo(f"{name}: columns kept as attributes: {kept}")
    for s in report["skipped_rows"]:
        click.echo(f"{name}:{s['row']}: {s['column']}: skipped: {s['reason']}")
    for e in report["errors"]:
        click.echo(f"{name}:{e['row']}: {e['column']}: {e['message']}", err=True)
    if report.get("errors_not_listed"):
        click.echo(f"{name}: ... and {report['errors_not_listed']} more errors", err=True)


def _run_import(kind: str, file, as_json: bool) -> None:
    run = imports.import_accounts if kind == "accounts" else imports.import_contacts
    try:
        size = os.fstat(file.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        size = 0
    with _bar(size, f"importing {kind}") as progress:
        try:
            report = run(file, progress=progress, tune_interpreter=True).to_dict()  # a process of its own
        except imports.ImportFileError as exc:
            raise click.ClickException(f"{file.name}: {exc}") from None
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_report(file.name, kind, report)
    sys.exit(1 if report["errors_total"] else 0)


@click.group("import", help="Import accounts or contacts from CSV files (HubSpot and Salesforce exports "
                            "read as they are). Exit status 1 when rows were rejected or cells not read.")
def import_group():
    pass


@import_group.command("accounts", help="Import accounts from a CSV file; upserts by domain.")
@click.argument("file", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_appcontext
def import_accounts_cmd(file, as_json):
    _run_import("accounts", file, as_json)


@import_group.command("contacts", help="Import contacts from a CSV file; upserts by email and links each "
                                        "to the account of its account-domain column or email's domain.")
@click.argument("file", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_appcontext
def import_contacts_cmd(file, as_json):
    _run_import("contacts", file, as_json)


@click.command("seed", help="Generate realistic, deterministic demo data: accounts with contacts, owners, "
                            "stage histories and opportunities (the same --seed gives the same data).")
@click.option("--accounts", "n_accounts", type=click.IntRange(min=1), required=True, help="How many accounts.")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Random seed.")
@with_appcontext
def seed_cmd(n_accounts, seed_value):
    with _bar(n_accounts, "seeding accounts") as progress:
        try:
            counts = seed.seed(n_accounts, seed=seed_value, progress=progress)
        except seed.SeedError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(", ".join(f"{n} {what}" for what, n in counts.items()))


commands = [import_group, seed_cmd]
