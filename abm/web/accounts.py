"""The accounts list and the account page, with the stage change form."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from abm.db import db, utcnow
from abm.errors import ValidationError
from abm.models import Account, Contact, Opportunity, ScoreSnapshot, User
from abm.services import accounts as account_service
from abm.services import in_market
from abm.services import settings as settings_service
from abm.web._access import MANAGERS, role_required
from abm.web.engagement import account_sections

bp = Blueprint("accounts", __name__)

PAGE_SIZE = 50
SORT_CHOICES = [("-score", "Score, highest first"), ("name", "Name, A to Z"), ("-updated_at", "Recently updated"),
                ("stage", "Stage"), ("-created_at", "Newest")]
FILTER_NAMES = ("q", "stage", "tier", "owner", "engagement", "fit")
SCORE_DAYS = 90


def _filters() -> dict:
    return {name: request.args.get(name, "").strip() for name in FILTER_NAMES if request.args.get(name, "").strip()}


def may_change_stage(account: Account) -> bool:
    return current_user.role in MANAGERS or (current_user.role == "ae" and account.owner_id == current_user.id)


def _stage_counts(filters: dict) -> tuple[dict[str, int], int]:
    """Accounts per stage under every filter but the stage one, and the total."""
    others = {k: v for k, v in filters.items() if k != "stage"}
    # The service's filter clauses, so the counts always agree with the list.
    clauses = account_service._filter_clauses(others, current_user.id)
    rows = db.session.execute(select(Account.stage, func.count()).where(*clauses).group_by(Account.stage)).all()
    by_stage = {stage: n for stage, n in rows}
    return by_stage, sum(by_stage.values())


def _owners() -> list[User]:
    return list(db.session.execute(select(User).where(User.active.is_(True)).order_by(User.email)).scalars())


def _tiers() -> list[int]:
    return [t for (t,) in db.session.execute(
        select(Account.tier).where(Account.tier.is_not(None)).distinct().order_by(Account.tier))]


def _link(**changes) -> str:
    """This list's URL with ``changes`` applied (None drops a parameter); the cursor resets."""
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    for key, value in changes.items():
        if value is None or value == "":
            args.pop(key, None)
        else:
            args[key] = value
    return url_for("accounts.index", **args)


@bp.get("/accounts")
@role_required()
def index():
    filters = _filters()
    sort = request.args.get("sort") or "-score"
    cursor = request.args.get("cursor") or None
    first_owner = current_user.id if current_user.role == "ae" and filters.get("owner") != "me" else None
    problems: list[dict] = []
    rows, next_cursor = [], None
    by_stage, total = {}, 0
    try:
        rows, next_cursor = account_service.list_accounts(filters, sort, cursor, PAGE_SIZE,
                                                          first_owner_id=first_owner, me=current_user.id)
        by_stage, total = _stage_counts(filters)
    except ValidationError as exc:
        db.session.rollback()
        problems = exc.details
    stages = settings_service.current()["stages"]
    in_stage = total if not filters.get("stage") else sum(
        by_stage.get(s, 0) for s in filters["stage"].split(","))
    return render_template(
        "web/accounts/list.html", rows=rows, next_cursor=next_cursor, filters=filters, sort=sort,
        cursor=cursor, stages=stages, by_stage=by_stage, total=total, matching=in_stage, problems=problems,
        owners=_owners(), tiers=_tiers(), sort_choices=SORT_CHOICES, link=_link, mine_first=first_owner is not None,
    ), 422 if problems else 200


def _contacts_by_role(account_id: int, roles: list[str]) -> list[tuple[str, list[Contact]]]:
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


def _score_trend(account: Account) -> list[float]:
    since = (utcnow() - timedelta(days=SCORE_DAYS)).date()
    points = db.session.execute(select(ScoreSnapshot.score).where(
        ScoreSnapshot.account_id == account.id, ScoreSnapshot.day >= since).order_by(ScoreSnapshot.day)).scalars().all()
    return [*points, account.score or 0.0] if points else []


def _detail(account: Account, status: int = 200, stage_errors: list[str] | None = None,
            notes_errors: list[str] | None = None):
    current = settings_service.current()
    opportunities = db.session.execute(select(Opportunity).where(Opportunity.account_id == account.id)
                                       .order_by(Opportunity.created_at.desc())).scalars().all()
    history = account_service.stage_history(account.id)
    actor_ids = {c.actor_id for c in history if c.actor_id}
    actors = {u.id: u for u in db.session.execute(select(User).where(User.id.in_(actor_ids))).scalars()} \
        if actor_ids else {}
    return render_template(
        "web/accounts/detail.html", account=account, groups=_contacts_by_role(account.id, current["roles"]),
        history=history, actors=actors, opportunities=opportunities, stages=current["stages"],
        can_change_stage=may_change_stage(account), stage_errors=stage_errors or [],
        notes_errors=notes_errors or [],
        trend=_score_trend(account), counts=account_service.counts(account.id),
        eng=account_sections(account.id), market=in_market.summary(account),
    ), status


@bp.get("/accounts/<int:account_id>")
@role_required()
def show(account_id: int):
    return _detail(account_service.get(account_id))


@bp.post("/accounts/<int:account_id>/stage")
@role_required()
def change_stage(account_id: int):
    account = account_service.get(account_id)
    if not may_change_stage(account):
        abort(403, description="only a manager, an admin or the account's owner may change its stage")
    stage = (request.form.get("stage") or "").strip()
    try:
        change = account_service.change_stage(account, stage, source=f"ui:{current_user.email}",
                                              actor_id=current_user.id)
    except ValidationError as exc:
        db.session.rollback()
        return _detail(account, 422, [d["message"] for d in exc.details])
    db.session.commit()
    if change is None:
        flash(f"{account.name} is in stage {stage} already.", "info")
    else:
        flash(f"{account.name} moved from {change.from_stage} to {change.to_stage}.", "success")
    return redirect(url_for("accounts.show", account_id=account.id))


@bp.post("/accounts/<int:account_id>/notes")
@role_required()
def save_notes(account_id: int):
    account = account_service.get(account_id)
    if not may_change_stage(account):
        abort(403, description="only a manager, an admin or the account's owner may edit its notes")
    notes = (request.form.get("notes") or "").replace("\r\n", "\n").strip()
    try:
        account_service.update(account, {"notes": notes or None}, source=f"ui:{current_user.email}",
                               actor=current_user._get_current_object())
    except ValidationError as exc:
        db.session.rollback()
        return _detail(account, 422, notes_errors=[d["message"] for d in exc.details])
    flash("Notes saved.", "success")
    return redirect(url_for("accounts.show", account_id=account.id) + "#notes")
