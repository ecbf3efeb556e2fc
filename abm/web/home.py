"""The landing page after login: where things stand, and the way to each area."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from abm.services import accounts as account_service
from abm.services import sales_view
from abm.services import settings as settings_service
from abm.web._access import endpoint_url, nav_items, role_required

bp = Blueprint("home", __name__)

DESCRIPTIONS = {
    "accounts": "Every target account, its stage, score and owner.",
    "my_accounts": "The accounts you own, hottest first.",
    "playbooks": "Coordinated touches: write, plan and run playbooks.",
    "outbox": "Emails the demo outbox connector wrote instead of sending.",
    "engagement": "Who is engaging, with what, and how scores move.",
    "kpis": "Touches, leads, pipeline and lift, shared by sales and marketing.",
    "connectors": "Email, ads, CRM and alert providers.",
    "imports": "Load accounts and contacts from CSV files.",
    "users": "People, roles and API tokens.",
    "settings": "Stages, roles, scoring, caps and the send window.",
}


def _counts(owner_id: int | None = None) -> dict:
    """Accounts by stage and by engagement level (the stage-by-engagement matrix, summed each way)."""
    counts = sales_view.matrix(owner_id)["counts"]
    by_stage = {stage: sum(levels.values()) for stage, levels in counts.items() if sum(levels.values())}
    by_engagement = {level: sum(levels.get(level, 0) for levels in counts.values()) for level in ("cold", "warm", "hot")}
    return {"by_stage": by_stage, "by_engagement": by_engagement, "total": sum(by_stage.values())}


@bp.get("/")
@role_required()
def index():
    stages = settings_service.current()["stages"]
    everyone = _counts()
    mine = _counts(current_user.id) if current_user.role == "ae" else None
    counts = [(s, everyone["by_stage"].get(s, 0)) for s in stages]
    counts += [(s, n) for s, n in everyone["by_stage"].items() if s not in stages]
    stage_bars = [{"label": s, "value": n, "href": endpoint_url("accounts.index", stage=s)} for s, n in counts]
    areas = [dict(item, description=DESCRIPTIONS.get(item["key"], "")) for item in nav_items()]
    hottest, _ = account_service.list_accounts({"owner": "me"} if mine is not None else {}, "-score", None, 5,
                                               me=current_user.id)
    return render_template("web/home.html", everyone=everyone, mine=mine, stage_bars=stage_bars, areas=areas,
                           hottest=[a for a in hottest if (a.score or 0) > 0])
