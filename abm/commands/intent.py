"""Intent commands: import a third-party Company Surge file as intent events."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from abm.services import intent


@click.group("intent", help="Third-party intent data (Bombora Company Surge files; G2 arrives by webhook).")
def intent_group():
    pass


@intent_group.command("import-surge", help="Import a Company Surge CSV (domain, company name, topic, "
                                           "composite score, week) as intent events.")
@click.argument("file", type=click.File("rb"))
@click.option("--provider", default="bombora", show_default=True, help="Who delivered the file.")
@with_appcontext
def import_surge(file, provider):
    try:
        result = intent.import_surge(file, provider=provider)
    except intent.SurgeFileError as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None
    click.echo(f"{file.name}: {result.rows} rows: {result.events} intent events stored, {result.duplicates} "
               f"already known, {result.unmatched} kept for accounts that do not exist yet")
    for err in result.errors[:50]:
        click.echo(f"{file.name}: row {err['row']}, column {err['column']}: {err['message']}", err=True)
    sys.exit(1 if result.errors else 0)


commands = [intent_group]
