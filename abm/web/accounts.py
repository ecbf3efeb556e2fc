"""The accounts list and the account page, with the stage change form."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from abm.errors import ValidationError
from abm.models import Account
from abm.services import account_details, in_market
from abm.services import accounts as account_service
from abm.services import settings as settings_service
from abm.services import users as users_service
from abm.web._access import MANAGERS, role_required
from abm.web.engagement import account_sections

bp = Blueprint("accounts", __name__)

PAGE_SIZE = 50
SORT_CHOICES = [("-score", "Score, highest first"), ("name", "Name, A to Z"), ("-updated_at", "Recently updated"),
                ("stage", "Stage"), ("-created_at", "Newest")]
FILTER_NAMES = ("q", "stage", "tier", "owner", "engagement", "fit")


def _filters() -> dict:
    return {name: request.args.get(name, "").strip() for name in FILTER_NAMES if request.args.get(name, "").strip()}


def may_change_stage(account: Account) -> bool:
    return current_user.role in MANAGERS or (current_user.role == "ae" and account.owner_id == current_user.id)


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
        by_stage, total = account_details.stage_counts(filters, current_user.id)
    except ValidationError as exc:
        problems = exc.details
    stages = settings_service.current()["stages"]
    in_stage = total if not filters.get("stage") else sum(
        by_stage.get(s, 0) for s in filters["stage"].split(","))
    return render_template(
        "web/accounts/list.html", rows=rows, next_cursor=next_cursor, filters=filters, sort=sort,
        cursor=cursor, stages=stages, by_stage=by_stage, total=total, matching=in_stage, problems=problems,
        owners=users_service.active(), tiers=account_details.tiers(), sort_choices=SORT_CHOICES, link=_link, mine_first=first_owner is not None,
    ), 422 if problems else 200


def _detail(account: Account, status: int = 200, stage_errors: list[str] | None = None,
            notes_errors: list[str] | None = None):
    current = settings_service.current()
    history = account_service.stage_history(account.id)
    return render_template(
        "web/accounts/detail.html", account=account, groups=account_details.contacts_by_role(account.id, current["roles"]),
        history=history, actors=account_details.actors(history),
        opportunities=account_details.opportunities(account.id), stages=current["stages"],
        can_change_stage=may_change_stage(account), stage_errors=stage_errors or [],
        notes_errors=notes_errors or [],
        trend=account_details.score_trend(account), counts=account_service.counts(account.id),
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
        change = account_details.change_stage(account, stage, current_user._get_current_object())
    except ValidationError as exc:
        return _detail(account, 422, [d["message"] for d in exc.details])
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
        account_details.save_notes(account, notes or None, current_user._get_current_object())
    except ValidationError as exc:
        return _detail(account, 422, notes_errors=[d["message"] for d in exc.details])
    flash("Notes saved.", "success")
    return redirect(url_for("accounts.show", account_id=account.id) + "#notes")
