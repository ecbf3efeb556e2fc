"""What is read about accounts beside their own rows (the accounts list's counts, one
account's contacts by role, score trend, opportunities and stage history), and the
changes the account page commits. :mod:`abm.services.accounts` holds the rules."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from abm.db import db
from abm.models import Account, Contact, Opportunity, ScoreSnapshot, StageChange, User
from abm.services import accounts, paging
from abm.services.clock import utcnow
from abm.services.paging import SortKey
from abm.services.transactions import rolls_back_on_error

SCORE_DAYS = 90  # the span of the score trend on the account page


def stage_counts(filters: dict, me: int | None) -> tuple[dict[str, int], int]:
    """Accounts per stage under every filter but the stage one, and the total.

    The list's own filter clauses, so that the counts always agree with the list.
    """
    others = {k: v for k, v in filters.items() if k != "stage"}
    clauses = accounts.filter_clauses(others, me)
    rows = db.session.execute(select(Account.stage, func.count()).where(*clauses).group_by(Account.stage)).all()
    by_stage = {stage: n for stage, n in rows}
    return by_stage, sum(by_stage.values())


def tiers() -> list[int]:
    """The tiers accounts have, the choices of the list's tier filter."""
    return [t for (t,) in db.session.execute(
        select(Account.tier).where(Account.tier.is_not(None)).distinct().order_by(Account.tier))]


def contacts_by_role(account_id: int, roles: list[str]) -> list[tuple[str, list[Contact]]]:
    """The account's contacts (not erased) grouped by buying role: the workspace's roles in
    its order, then other roles by name, then those without a role (under "")."""
    contacts = db.session.execute(
        select(Contact).where(Contact.account_id == account_id, Contact.erased_at.is_(None))
        .order_by(func.lower(Contact.last_name), func.lower(Contact.first_name), Contact.id)).scalars().all()
    groups: dict[str, list[Contact]] = {}
    for contact in contacts:
        groups.setdefault(contact.buying_role or "", []).append(contact)
    order = [r for r in roles if r in groups] + sorted(r for r in groups if r and r not in roles)
    out = [(role, groups[role]) for role in order]
    if "" in groups:
        out.append(("", groups[""]))
    return out


def score_trend(account: Account) -> list[float]:
    """The daily scores of the last :data:`SCORE_DAYS` days and today's; empty without history."""
    since = (utcnow() - timedelta(days=SCORE_DAYS)).date()
    points = db.session.execute(select(ScoreSnapshot.score).where(
        ScoreSnapshot.account_id == account.id, ScoreSnapshot.day >= since).order_by(ScoreSnapshot.day)).scalars().all()
    return [*points, account.score or 0.0] if points else []


def opportunities(account_id: int) -> list[Opportunity]:
    """The account's opportunities, newest first."""
    return list(db.session.execute(select(Opportunity).where(Opportunity.account_id == account_id)
                                   .order_by(Opportunity.created_at.desc())).scalars())


def stage_page(account_id: int, cursor: str | None, limit: int) -> tuple[list[StageChange], str | None]:
    """One page of the account's stage changes, newest first (the API's history)."""
    keys = [SortKey(StageChange.changed_at, True, "datetime"), SortKey(StageChange.id, True)]
    return paging.page(select(StageChange).where(StageChange.account_id == account_id), keys, "stages", cursor,
                       limit)


def actors(history: list[StageChange]) -> dict[int, User]:
    """The users who made the stage changes of ``history``, by id."""
    ids = {c.actor_id for c in history if c.actor_id}
    return {u.id: u for u in db.session.execute(select(User).where(User.id.in_(ids))).scalars()} if ids else {}


@rolls_back_on_error
def change_stage(account: Account, stage: str, actor: User) -> StageChange | None:
    """A stage change made on the account page, committed; None when the account is there
    already. Raises ValidationError for a stage the workspace does not have."""
    change = accounts.change_stage(account, stage, source=f"ui:{actor.email}", actor_id=actor.id)
    db.session.commit()
    return change



@rolls_back_on_error
def save_notes(account: Account, notes: str | None, actor: User) -> Account:
    """The notes edited on the account page, committed. Raises ValidationError (too long)."""
    return accounts.update(account, {"notes": notes}, source=f"ui:{actor.email}", actor=actor)
