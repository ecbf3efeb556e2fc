"""Tracking endpoints outside /api/v1: open pixel, click redirect, site snippet, visits,
and unsubscribe (page and RFC 8058 one-click).

The pixel, the click and the visit beacon do one Redis push and no database query.
A forged or tampered token records nothing; a click redirects only to a URL that its
signed token names, never anywhere else (no open redirect).

The open pixel and the site snippet's beacon are the busiest of them (every open of
every email, every page view of the site), so they are answered in front of Flask, by
WSGI middlewares (:class:`OpenPixel`, :class:`VisitBeacon`): no request context, session,
user loading or CSRF check, none of which they need.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from flask import Blueprint, Response, current_app, redirect, render_template, request, send_file
from werkzeug.http import HTTP_STATUS_CODES

from abm import tracking
from abm.auth import csrf
from abm.services import events, site_beacons, unsubscribes
from abm.services.clock import utcnow

bp = Blueprint("tracking", __name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"}
MAX_BEACON = 8 * 1024


def init_app(app) -> None:
    csrf.exempt(bp)
    app.wsgi_app = OpenPixel(app, VisitBeacon(app, app.wsgi_app))


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


class VisitBeacon:
    """``POST`` and ``OPTIONS /t/v``, the site snippet's beacon, answered before Flask:
    checked, limited, marked and queued by :mod:`abm.services.site_beacons` (the site's
    settings from a per-app cache, the limits and the push in one Redis call); any other
    request goes on untouched."""

    PATH = "/t/v"

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        if environ.get("PATH_INFO") != self.PATH or method not in ("POST", "OPTIONS"):
            return self.wsgi_app(environ, start_response)
        with self.app.app_context():
            status, headers, text = self.answer(environ, method)
        body = text.encode() if text else b""
        headers += [("Content-Length", str(len(body)))] + ([("Content-Type", "text/plain; charset=utf-8")]
                                                            if body else [])
        start_response(status, headers)
        return [body]

    @staticmethod
    def answer(environ, method: str) -> tuple[str, list[tuple[str, str]], str]:
        origin = environ.get("HTTP_ORIGIN")
        headers = [("Access-Control-Allow-Headers", "Content-Type"), ("Access-Control-Allow-Methods", "POST"),
                   ("Vary", "Origin")]
        if site_beacons.allowed_origin(origin):
            headers.append(("Access-Control-Allow-Origin", origin))
        if method == "OPTIONS":
            return "204 No Content", headers, ""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BEACON:
            return "413 Request Entity Too Large", headers, f"a beacon is at most {MAX_BEACON} bytes\n"
        try:
            body = json.loads(environ["wsgi.input"].read(length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return "400 Bad Request", headers, "not JSON\n"
        try:
            site_beacons.record(body, origin, environ.get("HTTP_REFERER"), environ.get("REMOTE_ADDR"))
        except site_beacons.BeaconRefused as exc:
            return f"{exc.status} {HTTP_STATUS_CODES.get(exc.status, '')}", headers, exc.message + "\n"
        return "204 No Content", headers, ""


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    contact = unsubscribes.recipient(token)
    if contact == unsubscribes.OWNER:
        if request.method == "POST":
            return Response("This address gets internal sales notifications; ask your admin to change them.\n",
                            status=200, mimetype="text/plain")
        return render_template("web/unsubscribe.html", state="owner")
    if contact is None:
        if request.method == "POST":
            return Response("This unsubscribe link is not valid.\n", status=400, mimetype="text/plain")
        return render_template("web/unsubscribe.html", state="invalid"), 400
    if request.method == "GET":
        return render_template("web/unsubscribe.html", state="confirm", token=token,
                               already=contact.unsubscribed_at is not None)
    unsubscribes.unsubscribe(contact, "one-click" if one_click else "page")
    if one_click:
        return Response("unsubscribed\n", status=200, mimetype="text/plain")
    return render_template("web/unsubscribe.html", state="done")
