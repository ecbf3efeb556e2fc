"""Workspace settings: defaults, validation, and a new version on every change.

The settings are one JSON document (shape below); every change is stored as a new
version and written to the audit log, so history is kept. ``current()`` is cached per
app context.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, g, has_app_context
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from abm import metrics
from abm.db import db
from abm.errors import ValidationError
from abm.models import AuditLog, WorkspaceSettings
from playbooks.settings import SettingsError, parse_account_condition
from workers import enqueue

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

DEFAULTS: dict[str, Any] = {
    "stages": ["target", "aware", "engaged", "mqa", "opportunity", "customer", "lost"],
    "roles": ["decision_maker", "champion", "influencer", "user", "blocker", "other"],
    "weights": {
        "email_delivered": 0, "email_open": 1, "email_click": 3, "email_reply": 10,
        "email_bounce": 0, "unsubscribe": 0, "spam_report": 0, "web_visit": 2,
        "form_fill": 15, "meeting": 25, "ad_impression": 0.1, "ad_click": 3,
        "content_download": 8, "webinar": 10, "intent": 5, "browser_form_fill": 3,
    },
    "url_rules": [
        {"pattern": "/pricing", "weight": 8},
        {"pattern": "/demo", "weight": 10},
    ],
    "half_life_days": 30,
    "thresholds": {"warm": 20, "hot": 50},
    "caps": {
        "contact": {"max": 2, "per": "7d"},
        "account": {"max": 4, "per": "7d"},
    },
    "send_window": {"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-17:00"},
    "lead_events": ["form_fill", "email_reply", "meeting"],
    "attribution": {"window_days": 90, "model": "last_touch", "half_life_days": 7},
    "currency": "USD",
    "kpi_report": {"recipients": [], "weekday": "mon", "connector": None},
    # The engine's alerts (level, surge, intent) go out by a playbook alert step's rules:
    # the send window (unless ``immediate``) and a cap per account, deferred.
    "alerts": {"period_days": 7, "surge_ratio": 2.0, "surge_min_points": 10, "immediate": False,
               "cap": {"max": 3, "per": "1d"}},
    # Honest heat: passive exposure (seen, not acted on) is told apart from engagement,
    # capped per account and period, and an email opened again within the window counts once.
    "heat": {"passive_types": ["ad_impression", "email_open", "email_delivered"],
             "passive_cap": {"points": 15, "days": 30}, "open_window_hours": 24},
    "crm_stage_map": {},
    "identification": {"enabled": True, "raw_ip_days": 7, "lookup_cache_days": 30, "lookup_ip_days": 7,
                       "stitch_days": 30},
    "intent": {"topics": {}, "default_topic_weight": 1.0, "alert_min_score": 60},
    "fit": {
        "rules": [
            {"label": "Tier 1", "when": {"tier": 1}, "points": 40},
            {"label": "Tier 2", "when": {"tier": 2}, "points": 20},
            {"label": "200 employees or more", "when": {"employees": {"gte": 200}}, "points": 30},
            {"label": "Revenue of 50 million or more", "when": {"annual_revenue": {"gte": 50_000_000}}, "points": 30},
        ],
        "model": {"enabled": True, "min_outcomes": 40, "l2": 1.0},
    },
    "sites": [],
    "browser_leads": False,
}

_CAP = {"type": "object", "additionalProperties": False, "required": ["max", "per"],
        "properties": {"max": {"type": "integer", "minimum": 0},
                       "per": {"type": "string", "pattern": r"^[1-9][0-9]*[mhdw]$"}}}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stages": {"type": "array", "minItems": 2, "uniqueItems": True,
                   "items": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,49}$"}},
        "roles": {"type": "array", "minItems": 1, "uniqueItems": True,
                  "items": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,49}$"}},
        "weights": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
        "url_rules": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["pattern", "weight"],
            "properties": {"pattern": {"type": "string", "minLength": 1},
                           "weight": {"type": "number", "minimum": 0}}}},
        "half_life_days": {"type": "number", "exclusiveMinimum": 0},
        "thresholds": {"type": "object", "additionalProperties": False, "required": ["warm", "hot"],
                       "properties": {"warm": {"type": "number", "minimum": 0},
                                      "hot": {"type": "number", "minimum": 0}}},
        "caps": {"type": "object", "additionalProperties": False,
                 "properties": {"contact": _CAP, "account": _CAP}},
        "send_window": {"type": "object", "additionalProperties": False,
                        "required": ["timezone", "days", "hours"],
                        "properties": {"timezone": {"type": "string"},
                                       "days": {"type": "array", "items": {"enum": DAYS}, "minItems": 1},
                                       "hours": {"type": "string",
                                                 "pattern": r"^\d\d:\d\d-\d\d:\d\d$"}}},
        "lead_events": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "kpi_report": {"type": "object", "additionalProperties": False,
                       "properties": {"recipients": {"type": "array", "items": {"type": "string", "format": "email",
                                                                                 "pattern": "^[^@\\s]+@[^@\\s]+$"},
                                                     "uniqueItems": True, "maxItems": 50},
                                      "weekday": {"enum": DAYS},
                                      "connector": {"type": ["string", "null"]}}},
        "attribution": {"type": "object", "additionalProperties": False,
                        "properties": {"window_days": {"type": "integer", "minimum": 1},
                                       "model": {"enum": [*metrics.MODELS, *metrics.MODEL_ALIASES]},
                                       "half_life_days": {"type": "number", "exclusiveMinimum": 0}}},
        "alerts": {"type": "object", "additionalProperties": False,
                   "properties": {"period_days": {"type": "number", "minimum": 0},
                                  "surge_ratio": {"type": "number", "minimum": 1},
                                  "surge_min_points": {"type": "number", "minimum": 0},
                                  "immediate": {"type": "boolean",
                                                "description": "true: alerts go out at once, day and night; "
                                                               "false: in the send window"},
                                  "cap": {"anyOf": [{"type": "null"}, _CAP],
                                          "description": "at most max alerts per account per period "
                                                         "(later ones wait); null: no cap"}}},
        "heat": {"type": "object", "additionalProperties": False,
                 "required": ["passive_types", "passive_cap", "open_window_hours"],
                 "properties": {
                     "passive_types": {"type": "array", "uniqueItems": True,
                                       "items": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,49}$"}},
                     "passive_cap": {"type": "object", "additionalProperties": False, "required": ["points", "days"],
                                     "properties": {"points": {"type": ["number", "null"], "minimum": 0},
                                                    "days": {"type": "integer", "minimum": 1, "maximum": 365}}},
                     "open_window_hours": {"type": "number", "minimum": 0, "maximum": 8760}}},
        "crm_stage_map": {"type": "object", "additionalProperties": {"type": "string"}},
        "intent": {
            "type": "object", "additionalProperties": False, "required": ["topics", "default_topic_weight"],
            "properties": {"topics": {"type": "object", "maxProperties": 500,
                                      "additionalProperties": {"type": "number", "minimum": 0, "maximum": 10}},
                           "default_topic_weight": {"type": "number", "minimum": 0, "maximum": 10},
                           "alert_min_score": {"type": "integer", "minimum": 0, "maximum": 101,
                                               "description": "101: no intent alerts"}}},
        "fit": {
            "type": "object", "additionalProperties": False, "required": ["rules", "model"],
            "properties": {
                "rules": {"type": "array", "maxItems": 50, "items": {
                    "type": "object", "additionalProperties": False, "required": ["when", "points"],
                    "properties": {"label": {"type": "string", "maxLength": 100},
                                   "when": {"type": "object"},
                                   "points": {"type": "number", "minimum": -100, "maximum": 100}}}},
                "model": {"type": "object", "additionalProperties": False,
                          "required": ["enabled", "min_outcomes", "l2"],
                          "properties": {"enabled": {"type": "boolean"},
                                         "min_outcomes": {"type": "integer", "minimum": 20},
                                         "l2": {"type": "number", "exclusiveMinimum": 0}}}}},
        "identification": {
            "type": "object", "additionalProperties": False,
            "required": ["enabled", "raw_ip_days", "lookup_cache_days", "stitch_days"],
            "properties": {"enabled": {"type": "boolean"},
                           "raw_ip_days": {"type": "integer", "minimum": 0, "maximum": 90},
                           "lookup_cache_days": {"type": "integer", "minimum": 1, "maximum": 365},
                           # how long a company look-up keeps the full address it was asked about
                           # (then only its truncated network and the company); optional: older
                           # stored settings lack it and read the default
                           "lookup_ip_days": {"type": "integer", "minimum": 1, "maximum": 365},
                           "stitch_days": {"type": "integer", "minimum": 0, "maximum": 365}}},
        "sites": {"type": "array", "maxItems": 50, "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "origins"],
            "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,49}$"},
                           "key": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{20,64}$"},
                           "origins": {"type": "array", "minItems": 1, "maxItems": 20, "items": {
                               "type": "string", "maxLength": 300,
                               "pattern": r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"}}}}},
        "browser_leads": {"type": "boolean"},
    },
}

_validator = Draft202012Validator(SCHEMA)


def _path(error) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(settings)"


def validate(data: dict) -> list[dict]:
    """Field-level problems with ``data`` (a complete settings document), [] when valid."""
    problems = [{"path": _path(e), "message": e.message}
                for e in sorted(_validator.iter_errors(data), key=lambda e: list(e.absolute_path))]
    if not problems:
        if data["thresholds"]["warm"] >= data["thresholds"]["hot"]:
            problems.append({"path": "thresholds.warm", "message": "must be lower than thresholds.hot"})
        try:
            ZoneInfo(data["send_window"]["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            problems.append({"path": "send_window.timezone",
                             "message": f"unknown time zone {data['send_window']['timezone']!r} "
                                        "(use an IANA name such as Europe/Paris)"})
        for crm, ours in (data.get("crm_stage_map") or {}).items():
            if ours not in data["stages"]:
                problems.append({"path": f"crm_stage_map.{crm}",
                                 "message": f"{crm} = {ours}: {ours!r} is not one of the stages"})
        start, _, end = data["send_window"]["hours"].partition("-")
        if not ("00:00" <= start < end <= "24:00"):
            problems.append({"path": "send_window.hours", "message": "must be HH:MM-HH:MM with start before end"})
        problems += _fit_rule_problems(data)
    return problems


def _fit_rule_problems(data: dict) -> list[dict]:
    """Each fit rule's ``when`` is an account condition of the playbook language."""
    problems = []
    for i, rule in enumerate(data["fit"]["rules"]):
        try:
            parse_account_condition(rule["when"], f"fit.rules[{i}].when", data["stages"], data["roles"])
        except SettingsError as exc:
            for message in exc.messages:
                path, _, text = message.partition(": ")
                problems.append({"path": path, "message": text})
    return problems


def current() -> dict:
    """The settings in force: the newest version merged over the defaults."""
    if has_app_context() and "abm_settings" in g:
        return g.abm_settings
    row = db.session.execute(
        select(WorkspaceSettings).order_by(WorkspaceSettings.version.desc()).limit(1)
    ).scalar_one_or_none()
    data = copy.deepcopy(DEFAULTS)
    if row is not None:
        data.update(copy.deepcopy(row.data))
    if has_app_context():
        g.abm_settings = data
    return data


#: The few settings the site snippet's beacon reads, kept on the app (per process) and
#: read again at most every BEACON_TTL seconds: the busiest public endpoint then reads no
#: database at all. A change made in this process is seen at once; in the others within
#: the TTL.
BEACON_TTL = 5.0


def beacon_settings() -> dict:
    """``{"sites", "browser_leads"}`` of the settings in force (see BEACON_TTL)."""
    cache = current_app.extensions.setdefault("abm_beacon_settings", {})
    if not cache or time.monotonic() - cache["at"] > BEACON_TTL:
        data = current()
        cache.update(at=time.monotonic(), value={"sites": list(data.get("sites") or []),
                                                 "browser_leads": bool(data.get("browser_leads"))})
    return cache["value"]


def current_version() -> int:
    return db.session.execute(select(func.coalesce(func.max(WorkspaceSettings.version), 0))).scalar_one()


def candidate(changes: dict) -> dict:
    """The settings ``changes`` would make (top-level keys replace), validated, not
    stored; ValidationError when they are wrong."""
    unknown = [k for k in changes if k not in SCHEMA["properties"]]
    if unknown:
        raise ValidationError([{"path": k, "message": "unknown setting"} for k in unknown])
    data = copy.deepcopy(current())
    if "sites" in changes:
        changes = {**changes, "sites": _with_keys(changes["sites"], data.get("sites") or [])}
    data.update(copy.deepcopy(changes))
    problems = validate(data)
    if problems:
        raise ValidationError(problems)
    return data


def update(changes: dict, actor_id: int | None = None) -> dict:
    """Apply ``changes`` (top-level keys replace) and store a new version; raise ValidationError."""
    data = candidate(changes)
    version = current_version() + 1
    db.session.add(WorkspaceSettings(version=version, data=data, created_by=actor_id))
    db.session.add(AuditLog(actor_id=actor_id, action="settings.update", target_type="settings",
                            target_id=str(version), details={"changed": sorted(changes)}))
    db.session.commit()
    if has_app_context():
        g.pop("abm_settings", None)
        current_app.extensions.pop("abm_beacon_settings", None)
    if SCORING_KEYS & set(changes):
        _queue_rescore()
    return data


def _with_keys(sites, before: list[dict]):
    """``sites`` with a key for each site that has none: the one it had (by name), or
    a new random one. Anything that is not a list of objects is left to the schema."""
    if not isinstance(sites, list):
        return sites
    kept = {s.get("name"): s.get("key") for s in before}
    return [{**site, "key": site.get("key") or kept.get(site.get("name")) or secrets.token_urlsafe(24)}
            if isinstance(site, dict) else site for site in sites]


#: Settings whose change re-scores every account's history.
SCORING_KEYS = frozenset({"weights", "url_rules", "half_life_days", "thresholds", "heat"})


def _queue_rescore() -> None:
    """Re-score history in the background (after the commit that changed the rules)."""
    enqueue.rescore()


def history(limit: int = 50) -> list[WorkspaceSettings]:
    return list(db.session.execute(
        select(WorkspaceSettings).order_by(WorkspaceSettings.version.desc()).limit(limit)).scalars())
