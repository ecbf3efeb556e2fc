"""The touches page: every touch, newest first, searched (account name or domain,
contact email), filtered (playbook, step, channel, status, account, reason, result) and
paged by cursor; the counts of a playbook's per-step results link here."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from abm.services import touch_search
from abm.web._access import role_required

bp = Blueprint("touches", __name__)
PAGE_SIZE = 50


def filters_from_args() -> touch_search.Filters:
    """The filters of the query string, each checked and cut to its column's size."""
    args = request.args
    status = args.get("status") if args.get("status") in touch_search.STATUSES else None
    channel = args.get("channel") if args.get("channel") in touch_search.CHANNELS else None
    event = args.get("result") if args.get("result") in touch_search.RESULT_EVENTS else None
    return touch_search.Filters(
        playbook=(args.get("playbook") or "")[:64] or None, step=(args.get("step") or "")[:100] or None,
        channel=channel, status=status, account=(args.get("account") or "")[:255] or None, event=event,
        reason=(args.get("reason") or "")[:2000] or None, q=(args.get("q") or "")[:200] or None,
        variant=(args.get("variant") or "")[:64] or None)


@bp.get("/touches")
@role_required()
def index():
    filters = filters_from_args()
    items, cursor = touch_search.search(filters, request.args.get("cursor"), PAGE_SIZE)
    args = filters.as_args()
    if "event" in args:
        args["result"] = args.pop("event")
    return render_template("web/touches/list.html", items=items, next_cursor=cursor, filters=filters, args=args,
                           statuses=touch_search.STATUSES, channels=touch_search.CHANNELS,
                           results=list(touch_search.RESULT_EVENTS), first_page=not request.args.get("cursor"))
