"""Operational metrics, in Prometheus' format (``abm metrics``, docs/operations.md).

Workers are many processes on many hosts, so what they count lives in Redis (a few hash
fields incremented per provider call, in one pipeline); what can be read at scrape time
(queue depths, the drain's backlog, postponed touches) is read then. :class:`Collector`
turns both into metric families for ``prometheus_client``.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

COUNTS_KEY = "abm:metrics:touches"   # "<connector>|<sent|failed|retry>" -> touches
LAG_KEY = "abm:metrics:lag"           # "<bucket>" -> touches sent within it; "sum", "count"
WAITS_KEY = "abm:metrics:ratelimit"   # "<connector>|count", "<connector>|seconds"
RECOVERED_KEY = "abm:metrics:recovered"
#: Upper bounds (seconds) of the due-to-sent lag histogram.
LAG_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)


def record_call(redis, connector: str, counts: dict, lags: list[float], waited: float) -> None:
    """What a job's provider calls did (since the last record): touches sent, failed and
    released for a retry, the lag of those sent, and how long they waited for their rate
    limit."""
    pipe = redis.pipeline(transaction=False)
    for outcome in ("sent", "failed", "retry"):
        if counts.get(outcome):
            pipe.hincrby(COUNTS_KEY, f"{connector}|{outcome}", counts[outcome])
    buckets = Counter(next((str(b) for b in LAG_BUCKETS if lag <= b), "+Inf") for lag in lags)
    for bucket, count in buckets.items():
        pipe.hincrby(LAG_KEY, bucket, count)
    if lags:
        pipe.hincrbyfloat(LAG_KEY, "sum", sum(lags))
        pipe.hincrby(LAG_KEY, "count", len(lags))
    if waited > 0:
        pipe.hincrby(WAITS_KEY, f"{connector}|count", 1)
        pipe.hincrbyfloat(WAITS_KEY, f"{connector}|seconds", waited)
    pipe.execute()


def record_recovered(redis, count: int) -> None:
    if count:
        redis.incrby(RECOVERED_KEY, count)


def _split(mapping: dict) -> dict[tuple[str, str], float]:
    out = {}
    for field, value in mapping.items():
        name, _, what = field.decode().rpartition("|")
        out[(name, what)] = float(value)
    return out


class Collector:
    """The metric families, read from Redis and (through ``gauges``) the database at each scrape.

    ``gauges()`` returns ``{"queues": {name: depth}, "backlog": n, "postponed": {connector: n}}``."""

    def __init__(self, redis, gauges):
        self.redis = redis
        self.gauges = gauges

    def collect(self):
        counts = _split(self.redis.hgetall(COUNTS_KEY))
        for outcome, help_text in (("sent", "Touches the provider accepted"),
                                   ("failed", "Touches failed for good (the provider's message is on the touch)"),
                                   ("retry", "Touches released for a retry (Retry-After or backoff)")):
            family = CounterMetricFamily(f"abm_touches_{'retried' if outcome == 'retry' else outcome}",
                                         help_text, labels=["connector"])
            for (connector, what), value in sorted(counts.items()):
                if what == outcome:
                    family.add_metric([connector], value)
            yield family
        yield from self._lag()
        waits = _split(self.redis.hgetall(WAITS_KEY))
        count = CounterMetricFamily("abm_ratelimit_waits", "Provider calls that waited for their token bucket",
                                    labels=["connector"])
        seconds = CounterMetricFamily("abm_ratelimit_wait_seconds", "Time provider calls waited for their bucket",
                                      labels=["connector"])
        for (connector, what), value in sorted(waits.items()):
            (count if what == "count" else seconds).add_metric([connector], value)
        yield count
        yield seconds
        yield CounterMetricFamily("abm_leases_recovered", "Touches recovered from dead workers or lost jobs",
                                  value=float(self.redis.get(RECOVERED_KEY) or 0))
        yield from self._gauges()

    def _lag(self):
        raw = {k.decode(): float(v) for k, v in self.redis.hgetall(LAG_KEY).items()}
        running, buckets = 0.0, []
        for bound in (*(str(b) for b in LAG_BUCKETS), "+Inf"):
            running += raw.get(bound, 0.0)
            buckets.append((bound, running))
        yield HistogramMetricFamily("abm_touch_lag_seconds", "From a touch's due time to the provider accepting it",
                                    buckets=buckets, sum_value=raw.get("sum", 0.0))

    def _gauges(self):
        now = self.gauges()
        depth = GaugeMetricFamily("abm_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        for name, value in sorted(now["queues"].items()):
            depth.add_metric([name], value)
        yield depth
        yield GaugeMetricFamily("abm_drain_backlog", "Engagement events waiting for the drain", value=now["backlog"])
        postponed = GaugeMetricFamily("abm_touches_postponed", "Touches postponed by a frequency cap, not yet due",
                                      labels=["connector"])
        for connector, value in sorted(now["postponed"].items()):
            postponed.add_metric([connector or ""], value)
        yield postponed
