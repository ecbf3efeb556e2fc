"""The settings page's form: settings to form fields, fields back to a change, and the
service's validation details back onto the fields they concern.

Lists (stages, roles) are edited one item a line; the rest are plain inputs named by
their path in the settings document (``thresholds.warm``, ``caps.contact.per``, ...).
"""

from __future__ import annotations

import re

from abm.scoring import event_weight, url_rule
from abm.services import settings as settings_service
from abm.services import users as users_service

LIST_FIELDS = ("stages", "roles")
NUMBER_FIELDS = ("half_life_days", "thresholds.warm", "thresholds.hot")
CAP_SCOPES = ("contact", "account")
EDITED = ("stages", "roles", "weights", "url_rules", "half_life_days", "thresholds", "heat", "caps", "send_window",
          "crm_stage_map")
NEW_WEIGHT = ("weights._new_name", "weights._new_value")


def weight_keys(current: dict) -> list[str]:
    return list(current.get("weights", {}))


def to_form(current: dict) -> dict:
    values: dict = {name: "\n".join(current[name]) for name in LIST_FIELDS}
    for key, weight in current["weights"].items():
        values[f"weights.{key}"] = _fmt(weight)
    values["half_life_days"] = _fmt(current["half_life_days"])
    values["thresholds.warm"] = _fmt(current["thresholds"]["warm"])
    values["thresholds.hot"] = _fmt(current["thresholds"]["hot"])
    for scope in CAP_SCOPES:
        cap = current["caps"].get(scope) or {}
        values[f"caps.{scope}.max"] = _fmt(cap.get("max", ""))
        values[f"caps.{scope}.per"] = cap.get("per", "")
    values["url_rules"] = "\n".join(f"{r['pattern']} {_fmt(r['weight'])}" for r in current.get("url_rules", []))
    values["crm_stage_map"] = "\n".join(f"{k} = {v}" for k, v in (current.get("crm_stage_map") or {}).items())
    heat = current["heat"]
    values["heat.passive_cap.points"] = "" if heat["passive_cap"]["points"] is None else _fmt(heat["passive_cap"]["points"])
    values["heat.passive_cap.days"] = _fmt(heat["passive_cap"]["days"])
    values["heat.open_window_hours"] = _fmt(heat["open_window_hours"])
    window = current["send_window"]
    values.update({"send_window.timezone": window["timezone"], "send_window.hours": window["hours"],
                   "send_window.days": list(window["days"])})
    return values


def submitted(form) -> dict:
    """The values as typed, to show the form again with its errors."""
    values = {k: v for k, v in form.items() if k != "csrf_token"}
    values["send_window.days"] = form.getlist("send_window.days")
    return values


def _fmt(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(raw: str, name: str, errors: dict, integer: bool = False):
    text = (raw or "").strip()
    if not text:
        errors.setdefault(name, []).append("enter a number")
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        errors.setdefault(name, []).append(f"{text!r} is not {'a whole number' if integer else 'a number'}")
        return None
    return int(value) if not integer and float(value).is_integer() else value


def _lines(raw: str) -> list[str]:
    return [part.strip() for part in re.split(r"[\n,]", raw or "") if part.strip()]


def parse(form, current: dict) -> tuple[dict, dict[str, list[str]]]:
    """(changes for settings.update, errors by field) from the submitted form."""
    errors: dict[str, list[str]] = {}
    changes: dict = {name: _lines(form.get(name, "")) for name in LIST_FIELDS}

    weights = {}
    for key in current["weights"]:
        raw = (form.get(f"weights.{key}") or "").strip()
        if raw:  # an emptied weight removes the event type from the table
            weights[key] = _number(raw, f"weights.{key}", errors)
    new_name = (form.get(NEW_WEIGHT[0]) or "").strip()
    new_value = (form.get(NEW_WEIGHT[1]) or "").strip()
    if new_name or new_value:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,49}", new_name):
            errors.setdefault(NEW_WEIGHT[0], []).append(
                "an event type is lowercase letters, digits and _, starting with a letter")
        value = _number(new_value, NEW_WEIGHT[1], errors)
        if new_name:
            weights[new_name] = value
    changes["weights"] = weights

    changes["half_life_days"] = _number(form.get("half_life_days"), "half_life_days", errors)
    changes["thresholds"] = {level: _number(form.get(f"thresholds.{level}"), f"thresholds.{level}", errors)
                             for level in ("warm", "hot")}
    caps = {}
    for scope in CAP_SCOPES:
        caps[scope] = {"max": _number(form.get(f"caps.{scope}.max"), f"caps.{scope}.max", errors, integer=True),
                       "per": (form.get(f"caps.{scope}.per") or "").strip()}
    changes["caps"] = caps
    changes["url_rules"] = _url_rules(form.get("url_rules", ""), errors)
    changes["crm_stage_map"] = _stage_map(form.get("crm_stage_map", ""), errors)
    points = (form.get("heat.passive_cap.points") or "").strip()
    changes["heat"] = {**current["heat"], "passive_cap": {
        "points": _number(points, "heat.passive_cap.points", errors) if points else None,
        "days": _number(form.get("heat.passive_cap.days"), "heat.passive_cap.days", errors, integer=True)},
        "open_window_hours": _number(form.get("heat.open_window_hours"), "heat.open_window_hours", errors)}
    changes["send_window"] = {"timezone": (form.get("send_window.timezone") or "").strip(),
                              "days": form.getlist("send_window.days"),
                              "hours": (form.get("send_window.hours") or "").replace(" ", "")}
    return changes, errors


def _url_rules(raw: str, errors: dict) -> list[dict]:
    """``pattern weight`` a line (``/pricing 8``), in the order they are tried."""
    rules = []
    for n, line in enumerate((raw or "").splitlines(), start=1):
        if not line.strip():
            continue
        pattern, _, weight = line.strip().rpartition(" ")
        try:
            value = float(weight)
        except ValueError:
            value = None
        if not pattern.strip() or value is None or value < 0:
            errors.setdefault("url_rules", []).append(
                f"line {n}: write the part of the address, a space, then its points (such as /pricing 8)")
            continue
        rules.append({"pattern": pattern.strip(), "weight": int(value) if value.is_integer() else value})
    return rules


def _stage_map(raw: str, errors: dict) -> dict[str, str]:
    """``CRM stage = our stage`` a line."""
    out = {}
    for n, line in enumerate((raw or "").splitlines(), start=1):
        if not line.strip():
            continue
        crm, sep, ours = line.partition("=")
        if not sep or not crm.strip() or not ours.strip():
            errors.setdefault("crm_stage_map", []).append(
                f"line {n}: write the CRM's stage, =, then one of ours (such as Closed Won = customer)")
            continue
        out[crm.strip()] = ours.strip()
    return out


_FRIENDLY = [
    (re.compile(r"does not match '\^\[a-z\]\[a-z0-9_\]"), "use lowercase letters, digits and _, starting with a letter"),
    (re.compile(r"does not match '\^\[1-9\]\[0-9\]\*\[mhdw\]\$'"), "write a duration such as 7d (a number, then m, h, d or w)"),
    (re.compile(r"does not match '\^\\d\\d:\\d\\d-\\d\\d:\\d\\d\$'"), "write the hours as HH:MM-HH:MM, such as 09:00-17:00"),
    (re.compile(r"has non-unique elements"), "each name may appear only once"),
    (re.compile(r"should be non-empty|is too short"), "give at least one"),
    (re.compile(r"is not one of \['mon'"), "pick days of the week"),
    (re.compile(r"is not of type 'number'|is not of type 'integer'"), "enter a number"),
]


def _friendly(message: str) -> str:
    for pattern, text in _FRIENDLY:
        if pattern.search(message):
            quoted = re.match(r"^('[^']*')", message)
            return f"{quoted.group(1)}: {text}" if quoted and "unique" not in text else text
    return message


def field_errors(details: list[dict]) -> dict[str, list[str]]:
    """The service's ``[{path, message}]`` as messages per form field."""
    out: dict[str, list[str]] = {}
    for detail in details:
        path = detail.get("path") or ""
        message = _friendly(detail.get("message", "is invalid"))
        item = re.match(r"^(\w+)\[(\d+)\]", path)
        if item and item.group(1) in LIST_FIELDS:
            field, message = item.group(1), f"line {int(item.group(2)) + 1}: {message}"
        elif item and item.group(1) == "url_rules":
            field, message = "url_rules", f"line {int(item.group(2)) + 1}: {message}"
        elif item:
            field = item.group(1)
        elif path.startswith("crm_stage_map"):
            field = "crm_stage_map"
        elif path.startswith("send_window.days"):
            field = "send_window.days"
        elif re.fullmatch(r"caps\.(contact|account)", path):
            field = path + ".max"
        elif path in ("thresholds", "send_window", "caps"):
            field = "_form"
            message = f"{path}: {message}"
        else:
            field = path if path else "_form"
        out.setdefault(field, []).append(message)
    return out


def test_url(url: str | None, current: dict) -> dict | None:
    """What the URL rules make of a visit to ``url``: the rule that matches and the points."""
    url = (url or "").strip()[:2000]
    if not url:
        return None
    rule = url_rule(url, current)
    return {"url": url, "rule": rule, "weight": event_weight("web_visit", url, current)}


def history(limit: int = 30) -> list[dict]:
    """Versions newest first, each with its author and the settings it changed."""
    rows = settings_service.history(limit + 1)
    authors = users_service.emails_by_id(r.created_by for r in rows)
    out = []
    for i, row in enumerate(rows[:limit]):
        before = rows[i + 1].data if i + 1 < len(rows) else settings_service.DEFAULTS
        changed = sorted(k for k in set(row.data) | set(before) if row.data.get(k) != before.get(k))
        out.append({"version": row.version, "at": row.created_at, "by": authors.get(row.created_by, "—"),
                    "changed": changed})
    return out
