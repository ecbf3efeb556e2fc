"""``abm connectors list | test NAME | rotate-keys``."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from abm import crypto
from abm.services import connectors as service


@click.group("connectors", help="Configured connectors: list them, test one live, rotate the encryption keys.")
def connectors_group():
    pass


@connectors_group.command("list", help="List the configured connectors.")
@with_appcontext
def list_command():
    rows = service.list_configs()
    if not rows:
        click.echo("no connector is configured; add one on the Connectors page or with POST /api/v1/connectors")
        return
    table = [("NAME", "TYPE", "CHANNELS", "ENABLED", "DEFAULT FOR", "RATE LIMIT", "UNIT COST")]
    for row in rows:
        calls, seconds = service.rate_limit_of(row)
        table.append((row.name, row.type, ",".join(service.channels_of(row)) or "-",
                      "yes" if row.enabled else "no", ",".join(row.default_for or []) or "-",
                      f"{calls}/{seconds}", f"{float(row.unit_cost or 0):g}"))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@connectors_group.command("test", help="Make a harmless live call through connector NAME; exit 1 when it fails.")
@click.argument("name")
@with_appcontext
def test_command(name):
    names = [row.name for row in service.list_configs()]
    if name not in names:
        raise click.ClickException(f"no connector named {name!r} (configured: {', '.join(names) or 'none'})")
    ok, message = service.test(name)
    if not ok:
        raise click.ClickException(f"{name}: test failed: {message}")
    click.echo(f"{name}: ok: {message}")


@connectors_group.command("rotate-keys", help="Re-encrypt every stored secret under the newest key of "
                                               "ABM_ENCRYPTION_KEYS (the first); then drop the old keys.")
@with_appcontext
def rotate_command():
    try:
        count = crypto.rotate()
    except crypto.SecretsError as exc:
        raise click.ClickException(str(exc)) from None
    noun = "connector's secrets" if count == 1 else "connectors' secrets"
    click.echo(f"re-encrypted {count} {noun} under the newest key")


commands = [connectors_group]
