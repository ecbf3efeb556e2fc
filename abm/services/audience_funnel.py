"""The audience funnel: how many accounts each condition of an audience keeps, so that
an audience of nobody says which condition left nobody.

The audience's top-level ``and`` items are counted cumulatively (the first, the first
two, ...) in one query; then what enrollment adds: accounts already in the playbook
(and not allowed to re-enter), the audience's ``limit``, and the holdout.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select

from abm.db import db
from abm.models import Account
from abm.services import audience
from playbooks.conditions import And, describe
from playbooks.model import Playbook


def funnel(pb: Playbook, now: datetime, eligible: int | None, entrants: int, held: int) -> list[dict]:
    """``[{"label", "kept"}]`` from every account to those entering. ``eligible``: how
    many matching accounts may enter (None when the playbook is new: all of them);
    ``entrants``: how many would enroll (after the limit); ``held``: held out of them."""
    if pb.audience is None:
        return []
    where = pb.audience.where
    items = where.items if isinstance(where, And) and where.items else (where,)
    sums = [func.coalesce(func.sum(case((audience.account_filter(And(items[:n]), now), 1), else_=0)), 0)
            for n in range(1, len(items) + 1)]
    counts = db.session.execute(select(func.count(), *sums).select_from(Account)).one()
    steps = [{"label": "accounts in the workspace", "kept": counts[0]}]
    steps += [{"label": describe(item), "kept": kept} for item, kept in zip(items, counts[1:], strict=True)]
    if eligible is not None:
        steps.append({"label": "not in this playbook already (or allowed to re-enter)", "kept": eligible})
    if pb.audience.limit is not None:
        steps.append({"label": f"within the audience's limit of {pb.audience.limit}", "kept": entrants})
    if pb.holdout:
        steps.append({"label": f"not in the {pb.holdout:g}% holdout", "kept": entrants - held})
    return steps


__all__ = ["funnel"]
