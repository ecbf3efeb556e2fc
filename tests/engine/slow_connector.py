"""A test connector that sends slowly and records every call, for the fault tests.

Each touch it receives becomes one JSON line in ``path`` (appended and flushed one at
a time, after ``delay`` seconds), so a worker killed in the middle of a batch leaves
exactly what a provider would have accepted so far.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, ClassVar

from connectors.base import CHANNELS, Connector, PermanentError, RetryableError, TouchResult


class SlowLogConnector(Connector):
    type = "slowlog"
    channels = CHANNELS
    max_batch = 5
    rate_limit = (10000, 1)
    settings_schema: ClassVar[dict[str, Any]] = {
        "type": "object", "additionalProperties": False,
        "properties": {"path": {"type": "string"}, "delay": {"type": "number"}},
    }

    def send(self, batch):
        results = []
        delay = float(self.settings.get("delay", 0.05))
        with open(self.settings["path"], "a", encoding="utf-8") as fh:
            for touch in batch:
                time.sleep(delay)
                fh.write(json.dumps({"key": touch.key, "touch_id": touch.id, "pid": os.getpid()}) + "\n")
                fh.flush()
                results.append(TouchResult.success(touch, provider_id=f"slow:{touch.key}"))
        return results

    def test(self) -> str:
        return "ok"


class FlakyConnector(Connector):
    """Fails as told by ``mode``: ``retryable`` or ``permanent`` (the whole batch), or
    ``partial`` (every other touch fails permanently); records what it accepted."""

    type = "flaky"
    channels = CHANNELS
    max_batch = 100
    rate_limit = (10000, 1)
    settings_schema: ClassVar[dict[str, Any]] = {
        "type": "object", "additionalProperties": False,
        "properties": {"path": {"type": "string"}, "mode": {"type": "string"}},
    }

    def send(self, batch):
        mode = self.settings.get("mode", "ok")
        if mode == "retryable":
            raise RetryableError("provider busy (503); try later")
        if mode == "permanent":
            raise PermanentError("the API key was rejected (401); check the connector's settings")
        results = []
        with open(self.settings["path"], "a", encoding="utf-8") as fh:
            for i, touch in enumerate(batch):
                if mode == "partial" and i % 2:
                    results.append(TouchResult.failure(touch, "mailbox does not exist"))
                    continue
                fh.write(json.dumps({"key": touch.key}) + "\n")
                results.append(TouchResult.success(touch))
        return results

    def test(self) -> str:
        return "ok"


class StallingConnector(SlowLogConnector):
    """A slow log connector whose first call runs ``STALL`` (a test's function) before it
    returns: what happened in the world while the job was stalled."""

    type = "stalling"
    STALL = None

    def send(self, batch):
        stall, StallingConnector.STALL = StallingConnector.STALL, None
        results = super().send(batch)
        if stall:
            stall()
        return results
