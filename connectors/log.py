"""The ``log`` connector: records what it would send; serves every channel, always succeeds.

For the demo and for tests. Each touch becomes one JSON line (appended to the file
named by the optional ``path`` setting) and one record kept in memory, the last
``keep`` per connector name, readable with :meth:`LogConnector.recorded` so a test or
the demo can count what arrived without a provider. Records are shared by every
instance of the same connector name in this process (workers build a connector per
job).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import CHANNELS, Connector, PermanentError, Touch, TouchResult


class LogConnector(Connector):
    type = "log"
    channels = CHANNELS
    max_batch = 1000
    rate_limit = (10000, 1)
    settings_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Log (records what it would send)",
        "properties": {
            "path": {"type": "string", "minLength": 1,
                     "description": "A file to append one JSON line per touch to (optional)."},
            "keep": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000,
                     "description": "How many records to keep in memory."},
        },
        "additionalProperties": False,
    }

    _records: ClassVar[dict[str, deque[dict[str, Any]]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def recorded(cls, name: str) -> list[dict[str, Any]]:
        """The records kept in memory for the connector called ``name``, oldest first."""
        with cls._lock:
            return list(cls._records.get(name, ()))

    @classmethod
    def clear(cls, name: str | None = None) -> None:
        with cls._lock:
            if name is None:
                cls._records.clear()
            else:
                cls._records.pop(name, None)

    @staticmethod
    def record_for(name: str, touch: Touch) -> dict[str, Any]:
        contact = touch.contact or {}
        return {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "connector": name,
            "touch_id": touch.id,
            "key": touch.key,
            "kind": touch.kind,
            "channel": touch.channel,
            "account": touch.account.get("domain") or touch.account.get("name"),
            "to": touch.payload.get("to") if isinstance(touch.payload.get("to"), str) else contact.get("email"),
            "payload": dict(touch.payload),
        }

    def send(self, batch: list[Touch]) -> list[TouchResult]:
        records = [self.record_for(self.name, touch) for touch in batch]
        path = self.settings.get("path")
        if path:
            lines = "".join(json.dumps(r, default=str, sort_keys=True) + "\n" for r in records)
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(lines)
            except OSError as exc:
                raise PermanentError(f"log connector {self.name!r}: cannot append to {path}: {exc.strerror}") from None
        keep = int(self.settings.get("keep", 1000))
        with self._lock:
            kept = self._records.get(self.name)
            if kept is None or kept.maxlen != keep:
                kept = self._records[self.name] = deque(kept or (), maxlen=keep)
            kept.extend(records)
        return [TouchResult.success(touch, provider_id=f"log:{touch.key}") for touch in batch]

    def test(self) -> str:
        path = self.settings.get("path")
        if not path:
            return "touches are recorded in memory only"
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise PermanentError(
                f"log connector {self.name!r}: cannot append to {path} ({exc.strerror}); choose another path"
            ) from None
        return f"touches are appended to {path}"
