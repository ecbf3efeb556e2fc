"""What the site snippet reports (``POST /t/v``), trusted only as far as a browser can be.

Anyone can send this endpoint anything, so what it takes is limited:

- **A known site.** An admin lists the company's sites in the settings (``sites``: a
  name, the origins its pages are served from, and a key made by the server). The
  snippet's tag carries the key (``data-site``) and sends it; a beacon without a known
  key, from a page whose ``Origin`` (or ``Referer``) is not one of that site's
  origins, or about a URL outside them is refused (403).
- **Rate limits** per visitor id, per contact (signed link or typed email) and per
  client address, in Redis fixed windows (:data:`LIMITS`); over one, 429 and nothing
  is recorded. When Redis is down they are not checked (the event is spooled as any
  other) and the dedup keys below still hold.
- **Deduplication**: a form fill counts once per form, person and day; a visit once
  per page, visitor and ten minutes (a ``dedup_key`` the drain stores once).
- **Marked as browser-reported** (``source`` ``snippet``, ``properties.reported_by``
  ``browser``). A form fill from the browser is stored as ``browser_form_fill``, which
  is not a lead event, starts no playbook waiting for ``form_fill`` and has its own
  (lower) weight; leads come from the server-side events API and signed provider
  webhooks. An admin who accepts the risk sets ``browser_leads: true`` and browser
  form fills are stored as ``form_fill`` again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from urllib.parse import urlsplit

import redis

from abm import tracking
from abm.db import utcnow
from abm.normalize import NormalizeError, normalize_email
from abm.redis_conn import get_redis
from abm.services import events
from abm.services import settings as settings_service
from abm.services.validation import nul_path

log = logging.getLogger(__name__)

MAX_URL = 4000
#: (event type, who) -> (most events, per seconds) accepted.
LIMITS = {
    ("web_visit", "visitor"): (30, 60),
    ("web_visit", "address"): (120, 60),
    ("form_fill", "visitor"): (3, 3600),
    ("form_fill", "contact"): (3, 3600),
    ("form_fill", "address"): (10, 3600),
}
#: How long one visit of a page by a visitor counts once (seconds); a form fill: a day.
DEDUP_SECONDS = {"web_visit": 600, "form_fill": 86400}
BROWSER_FORM_FILL = "browser_form_fill"


class BeaconRefused(Exception):
    """The beacon is not recorded: ``status`` (400, 403, 429) and why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL, lower-cased; None when it has none."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default_port = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.hostname.lower()}" + (f":{port}" if port and port != default_port else "")


def site_for(key: object, page_origin: str | None) -> dict:
    """The configured site whose key is ``key`` and that serves ``page_origin``."""
    sites = settings_service.beacon_settings()["sites"]
    site = next((s for s in sites if isinstance(key, str) and s.get("key") == key), None)
    if site is None:
        raise BeaconRefused(403, "unknown site key; copy the tag from the Website snippet page")
    allowed = {origin_of(o) for o in site.get("origins", [])}
    if page_origin is None or page_origin not in allowed:
        raise BeaconRefused(403, "this page's origin is not one of the site's origins (Settings, sites)")
    return site


def allowed_origin(origin: str | None) -> bool:
    """Whether ``origin`` is one of any configured site's origins (for CORS answers)."""
    origin = origin_of(origin)
    return origin is not None and any(
        origin == origin_of(o) for s in settings_service.beacon_settings()["sites"] for o in s.get("origins", []))


def record(body: object, origin: str | None, referrer: str | None, address: str | None) -> None:
    """Check one beacon and queue its event; raises :class:`BeaconRefused`."""
    if not isinstance(body, dict) or body.get("type") not in ("web_visit", "form_fill"):
        raise BeaconRefused(400, "a beacon is a JSON object with type web_visit or form_fill")
    if nul_path(body):
        raise BeaconRefused(400, f"{nul_path(body)} contains a NUL character")
    url = body.get("url")
    if not isinstance(url, str) or len(url) > MAX_URL or not tracking.is_safe_destination(url):
        raise BeaconRefused(400, "url must be the page's http(s) address")
    page_origin = origin_of(origin) or origin_of(referrer)
    site = site_for(body.get("site"), page_origin)
    if origin_of(url) != page_origin:
        raise BeaconRefused(403, "the url is not a page of the site that sent it")
    event = _event(body, url, site)
    who = {"visitor": event.get("visitor_id"), "address": address,
           "contact": event.get("contact_id") or event.get("email")}
    event["dedup_key"] = _dedup_key(site["name"], body["type"], event, url)
    if body["type"] == "form_fill" and not settings_service.beacon_settings()["browser_leads"]:
        event["type"] = BROWSER_FORM_FILL
    if address:
        event["ip"] = address  # for account identification in the drain; see docs/identification.md
    _count_and_push(body["type"], who, event)


def _event(body: dict, url: str, site: dict) -> dict:
    visitor = str(body.get("visitor_id") or "")[:100] or None
    properties = {k: str(body[k])[:300] for k in ("title", "referrer", "form") if body.get(k)}
    properties.update(reported_by="browser", site=site["name"])
    event = {"type": body["type"], "occurred_at": utcnow().isoformat(), "url": url, "source": "snippet",
             "visitor_id": visitor, "properties": properties}
    contact_id = tracking.read("contact", body["contact"]) if isinstance(body.get("contact"), str) else None
    if isinstance(contact_id, int):
        event["contact_id"] = contact_id
    if isinstance(body.get("email"), str):
        try:
            event["email"] = normalize_email(body["email"][:320])
        except NormalizeError:
            pass
    if not ({"contact_id", "email"} & set(event)):
        # an anonymous visitor: kept (unmatched) with its visitor id until it identifies itself
        properties["host"] = urlsplit(url).hostname or ""
    return event


def _dedup_key(site: str, kind: str, event: dict, url: str) -> str:
    person = event.get("contact_id") or event.get("email") or event.get("visitor_id") or ""
    what = event["properties"].get("form", "") if kind == "form_fill" else url
    window = int(time.time()) // DEDUP_SECONDS[kind]
    digest = hashlib.sha256(f"{site}\n{kind}\n{person}\n{what}\n{window}".encode()).hexdigest()[:40]
    return f"snippet:{digest}"


#: Counts the beacon in each of its windows (KEYS[1..n-1], ARGV[i]: most, ARGV[n-1+i]:
#: seconds) and pushes it to the events queue (the last KEY, ARGV[last]) only when every
#: window has room: one round trip to Redis for the whole beacon. Returns the 1-based
#: position of the first full window, or 0 when the beacon was queued.
COUNT_AND_PUSH = """
local n = #KEYS - 1
for i = 1, n do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[n + i]) end
  if count > tonumber(ARGV[i]) then return i end
end
redis.call('RPUSH', KEYS[n + 1], ARGV[2 * n + 1])
return 0
"""


def _limit_keys(kind: str, who: dict) -> list[tuple[str, str, int, int]]:
    """(scope, key, most, seconds) of each window this beacon counts in."""
    now = int(time.time())
    out = []
    for (k, scope), (most, seconds) in LIMITS.items():
        value = who.get(scope)
        if k == kind and value:
            digest = hashlib.sha256(str(value).encode()).hexdigest()[:24]
            out.append((scope, f"abm:beacon:{kind}:{scope}:{digest}:{now // seconds}", most, seconds))
    return out


def _count_and_push(kind: str, who: dict, event: dict) -> None:
    """Count the beacon in its windows and queue it, in one Redis call; 429 when a
    window is full (nothing queued). Redis down: the limits go unchecked and the event is
    spooled, as every push is."""

    windows = _limit_keys(kind, who)
    line = events.stamp(event)
    try:
        script = _script(get_redis())
        full = script(keys=[key for _, key, _, _ in windows] + [events.QUEUE_KEY],
                      args=[most for *_, most, _ in windows] + [sec for *_, sec in windows] + [line])
    except (redis.RedisError, OSError) as exc:
        log.warning("site snippet beacon spooled, limits not checked: Redis unreachable (%s)", type(exc).__name__)
        events.spool_write([line])
        return
    if full:
        scope = windows[int(full) - 1][0]
        raise BeaconRefused(429, f"too many {kind.replace('_', ' ')}s from this {scope}; try again later")


def _script(client):
    """The registered COUNT_AND_PUSH script of this Redis client (EVALSHA, loaded once)."""
    script = getattr(client, "_abm_count_and_push", None)
    if script is None:
        script = client.register_script(COUNT_AND_PUSH)
        client._abm_count_and_push = script
    return script
