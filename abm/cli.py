"""The ``abm`` command line, built on Flask's click integration.

Every module in :mod:`abm.commands` exports ``commands``, a list of click commands or
groups; they are added both to ``abm`` and to ``flask --app abm``. Exit status: 0 on
success, 1 when the work found errors, 2 for wrong usage (click's own).
"""

from __future__ import annotations

import importlib
import pkgutil

import click
from flask.cli import FlaskGroup
from sqlalchemy.exc import OperationalError, ProgrammingError

import abm.commands
from abm import create_app

#: What the databases say about a table that is not there (SQLite; PostgreSQL's UndefinedTable).
_NO_TABLE = ("no such table", "does not exist")


def _command_modules():
    for info in sorted(pkgutil.iter_modules(abm.commands.__path__), key=lambda i: i.name):
        yield importlib.import_module(f"abm.commands.{info.name}")


def all_commands() -> list[click.Command]:
    found: list[click.Command] = []
    for module in _command_modules():
        found.extend(getattr(module, "commands", []))
    return found


def register_commands(app) -> None:
    for cmd in all_commands():
        if cmd.name not in app.cli.commands:
            app.cli.add_command(cmd)


def _create_app():
    return create_app()


class AbmGroup(FlaskGroup):
    def __init__(self, **kwargs):
        super().__init__(create_app=_create_app, add_default_commands=False,
                         add_version_option=False, load_dotenv=False, set_debug_flag=False, **kwargs)
        for cmd in all_commands():
            self.add_command(cmd)

    def get_command(self, ctx, name):
        # Our own commands first: no app is created just to find them (fast --help).
        return self.commands.get(name) or super().get_command(ctx, name)

    def list_commands(self, ctx):
        return sorted(self.commands)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            if not any(words in str(exc.orig) for words in _NO_TABLE):
                raise
            raise click.ClickException(
                f"the database has no tables yet ({str(exc.orig).splitlines()[0]}): run `abm db upgrade` first "
                "(it uses ABM_DATABASE_URL)") from None


main = AbmGroup(name="abm", help="Account-based marketing orchestration: playbooks, workers, engagement, KPIs.")
