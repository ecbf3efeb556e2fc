"""Login throttling that slows a guesser down without locking the owner out.

Three counters in Redis, each with its own free attempts and then a delay that doubles
with every further attempt, up to a cap (never a lock):

- ``pair``: this email from this client address. The guesser's own address slows down
  after a few tries; the owner, elsewhere, is not touched.
- ``address``: everything from this client address (one guesser trying many emails;
  an office behind one NAT has more free attempts).
- ``email``: this email from anywhere (a guess spread over many addresses). A browser
  that has logged in to this email before carries a signed *device cookie* and is not
  held by this counter nor by ``address``, so a distributed attack on someone's email
  does not keep them out of their own account (OWASP's "device cookies").

An attempt is counted *before* the password is checked, in one Lua script that also
checks every counter's earliest next attempt, so parallel guesses cannot slip past
the counter: each gets its own number and the ones over the limit are refused. A
good login takes its attempt back (and clears ``pair``). If Redis is down, logins are
allowed (and logged): an outage must not lock everyone out.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeSerializer

from abm.redis_conn import get_redis
from abm.services import clock

log = logging.getLogger(__name__)

DEVICE_COOKIE = "abm_device"
DEVICE_DAYS = 365


@dataclass(frozen=True)
class Policy:
    free: int  # attempts before any delay
    base: float  # seconds of the first delay; doubled for each attempt after it
    cap: float  # the longest delay
    forget: int = 24 * 3600  # seconds of quiet after which the counter is forgotten


POLICIES = {
    "pair": Policy(free=5, base=1, cap=300),
    "address": Policy(free=30, base=1, cap=300),
    "email": Policy(free=10, base=1, cap=60),
}

# KEYS: one hash per counter (fields n: attempts, next: earliest next attempt in ms).
# ARGV: now_ms, then per key: free, base_ms, cap_ms, forget_s.
# Returns 0 and counts the attempt on every key, or the ms to wait and counts nothing.
_ATTEMPT = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local nxt = tonumber(redis.call('HGET', key, 'next') or '0')
  if nxt > now and nxt - now > wait then wait = nxt - now end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local a = 2 + (i - 1) * 4
  local free, base, cap, forget = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]),
                                  tonumber(ARGV[a + 3])
  local n = redis.call('HINCRBY', key, 'n', 1)
  if n > free then
    local delay = math.min(cap, base * 2 ^ math.min(n - free - 1, 40))
    redis.call('HSET', key, 'next', now + delay)
  end
  redis.call('EXPIRE', key, forget)
end
return 0
"""


def _digest(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def _policies() -> dict[str, Policy]:
    return current_app.config.get("LOGIN_THROTTLE") or POLICIES


def _keys(email: str, trusted_device: bool) -> list[tuple[str, Policy]]:
    address = request.remote_addr or "-"
    policies = _policies()
    keys = [(f"abm:login:pair:{_digest(email)}:{address}", policies["pair"])]
    if not trusted_device:
        keys += [(f"abm:login:address:{address}", policies["address"]),
                 (f"abm:login:email:{_digest(email)}", policies["email"])]
    return keys


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="abm-login-device")


def trusted_device(email: str) -> bool:
    """True when the browser's device cookie says it logged in to ``email`` before."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return False
    try:
        return _digest(email) in _serializer().loads(raw)
    except BadSignature:
        return False


def remember_device(response, email: str) -> None:
    """Add ``email`` to the browser's device cookie (after a good login)."""
    known: list[str] = []
    raw = request.cookies.get(DEVICE_COOKIE)
    if raw:
        try:
            known = list(_serializer().loads(raw))
        except BadSignature:
            known = []
    digest = _digest(email)
    known = [d for d in known if d != digest][-4:] + [digest]  # the last five accounts of this browser
    cfg = current_app.config
    response.set_cookie(DEVICE_COOKIE, _serializer().dumps(known), max_age=DEVICE_DAYS * 86400,
                        httponly=True, samesite="Lax", secure=bool(cfg.get("SESSION_COOKIE_SECURE")))


def attempt(email: str) -> int:
    """Count a login attempt for ``email`` from this client; 0 when it may go ahead, else
    the seconds to wait (nothing is counted then)."""
    keys = _keys(email, trusted_device(email))
    args: list = [int(clock.now().timestamp() * 1000)]
    for _key, p in keys:
        args += [p.free, int(p.base * 1000), int(p.cap * 1000), p.forget]
    try:
        wait_ms = int(get_redis().eval(_ATTEMPT, len(keys), *[k for k, _ in keys], *args))
    except Exception:  # noqa: BLE001 - a Redis outage must not lock everyone out
        log.warning("login throttling unavailable (Redis); allowing the attempt")
        return 0
    return math.ceil(wait_ms / 1000) if wait_ms else 0


def succeeded(email: str) -> None:
    """A good login: forget this client's failures for the email, and take the attempt
    back from the counters this client shares with others."""
    keys = _keys(email, trusted_device(email))
    try:
        pipe = get_redis().pipeline()
        pipe.delete(keys[0][0])
        for key, _policy in keys[1:]:
            pipe.hincrby(key, "n", -1)
        pipe.execute()
    except Exception:  # noqa: BLE001
        log.warning("could not record a good login (Redis)")
