"""The account executive's engagement pages: my accounts, the stage by engagement
matrix, and the site snippet page for whoever runs the website.

The numbers come from :mod:`abm.services.sales_view`; these views only read the
request, call it, and shape links (every count links to the accounts list filtered
to exactly the accounts it counts).
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from abm.errors import ApiError
from abm.models import User
from abm.services import digest, identification, sales_view, scores, user_admin
from abm.services import settings as settings_service
from abm.services import timeline as timeline_service
from abm.services import users as users_service
from abm.services.clock import utcnow
from abm.web._access import MANAGERS, role_required

bp = Blueprint("engagement", __name__)

SORTS = {"score": "Score", "change": "Change this week"}
LEVELS = ("cold", "warm", "hot")


def ago(when: datetime | None, now: datetime) -> str:
    """'today', '1 day ago', '3 weeks ago' ... or 'never'."""
    if when is None:
        return "never"
    days = (now - when).days
    if days < 1:
        return "today"
    if days < 14:
        return f"{days} day{'s' if days != 1 else ''} ago"
    if days < 60:
        return f"{days // 7} weeks ago"
    return f"{days // 30} months ago"


def _owner_from_request() -> User:
    """The owner whose accounts to show: the user, or (managers, admins) the one they picked."""
    wanted = (request.args.get("owner") or "").strip()
    if not wanted or wanted == str(current_user.id):
        return current_user
    if current_user.role not in MANAGERS:
        abort(403, description="an account executive sees their own accounts here; "
                               "managers and admins may pick another owner")
    user = users_service.find(wanted)
    if user is None:
        raise ApiError(404, f"no user {wanted!r}: pick an owner from the list on My accounts")
    return user


@bp.get("/engagement/mine")
@role_required()
def my_accounts():
    return _my_accounts_page()


def _my_accounts_page(status: int = 200, **extra):
    owner = _owner_from_request()
    own = owner.id == current_user.id
    saved = (current_user.preferences or {}).get("my_accounts") if own else None
    asked = any(k in request.args for k in sales_view.FILTERS)
    stages = settings_service.current()["stages"]
    filters = sales_view.clean_filters(request.args if asked or not saved else saved, stages)
    page = request.args.get("page", "1")
    now = utcnow()
    result = sales_view.my_accounts(owner.id, filters, int(page) if page.isdigit() and len(page) < 7 else 1, now)
    for row in result["rows"]:
        row["last_touch"] = ago(row["last_touch_at"], now)
    owner_arg = None if own else owner.id
    active = {k: v for k, v in filters.items() if v and k != "sort"}

    def link(**changes):
        args = {k: v for k, v in {**filters, **changes}.items() if v}
        return url_for("engagement.my_accounts", owner=owner_arg, **args)

    return render_template(
        "web/engagement/my_accounts.html", result=result, rows=result["rows"], owner=owner, filters=filters,
        active=active, sort=filters["sort"], sorts=SORTS, own=own, stages=stages, levels=LEVELS,
        owners=users_service.active() if current_user.role in MANAGERS else [], link=link, saved=saved,
        from_default=own and saved and not asked,
        digest_on=digest.enabled(current_user) if own and current_user.role in digest.READERS else None,
        **extra), status


@bp.post("/engagement/mine/default")
@role_required()
def save_default():
    filters = sales_view.clean_filters(request.form, settings_service.current()["stages"])
    users_service.save_preference(current_user, "my_accounts", filters)
    flash("These filters are now your default for My accounts.", "success")
    return redirect(url_for("engagement.my_accounts", **{k: v for k, v in filters.items() if v}))


def accounts_link(stages: list[str] | str | None, level: str | None, mine: bool) -> str:
    """The accounts list filtered to the accounts a matrix cell counts."""
    args = {}
    if stages:
        args["stage"] = stages if isinstance(stages, str) else ",".join(stages)
    if level:
        args["engagement"] = level
    if mine:
        args["owner"] = "me"
    return url_for("accounts.index", **args)


@bp.get("/engagement")
@role_required()
def index():
    scope = request.args.get("owner") or ("mine" if current_user.role == "ae" else "all")
    if scope not in ("mine", "all"):
        scope = "all"
    mine = scope == "mine"
    m, fit_m = sales_view.matrices(current_user.id if mine else None)
    hot = m["hot_not_in_opportunity"]
    cold = m["opportunities_gone_cold"]
    named = [
        {"key": "hot_not_in_opportunity", "count": hot["count"],
         "text": f"hot account{'s' if hot['count'] != 1 else ''} not yet in opportunity",
         "why": "Engaged now and not in a sales conversation: reach out.",
         "href": accounts_link(hot["stages"], hot["level"], mine)},
        {"key": "opportunities_gone_cold", "count": cold["count"],
         "text": f"opportunit{'ies' if cold['count'] != 1 else 'y'} gone cold",
         "why": "In opportunity, and nobody there has engaged lately: re-engage them.",
         "href": accounts_link(cold["stages"], cold["level"], mine)},
    ]
    action_cells = {(s, hot["level"]) for s in hot["stages"]} | {(s, cold["level"]) for s in cold["stages"]}
    rows = []
    for stage in m["stages"]:
        counts = m["counts"][stage]
        rows.append({"stage": stage, "total": sum(counts.values()), "href": accounts_link(stage, None, mine),
                     "cells": [{"level": lv, "count": counts.get(lv, 0), "href": accounts_link(stage, lv, mine),
                                "act": (stage, lv) in action_cells and counts.get(lv, 0) > 0} for lv in LEVELS]})
    totals = {lv: sum(r["cells"][i]["count"] for r in rows) for i, lv in enumerate(LEVELS)}
    return render_template(
        "web/engagement/matrix.html", rows=rows, levels=LEVELS, named=named, scope=scope, totals=totals,
        total=sum(totals.values()), level_links={lv: accounts_link(None, lv, mine) for lv in LEVELS},
        fit_rows=_fit_rows(fit_m, mine))


FIT_LABELS = {"high": "High fit (70+)", "medium": "Medium fit (40 to 69)", "low": "Low fit (below 40)",
              "none": "Not scored"}


def _fit_rows(m: dict, mine: bool) -> list[dict]:
    """The fit by engagement matrix's rows, each cell a link to the accounts it counts."""
    rows = []
    for band in m["bands"]:
        def link(level=None, band=band):
            args = {"fit": band, **({"engagement": level} if level else {}), **({"owner": "me"} if mine else {})}
            return url_for("accounts.index", **args)
        rows.append({"band": band, "label": FIT_LABELS[band], "href": link(),
                     "total": sum(m["counts"][band].values()),
                     "cells": [{"level": lv, "count": m["counts"][band][lv], "href": link(lv),
                                "act": (band, lv) in {("high", "cold"), ("high", "warm")} and m["counts"][band][lv] > 0}
                               for lv in LEVELS]})
    return rows


@bp.get("/engagement/snippet")
@role_required(*MANAGERS)
def snippet():
    base = current_app.config.get("BASE_URL", "").rstrip("/")
    sites = [{"name": site["name"], "origins": site["origins"],
              "tag": f'<script src="{base}/t/snippet.js" data-site="{site["key"]}" async></script>'}
             for site in settings_service.current().get("sites") or []]
    return render_template("web/engagement/snippet.html", sites=sites, base=base,
                           ident=identification.config(), lookup_ip_days=identification.lookup_address_days())


@bp.post("/engagement/mine/digest")
@role_required()
def set_digest():
    on = request.form.get("on") == "1"
    digest.set_enabled(current_user, on)
    flash("Your weekly digest is on: it comes on Monday mornings." if on else "Your weekly digest is off.",
          "success")
    return redirect(url_for("engagement.my_accounts"))


@bp.post("/engagement/mine/timezone")
@role_required()
def set_timezone():
    """The seller's own time zone (their digest goes on their Monday morning there)."""
    try:
        user_admin.set_timezone(current_user, request.form.get("timezone"), actor_id=current_user.id)
    except users_service.UserError as exc:
        return _my_accounts_page(422, zone_error=str(exc), zone_value=request.form.get("timezone", ""))
    flash(f"Your time zone is now {current_user.timezone or 'the workspace’s'}.", "success")
    return redirect(url_for("engagement.my_accounts"))


# -- the engagement sections of the account page ------------------------------------

TIMELINE_LIMIT = 60
RECENT_EVENTS = 30


def account_sections(account_id: int, now: datetime | None = None) -> dict:
    """What the account page shows about engagement: the score breakdown, one timeline of
    touches, events and stage changes, buying committee coverage and the playbooks."""
    now = now or utcnow()
    breakdown = scores.breakdown(account_id, now=now, recent=RECENT_EVENTS)
    items = timeline_service.account_timeline(account_id, TIMELINE_LIMIT)
    contacts, playbooks = timeline_service.contacts_and_playbooks(
        {i.get("contact_id") for i in items} | {e["contact_id"] for e in breakdown["events"]},
        {i.get("playbook_id") for i in items} | {e["playbook_id"] for e in breakdown["events"]})

    def contact_name(cid):
        c = contacts.get(cid)
        return (c.full_name or c.email or f"contact {cid}") if c else None

    def playbook_name(pid):
        p = playbooks.get(pid)
        return (p.name or p.key) if p else None

    for item in items:
        item["contact"] = contact_name(item.get("contact_id"))
        item["playbook"] = playbook_name(item.get("playbook_id"))
        item["when"] = item["at"][:16].replace("T", " ")
    for event in breakdown["events"]:
        event["contact"] = contact_name(event["contact_id"])
        event["playbook"] = playbook_name(event["playbook_id"])
        event["when"] = event["occurred_at"][:16].replace("T", " ")
    coverage = sales_view.coverage(account_id, now=now)
    return {
        "breakdown": breakdown,
        "type_bars": [{"label": r["type"].replace("_", " "), "value": r["points"]} for r in breakdown["by_type"]],
        "timeline": items,
        "timeline_limit": TIMELINE_LIMIT,
        "coverage": coverage,
        "roles_reached": sum(1 for r in coverage if r["reached"]),
        "roles_engaged": sum(1 for r in coverage if r["engaged"]),
        "roles_with_contacts": sum(1 for r in coverage if r["contacts"]),
        "playbooks": sales_view.playbooks_of(account_id),
    }
