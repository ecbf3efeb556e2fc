"""The HTTP helper every HTTP connector shares.

It turns the providers' many ways of failing into the two errors of the contract, so
that each connector module only says what its provider speaks::

    from connectors.http import HttpClient

    client = HttpClient(
        "SendGrid", self.settings.get("base_url", "https://api.sendgrid.com"),
        headers={"Authorization": f"Bearer {key}"},
        secrets=[key],                       # redacted from every error message
        reset_header="X-RateLimit-Reset",     # the provider's own backoff header
    )
    response = client.post("/v3/mail/send", json=body, expect=(202,))

What ``request`` does (and ``get``/``post``/``put``/``patch``/``delete``, which call it):

- A :class:`requests.Session` per client, with ``User-Agent`` naming the product
  (:data:`connectors.base.USER_AGENT`), ``Accept: application/json`` and the
  caller's headers; a (connect, read) timeout on every call (:data:`DEFAULT_TIMEOUT`,
  overridable per client and per call).
- ``path`` is joined to ``base_url`` (``""`` means ``base_url`` exactly as given, for
  connectors whose whole URL is the endpoint) unless it is already an absolute URL (paging
  links such as Salesforce's ``nextRecordsUrl`` are relative to the host: pass them
  as they come, a path that starts with ``/`` is joined to the host of ``base_url``
  when ``join="host"``).
- Before the defaults, an optional ``classify(response)`` hook may return a
  :class:`ConnectorError` to raise (or ``None`` to fall through): for providers that
  signal throttling in a 400 body (Meta's codes 4/17/613) or "not ready yet" as a
  404 (LinkedIn just after creating a list).
- 429 and every 5xx -> :class:`RetryableError` whose ``retry_after`` is taken from
  ``Retry-After`` (seconds or an HTTP date) or else from the ``reset_header`` the
  caller named (a value above 10^9 is read as epoch seconds, anything smaller as a
  number of seconds to wait); ``None`` when neither is present.
- Any other status outside ``expect`` (by default any 2xx) -> :class:`PermanentError`
  with the provider's own message, found by :func:`provider_message` in the common
  body shapes (``{"errors": [{"message", "field"}]}``, ``{"error": {"message"}}``,
  ``{"message"}``, ``[{"message", "errorCode"}]``, a plain string).
- ``requests`` timeouts and connection errors -> :class:`RetryableError`.

Targets: unless ``ABM_ALLOW_PRIVATE_URLS`` is set, a client connects only to public
addresses. :func:`check_url` refuses a URL whose host is, or resolves to, a loopback,
private, link-local (cloud metadata at 169.254.169.254), shared, reserved or multicast
address (:func:`unsafe_reason`); the services call it when a connector is saved. At
request time the address each connection actually reached is checked again (the
session's adapter, :class:`GuardedAdapter`), so a name that resolves elsewhere later
(DNS rebinding) or a redirect to an internal host is refused too: a
:class:`PermanentError` that names the host, never the internal answer.

Secrets: messages never carry a request URL's path or query (a Slack webhook URL and
Meta's ``access_token`` parameter are secrets), only the scheme, host and port, and
every string given in ``secrets`` is replaced by ``***`` in every message this
module produces. Nothing here logs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from connectors.base import USER_AGENT, ConnectorError, PermanentError, RetryableError

#: (connect, read) seconds.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

#: The longest provider message kept in an error (bodies can be whole HTML pages, or
#: an internal service's answer): a short excerpt, control characters and runs of
#: white space removed.
MAX_MESSAGE = 200
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
#: The environment variable that lets connectors reach private addresses (tests, demo,
#: a provider's sandbox on the local network).
ALLOW_PRIVATE_ENV = "ABM_ALLOW_PRIVATE_URLS"


class UnsafeTarget(PermanentError):
    """A URL whose host is not a public address."""


def private_urls_allowed() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def unsafe_reason(address: str) -> str | None:
    """Why ``address`` (an IP address) is no place for a connector to call, or None when
    it is a public address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped or ip.sixtofour):
        ip = ip.ipv4_mapped or ip.sixtofour
    for test, name in ((ip.is_loopback, "loopback"), (ip.is_link_local, "link-local (cloud metadata)"),
                       (ip.is_private, "private"), (ip.is_multicast, "multicast"),
                       (ip.is_unspecified, "unspecified"), (ip.is_reserved, "reserved")):
        if test:
            return f"a {name} address"
    if not ip.is_global:
        return "not a public address"
    return None


def check_url(url: str) -> None:
    """Raise :class:`UnsafeTarget` when ``url``'s host is, or resolves to, an address
    that :func:`unsafe_reason` refuses (nothing when private URLs are allowed). A name
    that does not resolve now passes: the request-time check still holds."""
    if private_urls_allowed():
        return
    host = urlsplit(url).hostname
    if not host:
        raise UnsafeTarget(f"{url!r} has no host")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError, OSError):
        return
    for address in sorted(addresses):
        reason = unsafe_reason(address)
        if reason:
            raise UnsafeTarget(f"{host} is {reason} ({address}); connectors may call public addresses only "
                               f"(set {ALLOW_PRIVATE_ENV}=1 to allow private ones)")


def _checked_socket(sock: socket.socket, host: str) -> socket.socket:
    reason = unsafe_reason(sock.getpeername()[0])
    if reason and not private_urls_allowed():
        sock.close()
        raise UnsafeTarget(f"{host} is {reason}; connectors may call public addresses only "
                           f"(set {ALLOW_PRIVATE_ENV}=1 to allow private ones)")
    return sock


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _checked_socket(super()._new_conn(), self.host)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _checked_socket(super()._new_conn(), self.host)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """requests' adapter whose connections check the address they reached."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


def excerpt(text: str, limit: int = MAX_MESSAGE) -> str:
    """A short, cleaned excerpt of a remote answer: one line of printable text."""
    cleaned = " ".join(_UNPRINTABLE.sub(" ", text or "").split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"

Classifier = Callable[[requests.Response], ConnectorError | None]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta seconds or an HTTP date."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a rate-limit reset header: epoch seconds or a delta."""
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if number > 1e9:
        now = time.time() if now is None else now
        return max(0.0, number - now)
    return max(0.0, number)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every non-empty secret in ``text`` by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), "***")
    return text


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: the part of it that is safe to show."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _first_message(data: Any) -> str | None:
    if isinstance(data, str):
        return data.strip() or None
    if isinstance(data, list):
        messages = [m for m in (_first_message(item) for item in data) if m]
        return "; ".join(messages) if messages else None
    if not isinstance(data, Mapping):
        return None
    if "errors" in data and data["errors"]:
        return _first_message(data["errors"])
    if "error" in data and data["error"]:
        err = data["error"]
        if isinstance(err, Mapping):
            inner = _first_message(err)
            desc = data.get("error_description")
            return f"{inner}: {desc}" if inner and desc else inner or desc
        return str(err) + (f": {data['error_description']}" if data.get("error_description") else "")
    message = data.get("message") or data.get("error_description") or data.get("detail")
    if not message:
        return None
    field = data.get("field")
    code = data.get("errorCode") or data.get("errorType") or data.get("code")
    text = str(message)
    if field:
        text = f"{field}: {text}"
    if code and str(code) not in text:
        text = f"{text} ({code})"
    return text


def provider_message(response: requests.Response) -> str:
    """The provider's own words for an error response, shortened; the status if none."""
    body = response.text or ""
    message = None
    try:
        message = _first_message(json.loads(body)) if body.strip() else None
    except ValueError:
        stripped = body.strip()
        if stripped and not stripped.lstrip().startswith("<"):
            message = stripped
    if not message:
        message = f"HTTP {response.status_code} {response.reason or ''}".strip()
    return excerpt(message)


def error_for_response(
    response: requests.Response,
    provider: str,
    *,
    reset_header: str | None = None,
    secrets: Iterable[str | None] = (),
) -> ConnectorError:
    """The contract's error for a non-success response (429/5xx retryable, else permanent)."""
    status = response.status_code
    text = redact(provider_message(response), secrets)
    said = "" if text.startswith(f"HTTP {status}") else f": {text}"
    label = f"HTTP {status} {response.reason}".strip() if not said else f"HTTP {status}"
    if status == 429 or status >= 500:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        if wait is None and reset_header:
            wait = parse_reset(response.headers.get(reset_header))
        what = "rate limited" if status == 429 else "unavailable"
        hint = f"; retry in {wait:.0f}s" if wait is not None else "; retry later"
        return RetryableError(f"{provider} {what} ({label}){said}{hint}", retry_after=wait)
    if status in (401, 403):
        return PermanentError(
            f"{provider} refused the credentials ({label}){said}; check the connector's settings"
        )
    return PermanentError(f"{provider} rejected the request ({label}){said}")


class HttpClient:
    """A session bound to one provider: base URL, headers, timeouts and secrets.

    ``provider`` names the provider in messages ("SendGrid"). ``secrets`` are
    redacted from messages; the client adds nothing else to them.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
        secrets: Iterable[str | None] = (),
        reset_header: str | None = None,
        session: requests.Session | None = None,
    ):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.endpoint = base_url
        self.timeout = timeout
        self.secrets = [s for s in secrets if s]
        self.reset_header = reset_header
        self.session = session or requests.Session()
        guard = GuardedAdapter()
        self.session.mount("http://", guard)
        self.session.mount("https://", guard)
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        if headers:
            self.session.headers.update(headers)

    def url(self, path: str, join: str = "base") -> str:
        """Absolute URL for ``path``: absolute URLs pass; ``join="host"`` joins to the host only."""
        if path.startswith(("http://", "https://")):
            return path
        if not path:
            return self.endpoint
        if join == "host":
            return urljoin(self.base_url + "/", path)
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        expect: Iterable[int] | None = None,
        classify: Classifier | None = None,
        timeout: tuple[float, float] | float | None = None,
        join: str = "base",
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request; return the response when its status is expected, else raise."""
        url = self.url(path, join)
        where = origin(url)
        try:
            response = self.session.request(method, url, timeout=timeout or self.timeout, **kwargs)
        except UnsafeTarget:
            raise
        except requests.Timeout as exc:
            kind = "connecting to" if isinstance(exc, requests.ConnectTimeout) else "waiting for"
            raise RetryableError(f"{self.provider}: timed out {kind} {where}; retry later") from None
        except requests.ConnectionError:
            raise RetryableError(f"{self.provider}: could not connect to {where}; retry later") from None
        except requests.RequestException as exc:
            raise PermanentError(
                f"{self.provider}: bad request to {where} ({type(exc).__name__}); check the connector's settings"
            ) from None
        if classify is not None:
            special = classify(response)
            if special is not None:
                special.args = (redact(str(special), self.secrets),)
                raise special
        ok = (200 <= response.status_code < 300) if expect is None else response.status_code in set(expect)
        if ok:
            return response
        raise error_for_response(
            response, self.provider, reset_header=self.reset_header, secrets=self.secrets
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
