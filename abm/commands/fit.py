"""ICP fit commands: refresh every account's fit, show the model, explain one account."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from abm.services import accounts, fit


@click.group("fit", help="ICP fit per account: rules from the settings and a model trained on won and lost deals.")
def fit_group():
    pass


@fit_group.command("refresh", help="Score every account's fit now (the scheduler does it daily).")
@click.option("--retrain/--no-retrain", default=None, help="Train the model now (default: when it is a week old).")
@with_appcontext
def refresh(retrain):
    summary = fit.refresh(retrain=retrain)
    if summary["model"] is None:
        click.echo("fit scored by the rules (no model: too few won and lost opportunities, or the model is off)")
    else:
        click.echo(f"fit scored by model {summary['model']} (cross-validated AUC {summary['auc']:.3f})")


@fit_group.command("model", help="The model in force: AUC, calibration and coefficients, as JSON.")
@with_appcontext
def model():
    click.echo(json.dumps(fit.summary(), indent=2))


@fit_group.command("explain", help="Why the account with DOMAIN has its fit.")
@click.argument("domain")
@with_appcontext
def explain(domain):
    account = accounts.find_by_domain(accounts.domain_or_error(domain))
    if account is None:
        raise click.ClickException(f"no account has the domain {domain}")
    click.echo(json.dumps(fit.explain(account), indent=2))


commands = [fit_group]
