"""When and how often touches may go out, checked: the send window and the caps.

YAML -> :mod:`playbooks.model.pacing`, with located errors; the workspace settings
(``playbooks.settings``) share these forms.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

from playbooks._check import Checker, Node, describe, plain, suggest, unknown
from playbooks._shapes import SHAPES
from playbooks.model import DAYS, Cap, SendWindow

_HOURS = re.compile(r"^\s*([0-9]{2}):([0-9]{2})\s*-\s*([0-9]{2}):([0-9]{2})\s*$")
_CAP_CHANNELS = ("email", "ads", "alert", "task", "webhook")


@lru_cache(maxsize=1)
def _timezones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def parse_send_window(chk: Checker, node: Node) -> SendWindow | None:
    entries = chk.mapping(node, *SHAPES["send_window"])
    if entries is None:
        return None
    ok = True
    timezone = chk.workspace.default_timezone
    if "timezone" in entries:
        name = chk.text(entries["timezone"])
        if name is None:
            ok = False
        elif name not in _timezones():
            close = suggest(name, _timezones())
            hint = f"did you mean '{close}'?" if close else "use an IANA name such as America/New_York"
            chk.error(entries["timezone"], f"unknown time zone '{name}'; {hint}")
            ok = False
        else:
            timezone = name
    days = DAYS
    if "days" in entries:
        listed = chk.string_list(entries["days"], "days")
        if listed is None:
            ok = False
        else:
            for day, element in listed:
                if day not in DAYS:
                    chk.error(element, unknown("day", day, DAYS, listing="days"))
                    ok = False
            days = tuple(day for day in DAYS if day in {value for value, _ in listed})
    start, end = 0, 1440
    if "hours" in entries:
        hours = _hours(chk, entries["hours"])
        if hours is None:
            ok = False
        else:
            start, end = hours
    return SendWindow(timezone, days, start, end) if ok else None


def _hours(chk: Checker, node: Node) -> tuple[int, int] | None:
    value = plain(node.value)
    match = _HOURS.match(value) if isinstance(value, str) else None
    problem = None
    if not match:
        problem = f"'hours' is a quoted span such as \"09:00-17:00\", found {describe(value)}"
    else:
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            problem = f"'{value}' is not a valid span of hours (00:00 to 24:00)"
        elif start >= end:
            problem = f"the window '{value}' must end after it starts (windows across midnight are not supported)"
    if problem:
        chk.error(node, problem)
        return None
    return start, end


def parse_caps(chk: Checker, node: Node) -> tuple[Cap, ...] | None:
    """Two forms. The workspace's: ``{contact: {max: 2, per: 7d}, account: {max: 4,
    per: 7d}}`` (caps on marketing emails). The list form, for other channels:
    ``[{per: contact|account, max: N, within: DURATION, channel?: CHANNEL}]`` (no
    channel: every touch channel)."""
    if node.is_map:
        return _workspace_form_caps(chk, node)
    if not node.is_seq:
        chk.error(node, f"'caps' is a mapping such as {{contact: {{max: 2, per: 7d}}}} or a list such as "
                        f"[{{per: account, max: 4, within: 7d, channel: ads}}], found {describe(node.value)}")
        return None
    caps = []
    ok = True
    for element in node.elements():
        entries = chk.mapping(element, *SHAPES["cap"])
        if entries is None:
            ok = False
            continue
        per = plain(entries["per"].value) if "per" in entries else None
        if "per" in entries and per not in ("contact", "account"):
            chk.error(entries["per"], f"'per' is contact or account, found {describe(per)}")
            per = None
        most = chk.integer(entries["max"], low=1) if "max" in entries else None
        within = chk.duration(entries["within"]) if "within" in entries else None
        channel = None
        if "channel" in entries:
            channel = plain(entries["channel"].value)
            if channel not in _CAP_CHANNELS:
                chk.error(entries["channel"], unknown("channel", channel, _CAP_CHANNELS, listing="channels"))
                ok = False
        if per is None or most is None or within is None:
            ok = False
            continue
        caps.append(Cap(per, most, within, channel))
    return tuple(caps) if ok else None


def _workspace_form_caps(chk: Checker, node: Node) -> tuple[Cap, ...] | None:
    entries = chk.mapping(node, *SHAPES["caps.workspace"])
    if entries is None:
        return None
    caps = []
    ok = True
    for per, child in entries.items():
        fields = chk.mapping(child, *SHAPES["caps.workspace.entry"])
        if fields is None:
            ok = False
            continue
        most = chk.integer(fields["max"], low=1) if "max" in fields else None
        within = chk.duration(fields["per"]) if "per" in fields else None
        if most is None or within is None:
            ok = False
            continue
        caps.append(Cap(per, most, within, "email"))
    return tuple(caps) if ok else None

