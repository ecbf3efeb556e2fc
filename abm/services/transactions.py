"""Services own their transactions: one that fails leaves the session clean.

A page that catches a service's error (a bad form, a refused action) goes on to render,
and rendering reads: the half-done work of the failed call must not be flushed with it,
and a PostgreSQL transaction aborted by a failed statement must not refuse those reads.
So the service rolls back before its error reaches the caller; the page only catches it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from abm.db import db

P = ParamSpec("P")
R = TypeVar("R")


def rolls_back_on_error(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a committing service function: any exception rolls the session back, then propagates."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception:
            db.session.rollback()
            raise

    return wrapper

