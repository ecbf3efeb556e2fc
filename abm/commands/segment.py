"""``abm segment save|list|members|delete``: saved, named account audiences."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import with_appcontext

from abm.errors import ApiError
from abm.services import segments


@click.group("segment", help="Segments: saved, named account audiences in the playbook condition language.")
def segment_group():
    pass


@segment_group.command("save", help="Save (create or change) a segment from a YAML file holding its condition.")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--description", help="What the segment is for.")
@with_appcontext
def save(name, file, description):
    try:
        row, created = segments.save(name, Path(file).read_text(encoding="utf-8"), description)
    except segments.SegmentInvalid as exc:
        for error in exc.errors:
            click.echo(str(error))
        sys.exit(1)
    except ApiError as exc:
        raise click.ClickException("; ".join(d.get("message", "") for d in exc.details) or exc.message) from None
    click.echo(f"{row.name}: {'created' if created else 'changed'}, {segments.count(row)} account(s) now")


@segment_group.command("list", help="Every segment with its live count.")
@with_appcontext
def list_segments():
    for item in segments.listing():
        click.echo(f"{item['name']:<24} {item['count']:>8}  {item['summary']}")


@segment_group.command("members", help="The accounts in a segment, with their reasons (or --csv).")
@click.argument("name")
@click.option("--csv", "as_csv", is_flag=True, help="Print the whole list as CSV.")
@with_appcontext
def members(name, as_csv):
    try:
        if as_csv:
            click.echo(segments.export_csv(name), nl=False)
            return
        cursor = None
        while True:
            items, cursor = segments.members(name, cursor, 200)
            for item in items:
                click.echo(f"{item['domain']:<32} {item['name']:<32} {'; '.join(item['reasons'])}")
            if not cursor:
                return
    except ApiError as exc:
        raise click.ClickException(exc.message) from None


@segment_group.command("delete", help="Delete a segment.")
@click.argument("name")
@with_appcontext
def delete(name):
    try:
        segments.delete(name)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{name}: deleted")


commands = [segment_group]
