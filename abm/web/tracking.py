"""Tracking endpoints outside /api/v1: open pixel, click redirect, site snippet, visits,
and unsubscribe (page and RFC 8058 one-click).

The pixel, the click and the visit beacon do one Redis push and no database query.
A forged or tampered token records nothing; a click redirects only to a URL that its
signed token names, never anywhere else (no open redirect).

The open pixel is the busiest of them (every open of every email fetches it), so it is
answered in front of Flask, by :class:`OpenPixel`, a WSGI middleware: no request context,
session, user loading, CSRF check or database session, none of which it needs.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, redirect, render_template, request, send_file

from abm import tracking
from abm.db import db, utcnow
from abm.normalize import NormalizeError, normalize_email
from abm.services import events

bp = Blueprint("tracking", __name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"}
MAX_BEACON = 8 * 1024


def init_app(app) -> None:
    from abm.auth import csrf

    csrf.exempt(bp)
    app.wsgi_app = OpenPixel(app, app.wsgi_app)


def _now_iso() -> str:
    return utcnow().isoformat()


class OpenPixel:
    """``GET`` and ``HEAD /t/o/<token>.gif``, answered before Flask; any other request
    goes on to Flask untouched.

    Every token gets the GIF; a genuine one (its signature checked with the app's secret)
    also queues one ``email_open`` with one Redis push (the spool when Redis is down).
    """

    PREFIX, SUFFIX = "/t/o/", ".gif"
    HEADERS = [("Content-Type", "image/gif"), ("Content-Length", str(len(PIXEL))), *NO_STORE.items()]

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        token = path[len(self.PREFIX):-len(self.SUFFIX)]
        if (not path.startswith(self.PREFIX) or not path.endswith(self.SUFFIX) or method not in ("GET", "HEAD")
                or not token or "/" in token):
            return self.wsgi_app(environ, start_response)
        opened = tracking.read_open(token, self.app.config["SECRET_KEY"])
        if opened is not None:
            touch_id, contact_id, account_id = opened
            events.push([{"type": "email_open", "occurred_at": _now_iso(), "touch_id": touch_id,
                          "contact_id": contact_id, "account_id": account_id, "source": "pixel",
                          "properties": {"user_agent": environ.get("HTTP_USER_AGENT", "")[:300]}}], self.app)
        start_response("200 OK", list(self.HEADERS))
        return [] if method == "HEAD" else [PIXEL]


@bp.get("/t/c/<token>")
def click(token: str):
    found = tracking.click_destination(token, request.args.get("u"))
    if found is None:
        return render_template("web/link_broken.html"), 400
    (touch_id, contact_id, account_id), url = found
    events.push([{"type": "email_click", "occurred_at": _now_iso(), "touch_id": touch_id,
                  "contact_id": contact_id, "account_id": account_id, "url": url, "source": "click"}])
    return redirect(tracking.with_contact_param(url, contact_id), code=302)


@bp.get("/t/snippet.js")
def snippet():
    path = Path(current_app.static_folder) / "snippet.js"
    resp = send_file(path, mimetype="application/javascript", max_age=3600)
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@bp.route("/t/v", methods=["POST", "OPTIONS"])
def visit():
    headers = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Content-Type",
               "Access-Control-Allow-Methods": "POST"}
    if request.method == "OPTIONS":
        return Response(status=204, headers=headers)
    raw = request.get_data(cache=False)[:MAX_BEACON + 1]
    if len(raw) > MAX_BEACON:
        return Response(status=413, headers=headers)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return Response(status=400, headers=headers)
    event = _visit_event(body)
    if event is None:
        return Response(status=400, headers=headers)
    if request.remote_addr:
        event["ip"] = request.remote_addr  # for account identification in the drain; see docs/identification.md
    events.push([event])
    return Response(status=204, headers=headers)


def _visit_event(body) -> dict | None:
    if not isinstance(body, dict) or body.get("type") not in ("web_visit", "form_fill"):
        return None
    url = body.get("url")
    if not isinstance(url, str) or not tracking.is_safe_destination(url) or len(url) > 4000:
        return None
    visitor = str(body.get("visitor_id") or "")[:100] or None
    event = {"type": body["type"], "occurred_at": _now_iso(), "url": url, "source": "snippet",
             "visitor_id": visitor,
             "properties": {k: str(body[k])[:300] for k in ("title", "referrer", "form") if body.get(k)}}
    contact_id = tracking.read("contact", body["contact"]) if isinstance(body.get("contact"), str) else None
    if isinstance(contact_id, int):
        event["contact_id"] = contact_id
    if isinstance(body.get("email"), str):
        try:
            event["email"] = normalize_email(body["email"])
        except NormalizeError:
            pass
    if not ({"contact_id", "email"} & set(event)):
        # an anonymous visitor: kept (unmatched) with its visitor id until it identifies itself
        event["properties"]["host"] = urlsplit(url).hostname or ""
    return event


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    from abm.models import Contact

    contact_id = tracking.read_unsubscribe(token)
    if isinstance(contact_id, str):  # an email to the account's owner: an internal notification
        if request.method == "POST":
            return Response("This address gets internal sales notifications; ask your admin to change them.\n",
                            status=200, mimetype="text/plain")
        return render_template("web/unsubscribe.html", state="owner")
    contact = db.session.get(Contact, contact_id) if contact_id else None
    if contact is None:
        if request.method == "POST":
            return Response("This unsubscribe link is not valid.\n", status=400, mimetype="text/plain")
        return render_template("web/unsubscribe.html", state="invalid"), 400
    if request.method == "GET":
        return render_template("web/unsubscribe.html", state="confirm", token=token,
                               already=contact.unsubscribed_at is not None)
    if contact.unsubscribed_at is None:
        contact.unsubscribed_at = utcnow()
        db.session.commit()
        events.push([{"type": "unsubscribe", "occurred_at": _now_iso(), "contact_id": contact.id,
                      "source": "one-click" if request.form.get("List-Unsubscribe") == "One-Click" else "page"}])
    if request.form.get("List-Unsubscribe") == "One-Click":
        return Response("unsubscribed\n", status=200, mimetype="text/plain")
    return render_template("web/unsubscribe.html", state="done")
