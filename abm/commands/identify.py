"""Account identification commands: networks from a CSV, the ip2asn file, AS-to-account
maps and suggestions, and the privacy purge of kept addresses."""

from __future__ import annotations

import contextlib
import os
import sys

import click
from flask.cli import with_appcontext

from abm.db import db
from abm.errors import ApiError
from abm.services import accounts, identification, networks


@click.group("identify", help="Which account a web visit comes from: networks, ip2asn data, AS maps.")
def identify_group():
    pass


def _print_errors(name: str, errors: list[dict]) -> None:
    for err in errors[:50]:
        field = f", {err['field']}" if err.get("field") else ""
        click.echo(f"{name}: line {err['line']}{field}: {err['message']}", err=True)
    if len(errors) > 50:
        click.echo(f"{name}: {len(errors) - 50} more errors not shown", err=True)


@identify_group.command("import-networks", help="Attach networks to accounts from a CSV with columns domain,network.")
@click.argument("file", type=click.File("r", encoding="utf-8-sig", errors="strict"))
@with_appcontext
def import_networks(file):
    try:
        report = networks.import_networks_csv(file.read())
    except (ApiError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None
    click.echo(f"{file.name}: {report.written} networks attached, {len(report.errors)} rows refused")
    _print_errors(file.name, report.errors)
    sys.exit(1 if report.errors else 0)


@contextlib.contextmanager
def _bar(path: str, label: str):
    size = os.path.getsize(path)
    if not sys.stderr.isatty() or not size:
        yield None
        return
    with click.progressbar(length=size, label=label, file=sys.stderr) as bar:
        yield bar


def _lines(path: str, bar):
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if bar is not None:
                bar.update(len(line))
            yield line


@identify_group.command("load-ip2asn", help="Replace the ip2asn data with a TSV file (start, end, AS, country, description).")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def load_ip2asn(path):
    with _bar(path, "loading ip2asn") as bar:
        report = networks.load_ip2asn(_lines(path, bar))
    click.echo(f"{path}: {report.written} ranges loaded, {len(report.errors)} lines refused")
    _print_errors(path, report.errors)


@identify_group.command("map-asn", help="Say that an autonomous system belongs to the account with DOMAIN.")
@click.argument("domain")
@click.option("--asn", type=int, help="The AS number.")
@click.option("--org", "org_name", help="The organisation name as the ip2asn file writes it.")
@with_appcontext
def map_asn(domain, asn, org_name):
    try:
        account = accounts.find_by_domain(accounts.domain_or_error(domain))
        if account is None:
            raise click.ClickException(f"no account has the domain {domain}")
        networks.map_asn(account.id, asn, org_name)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"AS {asn or org_name} -> {domain}")


@identify_group.command("suggest", help="Accounts whose name appears in an AS organisation name, to confirm with map-asn.")
@with_appcontext
def suggest():
    for s in networks.suggest_asn_matches():
        click.echo(f"{s['domain']}\tAS{s['asn']}\t{s['description']}")


@identify_group.command("purge", help="Drop the addresses of unmatched visits older than the retention setting.")
@with_appcontext
def purge():
    n = identification.purge_raw_addresses()
    db.session.commit()
    click.echo(f"{n} visits' addresses dropped")


commands = [identify_group]
