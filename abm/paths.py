"""Where the repository's files are: one home for the paths that the app, migrations and the demo read."""

from __future__ import annotations

from pathlib import Path

#: The repository (or the installed tree): templates/, playbooks/, alembic.ini.
ROOT = Path(__file__).resolve().parent.parent
