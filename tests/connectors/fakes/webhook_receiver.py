"""A receiver of the generic webhook that checks the signature as a customer's would."""

from __future__ import annotations

from flask import Flask, jsonify, request

from connectors.webhook import verify_signature


def receiver_app(secret: str, path: str = "/hooks/abm") -> Flask:
    """``app.config``: STATUS (answer after a valid signature; default 200), REFUSE (touch
    ids answered 422), RECEIVED (the JSON documents accepted)."""
    app = Flask("fake-webhook-receiver")
    app.config.update(STATUS=200, REFUSE=set(), RECEIVED=[])

    @app.post(path)
    def receive():
        if request.mimetype != "application/json":
            return jsonify(error="expected application/json"), 415
        body = request.get_data()
        if not verify_signature(secret, request.headers.get("X-ABM-Timestamp"), body,
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
