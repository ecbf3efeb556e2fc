"""Core commands: database, users, tokens, the web server, workers."""

from __future__ import annotations

import os
import secrets
import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from abm.auth import issue_token
from abm.db import db
from abm.migrate import upgrade
from abm.models import ROLES, Account, User
from abm.server import run_gunicorn
from abm.services import user_admin, users
from workers.runner import run_worker


@click.group("db", help="The database schema (Alembic migrations).")
def db_group():
    pass


@db_group.command("upgrade", help="Apply the Alembic migrations up to the newest revision.")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@with_appcontext
def db_upgrade(revision):
    upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@click.group("users", help="Users of the web UI and the API.")
def users_group():
    pass


@users_group.command("create", help="Create a user. Prints the generated password when none is given.")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True, help="admin, manager or ae.")
@click.option("--name", default="", help="Display name.")
@click.option("--password", default=None, help="Password (generated when left out).")
@with_appcontext
def users_create(email, role, name, password):
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    try:
        user = users.create_user(email=email, role=role, name=name, password=password)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {user.role} {user.email} (id {user.id})")
    if generated:
        click.echo(f"password: {password}")


@users_group.command("set-password", help="Set a user's password (generated when none is given); "
                                         "ends every session of theirs.")
@click.argument("email")
@click.option("--password", default=None, help="The new password (generated when left out).")
@with_appcontext
def users_set_password(email, password):
    user = db.session.scalar(select(User).where(User.email == users.normalise_email(email)))
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    try:
        users.change_password(user, password)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"password changed for {user.email}; their sessions have ended")
    if generated:
        click.echo(f"password: {password}")


def _admin_call(action):
    """Run a user-admin action, its refusals as a ClickException (exit 1, the reason)."""

    try:
        return action()
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None


@users_group.command("list", help="Every user: email, role, active, accounts owned.")
@with_appcontext
def users_list():
    owned = dict(db.session.execute(select(Account.owner_id, func.count()).group_by(Account.owner_id)).all())
    for user in db.session.scalars(select(User).order_by(User.email)):
        click.echo(f"{user.email}\t{user.role}\t{'active' if user.active else 'deactivated'}\t"
                   f"{owned.get(user.id, 0)} accounts")


@users_group.command("role", help="Change a user's role.")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
@with_appcontext
def users_role(email, role):
    user = _admin_call(lambda: user_admin.change_role(user_admin.find(email), role))
    click.echo(f"{user.email} is now {user.role}")


@users_group.command("timezone", help="Set a user's time zone (an IANA name such as Europe/Paris; their weekly "
                                      "digest goes on their Monday morning there); empty: the workspace's zone.")
@click.argument("email")
@click.argument("zone", default="")
@with_appcontext
def users_timezone(email, zone):
    user = _admin_call(lambda: user_admin.set_timezone(user_admin.find(email), zone))
    click.echo(f"{user.email} now has the time zone {user.timezone or 'of the workspace'}")


@users_group.command("deactivate", help="Stop a user logging in; ends their sessions and revokes their API tokens.")
@click.argument("email")
@with_appcontext
def users_deactivate(email):
    user = _admin_call(lambda: user_admin.deactivate(user_admin.find(email)))
    click.echo(f"{user.email} is deactivated; their sessions and API tokens have ended")


@users_group.command("reactivate", help="Let a deactivated user log in again.")
@click.argument("email")
@with_appcontext
def users_reactivate(email):
    user = _admin_call(lambda: user_admin.reactivate(user_admin.find(email)))
    click.echo(f"{user.email} is active again")


@users_group.command("reset-link", help="Email a user a password-reset link (single use, expiring) through the "
                                        "workspace's email connector; --print shows it here instead.")
@click.argument("email")
@click.option("--print", "show", is_flag=True, help="Print the link instead of emailing it.")
@with_appcontext
def users_reset_link(email, show):
    user = _admin_call(lambda: user_admin.find(email))
    if show:
        click.echo(user_admin.reset_link(user))
        return
    _admin_call(lambda: user_admin.send_reset_link(user))
    click.echo(f"a reset link to {user.email} is queued; a worker emails it")


@users_group.command("delete", help="Delete a user; --reassign-to takes over the accounts they own.")
@click.argument("email")
@click.option("--reassign-to", default=None, help="Email of the user who takes over their accounts.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def users_delete(email, reassign_to, yes):
    user = _admin_call(lambda: user_admin.find(email))
    target = _admin_call(lambda: user_admin.find(reassign_to)) if reassign_to else None
    if not yes:
        click.confirm(f"Delete {user.email} for good?", abort=True)
    moved = _admin_call(lambda: user_admin.delete(user, target))
    click.echo(f"{email} deleted" + (f"; {moved} account(s) now owned by {target.email}" if moved else ""))


@click.group("tokens", help="API bearer tokens.")
def tokens_group():
    pass


@tokens_group.command("create", help="Print a new API token for a user; it is shown only this once.")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A label for the token.")
@with_appcontext
def tokens_create(email, name):
    user = db.session.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"no user with email {email!r}; create one with `abm users create`")
    token = issue_token(user, name)
    db.session.commit()
    click.echo(token)


@click.command("serve", help="Run the web server (gunicorn, production-grade).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="Worker processes (default: 2 x cores).")
@click.option("--threads", default=4, show_default=True, type=int)
def serve(host, port, workers, threads):
    run_gunicorn(host=host, port=port, workers=workers or max(2, 2 * (os.cpu_count() or 1)), threads=threads)


@click.command("worker", help="Run an RQ worker on the product's queues (all of them by default).")
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--with-scheduler/--no-scheduler", default=False,
              help="Also run the periodic jobs in this worker.")
@click.option("--fork/--no-fork", default=False, show_default=True,
              help="Run each job in a forked work horse (RQ's Worker) instead of in this process (RQ's SimpleWorker).")
@with_appcontext
def worker(queues, burst, with_scheduler, fork):
    sys.exit(run_worker(current_app._get_current_object(), list(queues), burst=burst,
                        with_scheduler=with_scheduler, fork=fork))


commands = [db_group, users_group, tokens_group, serve, worker]
