"""The pages: one blueprint per area."""

from __future__ import annotations


def init_app(app) -> None:
    pass
