"""Signed tracking links: the open pixel, click redirects, unsubscribe links, visitor ids.

Every token is signed with the app's secret (itsdangerous). A forged or tampered
token is refused: it records nothing, and a click never redirects anywhere that its
signed token does not name. Tokens carry ids only, never an email.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes
from itsdangerous.signer import HMACAlgorithm

from connectors.email_message import tracked_links

#: The query parameter a click adds to its destination so the site snippet knows the visitor.
CONTACT_PARAM = "abm_c"


class _OneSigner:
    """Signs in a few microseconds tokens that itsdangerous reads (its own ``loads``).

    The dispatcher signs an unsubscribe link for every email and a worker an open and a
    click token: itsdangerous' ``dumps`` costs about 30 µs a token (a key derived, an
    HMAC set up and a zlib stream opened every time). Here the keyed HMAC is made once
    and copied per token, and short payloads (ids) are not offered to zlib, which could
    save them a few bytes at most. The tokens are the same bytes as itsdangerous' where
    it would not compress, and its ``loads`` reads both forms; a salt other than the
    serializer's, a non-HMAC signer or a long payload takes itsdangerous' own path.
    """

    #: JSON payloads this long or longer go through itsdangerous (and zlib).
    SHORT_PAYLOAD = 48

    def make_signer(self, salt=None):
        if salt is not None and salt != self.salt:
            return super().make_signer(salt)
        signer = self.__dict__.get("_signer")
        if signer is None:
            signer = self._signer = super().make_signer(salt)
        return signer

    def _keyed_mac(self):
        mac = self.__dict__.get("_mac")
        if mac is None:
            signer = self.make_signer()
            if not isinstance(signer.algorithm, HMACAlgorithm):
                return None
            mac = self._mac = hmac.new(signer.derive_key(), digestmod=signer.algorithm.digest_method)
        return mac

    def dumps(self, obj, salt=None):
        mac = self._keyed_mac() if salt is None or salt == self.salt else None
        raw = _compact_json(obj).encode() if mac is not None else b""
        if mac is None or len(raw) >= self.SHORT_PAYLOAD:
            return super().dumps(obj, salt)
        value = base64_encode(raw)
        if self.timed:
            value += b"." + base64_encode(int_to_bytes(int(time.time())))
        signature = mac.copy()
        signature.update(value)
        return (value + b"." + base64_encode(signature.digest())).decode("ascii")


#: itsdangerous' JSON (compact separators), with its encoder made once.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


class _Serializer(_OneSigner, URLSafeSerializer):
    timed = False


class _TimedSerializer(_OneSigner, URLSafeTimedSerializer):
    timed = True


@functools.lru_cache(maxsize=32)
def _serializer(secret_key, salt: str, timed: bool = False) -> URLSafeSerializer:
    """One serializer per secret and salt, made once."""
    return (_TimedSerializer if timed else _Serializer)(secret_key, salt=salt)


def _signer(salt: str, secret_key=None) -> URLSafeSerializer:
    return _serializer(current_app.config["SECRET_KEY"] if secret_key is None else secret_key, salt)


def _base_url() -> str:
    return current_app.config.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/")


def open_token(touch_id: int, contact_id: int | None, account_id: int) -> str:
    return _signer("open").dumps([touch_id, contact_id, account_id])


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def links_in(html: str) -> list[str]:
    """The http(s) links of an email's HTML, as the message builder rewrites them."""
    return tracked_links(html)


def click_token(touch_id: int, contact_id: int | None, account_id: int, urls: list[str]) -> str:
    """A token naming the touch and, by digest, every URL it may redirect to."""
    return _signer("click").dumps([touch_id, contact_id, account_id, [url_digest(u) for u in urls]])


def contact_token(contact_id: int) -> str:
    return _signer("contact").dumps(contact_id)


def sign(kind: str, value) -> str:
    """A token of ``kind`` carrying ``value`` (JSON), signed with the app's secret: what
    :func:`read` gives back, and nothing edited."""
    return _signer(kind).dumps(value)


def read(kind: str, token: str, secret_key=None):
    """The signed value of a token of ``kind`` (open, click, contact), or None if forged.
    ``secret_key``: the app's, for a caller outside an app context."""
    try:
        return _signer(kind, secret_key).loads(token)
    except BadSignature:
        return None


def read_open(token: str, secret_key=None) -> tuple[int, int | None, int] | None:
    """(touch, contact, account) of a genuine open-pixel token, or None."""
    value = read("open", token, secret_key)
    if isinstance(value, list) and len(value) == 3:
        return value[0], value[1], value[2]
    return None


def unsubscribe_token(contact_id: int | str) -> str:
    """The token of ``/u/{token}``; it does not expire (mail stays in inboxes for years)."""
    return _serializer(current_app.config["SECRET_KEY"], "unsubscribe", timed=True).dumps(contact_id)


def read_unsubscribe(token: str) -> int | str | None:
    """The contact id a genuine token names, ``"owner:<account id>"`` for an email sent to an
    account's owner (a person on the sales side), or None for a forged token."""
    try:
        value = _serializer(current_app.config["SECRET_KEY"], "unsubscribe", timed=True).loads(token)
    except BadSignature:
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.startswith("owner:")):
        return value
    return None


def unsubscribe_url(contact_id: int | str) -> str:
    """``/u/{token}`` for a contact id, or ``"owner:<account id>"`` for an account's owner."""
    return f"{_base_url()}/u/{unsubscribe_token(contact_id)}"


def tracking_for_email(touch_id: int, contact_id: int | None, account_id: int, html: str) -> dict:
    """The ``tracking`` entry of an email touch's payload, for the message builder.

    ``open_url`` is the pixel. ``click_url_template`` has a ``{url}`` placeholder that
    the builder fills with each original link, URL-quoted; the token's signature covers
    the digests of exactly the links this email holds, so ``/t/c/`` redirects to those
    and to nothing else.
    """
    base = _base_url()
    token = click_token(touch_id, contact_id, account_id, links_in(html))
    return {"open_url": f"{base}/t/o/{open_token(touch_id, contact_id, account_id)}.gif",
            "click_url_template": f"{base}/t/c/{token}?u={{url}}"}


def click_destination(token: str, url: str | None) -> tuple[list, str] | None:
    """(the signed [touch, contact, account], url) when the token is genuine and names ``url``."""
    value = read("click", token)
    if not (isinstance(value, list) and len(value) == 4 and url and is_safe_destination(url)):
        return None
    if url_digest(url) not in value[3]:
        return None
    return value[:3], url


def with_contact_param(url: str, contact_id: int | None) -> str:
    """The destination of a click, with the signed contact id the site snippet picks up."""
    if contact_id is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != CONTACT_PARAM]
    query.append((CONTACT_PARAM, contact_token(contact_id)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def is_safe_destination(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
