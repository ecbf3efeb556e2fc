"""Engagement commands: ad report import, the drain, score recompute and snapshots."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import with_appcontext

from abm.services import ad_reports, events, matching, scores


@click.group("engagement", help="Engagement events and account scores.")
def engagement_group():
    pass


@engagement_group.command("import-ads", help="Import an ad-platform company engagement report (CSV) as account events.")
@click.argument("file", type=click.File("rb"))
@click.option("--source", default="linkedin", show_default=True, help="The ad platform the report comes from.")
@with_appcontext
def import_ads(file, source):
    result = ad_reports.import_report(file, source=source)
    click.echo(f"{result.rows} rows: {result.events} events stored, {result.duplicates} already known, "
               f"{result.unmatched} kept for accounts that do not exist yet")
    for err in result.errors:
        where = f"row {err['row']}" + (f", column {err['column']}" if err.get("column") else "")
        click.echo(f"{file.name}: {where}: {err['message']}", err=True)
    sys.exit(1 if result.errors else 0)


@engagement_group.command("drain", help="Write queued events to the database now (the workers do it every few seconds).")
@with_appcontext
def drain():
    total = events.drain(max_batches=10_000)
    click.echo(json.dumps(total.as_dict()))


@engagement_group.command("recompute", help="Re-score every account from all its events with the settings in force.")
@with_appcontext
def recompute():
    n = scores.recompute()
    click.echo(f"re-scored; {n} accounts have engagement")


@engagement_group.command("snapshot", help="Record today's score of every account (for trends).")
@with_appcontext
def snapshot():
    click.echo(f"{scores.snapshot()} account scores recorded")


@engagement_group.command("match", help="Match kept events to contacts and accounts that appeared since.")
@with_appcontext
def match():
    click.echo(f"{matching.match_pending()} events matched")


commands = [engagement_group]
