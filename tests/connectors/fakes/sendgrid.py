"""A fake SendGrid v3 API: validates Mail Send requests as SendGrid does, scriptable answers."""

from __future__ import annotations

import itertools
import json
import time

from flask import Flask, Response, jsonify, request

ALLOWED_KEYS = {"personalizations", "from", "reply_to", "reply_to_list", "subject", "content", "attachments",
                "template_id", "headers", "categories", "custom_args", "send_at", "batch_id", "asm",
                "ip_pool_name", "mail_settings", "tracking_settings"}
PERSONALIZATION_KEYS = {"to", "cc", "bcc", "from", "subject", "headers", "substitutions",
                        "dynamic_template_data", "custom_args", "send_at"}


def _error(field, message, status=400):
    return jsonify({"errors": [{"field": field, "message": message, "help": None}]}), status


def validate(body) -> tuple[str, str] | None:
    """(field, message) of the first thing SendGrid would reject, or None."""
    if not isinstance(body, dict):
        return None, "The request body must be a JSON object."
    unknown = set(body) - ALLOWED_KEYS
    if unknown:
        return sorted(unknown)[0], "Unknown field."
    sender = body.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        return "from.email", "The from object must be provided for every email send."
    ps = body.get("personalizations")
    if not isinstance(ps, list) or not 1 <= len(ps) <= 1000:
        return "personalizations", "The personalizations field must have between 1 and 1000 items."
    recipients = 0
    for i, p in enumerate(ps):
        if not isinstance(p, dict) or set(p) - PERSONALIZATION_KEYS:
            return f"personalizations.{i}", "Unknown field in personalization."
        to = p.get("to")
        if not isinstance(to, list) or not to:
            return f"personalizations.{i}.to", "The to array is required for all personalization objects."
        for j, rcpt in enumerate(to):
            if not isinstance(rcpt, dict) or "@" not in str(rcpt.get("email", "")) or set(rcpt) - {"email", "name"}:
                return f"personalizations.{i}.to.{j}.email", "Does not contain a valid address."
        recipients += len(to)
        if not (p.get("subject") or body.get("subject")):
            return f"personalizations.{i}.subject", "The subject is required."
        for name in ("custom_args", "headers"):
            values = p.get(name, {})
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                return f"personalizations.{i}.{name}", f"Invalid type. Expected: string, given: number ({name})."
    if recipients > 1000:
        return "personalizations", "Too many recipients: at most 1000 a request."
    content = body.get("content")
    if not isinstance(content, list) or not content:
        return "content", "Unless a valid template_id is provided, the content parameter is required."
    types = [c.get("type") for c in content if isinstance(c, dict)]
    if len(types) != len(content) or not all(isinstance(c.get("value"), str) and c["value"] for c in content):
        return "content", "The content value must be a string at least one character in length."
    if "text/plain" in types and types[0] != "text/plain":
        return "content", "If present, text/plain must be first, followed by text/html."
    return None


def sendgrid_app(api_key: str = "SG.good", scopes=("mail.send", "user.profile.read")) -> Flask:
    """``app.config``: SCRIPT (list of (status, json_or_text, headers) answered first),
    REJECT (addresses answered with a 400), DELAY (seconds before answering), ACCEPTED (bodies)."""
    app = Flask("fake-sendgrid")
    app.config.update(SCRIPT=[], REJECT=set(), DELAY=0.0, ACCEPTED=[])
    ids = itertools.count(1)

    @app.before_request
    def auth():
        if app.config["DELAY"]:
            time.sleep(app.config["DELAY"])
        if request.headers.get("Authorization") != f"Bearer {api_key}":
            return jsonify({"errors": [{"field": None, "message":
                                        "The provided authorization grant is invalid, expired, or revoked"}]}), 401
        if app.config["SCRIPT"]:
            status, body, headers = app.config["SCRIPT"].pop(0)
            text = body if isinstance(body, str) else json.dumps(body)
            return Response(text, status=status, headers=headers or {}, content_type="application/json")
        return None

    @app.get("/v3/scopes")
    def get_scopes():
        return jsonify({"scopes": list(scopes)})

    @app.post("/v3/mail/send")
    def mail_send():
        if request.mimetype != "application/json":
            return _error(None, "Content-Type should be application/json.", 415)
        body = request.get_json(silent=True)
        problem = validate(body)
        if problem:
            return _error(*problem)
        for i, p in enumerate(body["personalizations"]):
            for j, rcpt in enumerate(p["to"]):
                if rcpt["email"] in app.config["REJECT"]:
                    return _error(f"personalizations.{i}.to.{j}.email", "Does not contain a valid address.")
        app.config["ACCEPTED"].append(body)
        return Response("", status=202, headers={"X-Message-Id": f"msg{next(ids)}"})

    return app
