"""A receiver of the generic webhook that checks the signature as a customer's would: with
the Standard Webhooks reference library (``standardwebhooks``), or, for receivers of the
former scheme, with :func:`connectors.webhook.verify_signature`."""

from __future__ import annotations

from flask import Flask, jsonify, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors.webhook import verify_signature


def standard_verifier(secret: str) -> Webhook:
    """The reference library's verifier for a secret, given as Standard Webhooks documents it."""
    return Webhook(secret) if secret.startswith("whsec_") else Webhook(secret.encode("utf-8"))


def receiver_app(secret: str, path: str = "/hooks/abm", scheme: str = "standard-webhooks") -> Flask:
    """``app.config``: STATUS (answer after a valid signature; default 200), REFUSE (touch
    ids answered 422), RECEIVED (the JSON documents accepted)."""
    app = Flask("fake-webhook-receiver")
    app.config.update(STATUS=200, REFUSE=set(), RECEIVED=[])

    @app.post(path)
    def receive():
        if request.mimetype != "application/json":
            return jsonify(error="expected application/json"), 415
        body = request.get_data()
        if scheme == "standard-webhooks":
            try:
                standard_verifier(secret).verify(body, dict(request.headers))
            except WebhookVerificationError as exc:
                return jsonify(error=f"bad signature: {exc}"), 401
        elif not verify_signature(secret, request.headers.get("X-ABM-Timestamp"), body,
                                  request.headers.get("X-ABM-Signature")):
            return jsonify(error="bad signature"), 401
        document = request.get_json()
        if document.get("touch_id") in app.config["REFUSE"]:
            return jsonify(error=f"touch {document['touch_id']} is not wanted"), 422
        if app.config["STATUS"] >= 300:
            return jsonify(error="scripted failure"), app.config["STATUS"]
        app.config["RECEIVED"].append(document)
        return jsonify(received=True), app.config["STATUS"], {"X-Request-Id": f"r{len(app.config['RECEIVED'])}"}

    return app
