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

Secrets: messages never carry a request URL's path or query (a Slack webhook URL and
Meta's ``access_token`` parameter are secrets), only the scheme, host and port, and
every string given in ``secrets`` is replaced by ``***`` in every message this
module produces. Nothing here logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from connectors.base import USER_AGENT, ConnectorError, PermanentError, RetryableError

#: (connect, read) seconds.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

#: The longest provider message kept in an error (bodies can be whole HTML pages).
MAX_MESSAGE = 300

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
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return message


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
