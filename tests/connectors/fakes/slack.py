"""A fake Slack incoming-webhook endpoint: plain-string answers, as Slack gives them."""

from __future__ import annotations

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
