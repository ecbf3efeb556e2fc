"""The engine's clock: real UTC time, or ``app.config["ABM_CLOCK"]`` (a function that
returns an aware datetime) so that tests move time instead of sleeping."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, has_app_context

from abm.db import utcnow

__all__ = ["now", "utcnow"]  # utcnow: the wall clock, for pages and the API (they import nothing of abm.db)


def now() -> datetime:
    override = current_app.config.get("ABM_CLOCK") if has_app_context() else None
    return override() if override else utcnow()
