"""A strict Content-Security-Policy on every page, with a fresh nonce per request.

A script runs only if its tag carries this request's nonce
(``<script nonce="{{ csp_nonce() }}">``, inline or ``src=``), so an injected tag never
runs, not even one pointing at a file of this site; ``<style>`` blocks need the nonce
too (stylesheets of this site load as they are). Inline event handlers (``onclick=``) and
``javascript:`` URLs never run: pages wire behaviour in ``abm/static/js/app.js`` with
``data-*`` attributes. ``style="..."`` attributes are allowed (``style-src-attr``): the
charts and bars size themselves with them, and a style attribute cannot run code.
A view that sets its own policy (the outbox's sandboxed email HTML) keeps it.
"""

from __future__ import annotations

import secrets

from flask import request

HEADER = "Content-Security-Policy"


def csp_nonce() -> str:
    """This request's nonce (made on first use; kept in the request's environ, which,
    unlike ``g``, never outlives the request)."""
    return request.environ.setdefault("abm.csp_nonce", secrets.token_urlsafe(18))


def policy(nonce: str) -> str:
    return "; ".join([
        "default-src 'self'",
        f"script-src 'nonce-{nonce}'",
        f"style-src 'self' 'nonce-{nonce}'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ])


def init_app(app) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _content_security_policy(response):
        if response.mimetype == "text/html" and HEADER not in response.headers:
            response.headers[HEADER] = policy(csp_nonce())
        return response
