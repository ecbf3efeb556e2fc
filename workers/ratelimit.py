"""Rate limits per provider call, shared by every worker: a token bucket in Redis.

A connector's limit is ``calls`` per ``seconds`` (its settings' ``rate_limit``, else the
type's documented pace). The bucket holds at most ``calls`` tokens and refills at
``calls / seconds`` a second; every provider call takes one. Taking is one Lua script
run by Redis (atomic across workers and hosts, on Redis' own clock): it always takes the
token and answers how long the caller must wait before using it, so callers queue in
the order they asked, and nobody polls. A worker killed while waiting holds nothing: its
token was spent, the bucket refills as usual.

The bucket's key is what the provider counts a call against, ``rate_scope_of(call)``, when
that is shared between connectors or differs between calls (a Slack webhook's channel, a
Slack bot's channel or direct message, a Meta ad account), else the connector's name: two
Slack channels are paced apart, and a busy one does not slow the other.
"""

from __future__ import annotations

import time

from abm.redis_conn import get_redis

#: KEYS[1]: the bucket. ARGV: capacity, refill per second, tokens taken. Returns the wait
#: in seconds (a string: Lua numbers become integers on their way out).
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
tokens = tokens - n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
if tokens >= 0 then
  return '0'
end
return tostring(-tokens / rate)
"""

#: Limits this fast are not worth a Redis round trip per call.
UNLIMITED_PER_SECOND = 10000

_script = None


def bucket_key(connector, call=None) -> str:
    """The bucket a provider call takes its token from: what the provider counts it against
    (``rate_scope_of(call)``: a Slack channel, a bot's direct message, a Meta ad account),
    else the connector's own."""
    scope = connector.rate_scope() if call is None else connector.rate_scope_of(call)
    return f"abm:bucket:{scope or connector.name}"


def take(key: str, calls: int, seconds: int, n: int = 1, connection=None) -> float:
    """Take ``n`` calls from the bucket ``key``; returns the seconds to wait before making them."""
    global _script
    connection = connection or get_redis()
    if _script is None or _script.registered_client is not connection:
        _script = connection.register_script(_TAKE)
    return float(_script(keys=[key], args=[max(calls, 1), max(calls, 1) / max(seconds, 1), n]))


def acquire(key: str, calls: int, seconds: int, n: int = 1, sleep=time.sleep) -> float:
    """Wait for ``n`` calls' tokens; returns how long it waited."""
    if calls / max(seconds, 1) >= UNLIMITED_PER_SECOND:
        return 0.0
    wait = take(key, calls, seconds, n)
    if wait > 0:
        sleep(wait)
    return wait


def tokens_at_once(calls: int, seconds: int, remaining: int) -> int:
    """How many calls' tokens a job takes in one round trip: a tenth of a second's worth
    of a fast connector's pace (one SMTP message a call at 1,000/s would otherwise pay a
    Redis round trip per message), one for slow ones, never more than it has calls left."""
    return max(1, min(remaining, int(calls / max(seconds, 1) / 10)))
