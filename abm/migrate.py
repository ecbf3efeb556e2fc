"""Alembic from the application: upgrade the database the app is configured for."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig

from abm.paths import ROOT


def alembic_config(url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
