"""A fake Slack incoming-webhook endpoint: plain-string answers, as Slack gives them."""

from __future__ import annotations

import json

from flask import Flask, Response, request

VALID_BLOCK_TYPES = {"section", "context", "divider", "header", "actions", "image", "rich_text"}


def _plain(text: str, status: int, headers: dict | None = None) -> Response:
    return Response(text, status=status, headers=headers or {}, content_type="text/plain")


def slack_app(token_path: str = "/services/T000/B000/GOODTOKEN") -> Flask:
    """``app.config``: CHANNEL ("ok", "missing", "archived", "prohibited"), RATE_LIMITED
    (None, or the Retry-After value to answer a 429 with; "" for a 429 without one),
    POSTED (the messages accepted)."""
    app = Flask("fake-slack")
    app.config.update(CHANNEL="ok", RATE_LIMITED=None, POSTED=[])

    @app.post("/services/<team>/<bot>/<token>")
    def incoming_webhook(team, bot, token):
        if request.path != token_path:
            return _plain("invalid_token", 403)
        if app.config["RATE_LIMITED"] is not None:
            retry = app.config["RATE_LIMITED"]
            return _plain("rate_limited", 429, {"Retry-After": retry} if retry else {})
        channel = app.config["CHANNEL"]
        if channel == "missing":
            return _plain("channel_not_found", 404)
        if channel == "archived":
            return _plain("channel_is_archived", 410)
        if channel == "prohibited":
            return _plain("action_prohibited", 403)
        if request.mimetype != "application/json":
            return _plain("invalid_payload", 400)
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"].strip():
            return _plain("invalid_payload", 400)
        blocks = body.get("blocks", [])
        if not isinstance(blocks, list) or not all(
                isinstance(b, dict) and b.get("type") in VALID_BLOCK_TYPES for b in blocks):
            return _plain("invalid_blocks", 400)
        for block in blocks:
            if block["type"] == "section" and len(block.get("text", {}).get("text", "")) > 3000:
                return _plain("invalid_blocks", 400)
        app.config["POSTED"].append(body)
        return _plain("ok", 200)

    return app


def slack_api_app(token: str = "xoxb-good", users: dict[str, str] | None = None,
                  channels: tuple[str, ...] = ("C0ALERTS",)) -> Flask:
    """A fake Slack Web API (auth.test, users.lookupByEmail, conversations.open,
    chat.postMessage): 200 with ``{"ok": false, "error"}`` for errors, as Slack answers.
    ``app.config["POSTED"]`` holds the accepted messages with their channel."""
    app = Flask("fake-slack-api")
    app.config.update(POSTED=[], USERS=dict(users or {"ae@vendor.com": "U0AE"}), CHANNELS=set(channels),
                      IMS={})

    def fields() -> dict:
        if request.mimetype == "application/json":
            return request.get_json(silent=True) or {}
        return {**request.args.to_dict(), **request.form.to_dict()}

    def answer(**body) -> Response:
        return Response(json.dumps(body), 200, content_type="application/json")

    @app.route("/api/<method>", methods=["GET", "POST"])
    def web_api(method):
        if request.headers.get("Authorization") != f"Bearer {token}":
            return answer(ok=False, error="invalid_auth")
        data = fields()
        if method == "auth.test":
            return answer(ok=True, user="abm-bot", team="Vendor")
        if method == "users.lookupByEmail":
            user = app.config["USERS"].get(str(data.get("email", "")).lower())
            return answer(ok=True, user={"id": user}) if user else answer(ok=False, error="users_not_found")
        if method == "conversations.open":
            user = data.get("users")
            if user not in app.config["USERS"].values():
                return answer(ok=False, error="user_not_found")
            im = app.config["IMS"].setdefault(user, f"D{user}")
            return answer(ok=True, channel={"id": im})
        if method == "chat.postMessage":
            channel = data.get("channel")
            if channel not in app.config["CHANNELS"] and channel not in app.config["IMS"].values():
                return answer(ok=False, error="channel_not_found")
            if not isinstance(data.get("text"), str) or not data["text"].strip():
                return answer(ok=False, error="no_text")
            app.config["POSTED"].append(data)
            return answer(ok=True, channel=channel, ts="1700000000.000100")
        return answer(ok=False, error="unknown_method")

    return app
