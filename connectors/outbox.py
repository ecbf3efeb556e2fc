"""The ``outbox`` connector: emails written as real ``.eml`` files instead of sent.

For the demo and for tests. Each email (or alert) touch becomes the complete MIME
message that ``smtp`` would send (same builder, :mod:`connectors.email_message`),
written to ``<directory>/<eml_name(touch key)>.eml``; the web UI lists the ``*.eml``
files of that directory (temporary files start with a dot and end in ``.part``). The
directory is the ``directory`` setting, else the product's ``outbox_dir``
(:class:`connectors.base.ConnectorContext`). Writing is atomic (a temporary file
renamed into place) and a touch sent twice overwrites its own file, so the outbox
never shows a half-written or duplicated email.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import Connector, PermanentError, Touch, TouchResult
from connectors.email_message import MessageError, build_for_touch

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def eml_name(key: str) -> str:
    """The file name of a touch's email: its key with anything unsafe replaced by ``_``."""
    return _UNSAFE.sub("_", key).strip("._") + ".eml"


class OutboxConnector(Connector):
    type = "outbox"
    channels = ("email", "alert")
    max_batch = 500
    rate_limit = (1000, 1)
    settings_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Outbox (emails written as .eml files)",
        "properties": {
            "directory": {"type": "string", "minLength": 1,
                          "description": "Where to write the .eml files; the product's outbox folder when left out."},
            "from_email": {"type": "string", "format": "email", "default": "abm@example.com"},
            "from_name": {"type": "string"},
            "reply_to": {"type": "string", "format": "email"},
            "unsubscribe_mailbox": {"type": "string", "format": "email"},
            "tracking": {"type": "boolean", "default": True},
        },
        "additionalProperties": False,
    }

    @property
    def directory(self) -> Path:
        where = self.settings.get("directory") or self.context.outbox_dir
        if not where:
            raise PermanentError(
                f"outbox connector {self.name!r}: no directory; set 'directory' or the product's outbox folder"
            )
        return Path(where)

    def _message_settings(self) -> dict[str, Any]:
        return {
            "from_email": self.settings.get("from_email", "abm@example.com"),
            "from_name": self.settings.get("from_name"),
            "reply_to": self.settings.get("reply_to"),
            "unsubscribe_mailbox": self.settings.get("unsubscribe_mailbox"),
            "track": self.settings.get("tracking", True),
        }

    def send(self, batch: list[Touch]) -> list[TouchResult]:
        directory = self.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermanentError(f"outbox connector {self.name!r}: cannot create {directory}: {exc.strerror}") from None
        settings = self._message_settings()
        results = []
        for touch in batch:
            try:
                message = build_for_touch(touch, **settings)
            except MessageError as exc:
                results.append(TouchResult.failure(touch, str(exc)))
                continue
            target = directory / eml_name(touch.key)
            self._write(target, bytes(message))
            results.append(TouchResult.success(touch, provider_id=str(message["Message-ID"])))
        return results

    def _write(self, target: Path, data: bytes) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except OSError as exc:
            raise PermanentError(f"outbox connector {self.name!r}: cannot write {target}: {exc.strerror}") from None

    def test(self) -> str:
        directory = self.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
                pass
        except OSError as exc:
            raise PermanentError(
                f"outbox connector {self.name!r}: {directory} is not writable ({exc.strerror}); "
                "choose another directory or fix its permissions"
            ) from None
        return f"emails will be written to {directory}"
