"""Validating the workspace settings that share the playbook forms: caps and the
default send window. For the settings API and UI; same rules, same messages."""

from __future__ import annotations

from typing import Any

from playbooks import _pacing_schema
from playbooks._check import Checker, Node
from playbooks._condition_schema import parse_condition
from playbooks.model import Cap, SendWindow
from playbooks.workspace import Workspace


class SettingsError(ValueError):
    """``messages``: one ``PATH: MESSAGE`` a problem (``caps[0].max: ...``)."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


def _run(value: Any, name: str, parse, workspace: Workspace) -> Any:
    chk = Checker("settings", workspace)
    result = parse(chk, Node(value, name, 1, 1))
    if chk.errors:
        raise SettingsError([f"{error.path}: {error.message}" for error in chk.errors])
    return result


def parse_caps(value: Any) -> tuple[Cap, ...]:
    """``[{per: contact|account, max: N, within: DURATION, channel?: CHANNEL}, ...]`` as
    plain data (parsed JSON or YAML) -> caps; raises :class:`SettingsError`."""
    return _run(value, "caps", _pacing_schema.parse_caps, Workspace())


def parse_send_window(value: Any, default_timezone: str = "UTC") -> SendWindow:
    """``{timezone?, days?, hours?}`` -> a send window; raises :class:`SettingsError`."""
    return _run(value, "send_window", _pacing_schema.parse_send_window, Workspace(default_timezone=default_timezone))


def parse_account_condition(value: Any, name: str, stages: list[str], roles: list[str]):
    """An account condition of the playbook language kept in settings (a fit rule's
    ``when``) -> a condition; raises :class:`SettingsError` with located messages."""
    return _run(value, name, parse_condition, Workspace(stages=list(stages), roles=list(roles)))
