"""A JSON Schema (draft 2020-12) of the playbook language, for editors (VS Code's YAML
extension completes and checks a file that names it).

It is generated from the definitions the validator reads: the keys of every mapping
(``playbooks._shapes.SHAPES``), the step kinds, the condition fields with their types and
operators (``playbooks._condition_schema``), the id, key, duration and hours patterns. It
checks the shape of a file; what needs the workspace (connectors, stages, roles,
templates, segments) or the whole file (jumps forward to known ids, unique ids and variant
names) only the validator checks (``abm playbook validate``).
"""

from __future__ import annotations

from playbooks._condition_schema import (
    _OP_ALIASES,
    _OPS_BY_TYPE,
    ACCOUNT_FIELD_TYPES,
    CONTACT_FIELD_TYPES,
    OPPORTUNITY_FIELD_TYPES,
)
from playbooks._shapes import SHAPES
from playbooks._variant_schema import MAX_VARIANTS
from playbooks.model import CHANNEL_OF_KIND, DAYS, STEP_KINDS

#: Where the server serves the schema (no login), under the deployment's ``ABM_BASE_URL``.
SCHEMA_PATH = "/api/v1/playbook-schema.json"
#: ``ABM_BASE_URL``'s default (``config.py``): the ``$id`` of a schema built without a deployment.
DEFAULT_BASE_URL = "http://127.0.0.1:5000"
#: The duration parser's grammar (``playbooks.duration``): 1 to 6 digits and a unit, not zero.
DURATION = {"type": "string", "pattern": r"^\s*[0-9]{1,6}[mhdw]\s*$", "not": {"pattern": r"^\s*0+[mhdw]\s*$"},
            "description": "30m, 4h, 3d or 2w"}
ID = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}
SCALAR = {"type": ["string", "number", "boolean"]}
#: ``Checker.text``: a text with something besides blanks.
TEXT = {"type": "string", "pattern": r"\S"}
#: ``Checker.string_list``: one text, or a non-empty list of texts.
#: (One schema rather than ``anyOf``, so that a mistake is reported at the element.)
TEXT_LIST = {"type": ["string", "array"], "pattern": r"\S", "minItems": 1, "items": TEXT}
_SCALAR_BY_TYPE = {"int": {"type": "integer"}, "number": {"type": "number"}, "list": {"type": "string"},
                   "any": SCALAR}


def _object(where: str, properties: dict, **extra) -> dict:
    """An object of the keys ``SHAPES[where]`` allows (each schema from ``properties``,
    anything when not given) and requires."""
    allowed, required = SHAPES[where]
    out = {"type": "object", "additionalProperties": False,
           "properties": {key: properties.get(key, {}) for key in allowed}, **extra}
    if required:
        out["required"] = list(required)
    return out


def _matcher(kind: str) -> dict:
    """A field's matcher: a value, a list of values (in), or ``{op: value}``."""
    scalar = _SCALAR_BY_TYPE.get(kind, {"type": "string"})
    ops = list(_OPS_BY_TYPE[kind]) + ([alias for alias, op in _OP_ALIASES.items() if op in _OPS_BY_TYPE[kind]])
    operators = {op: ({"type": "array", "items": scalar} if op in ("in", "not_in") else
                      {"type": "boolean"} if op == "exists" else scalar) for op in ops}
    return {"anyOf": [scalar, {"type": "array", "items": scalar},
                      {"type": "object", "additionalProperties": False, "minProperties": 1,
                       "properties": operators}]}


def _condition(fields: dict, name: str, account: bool) -> dict:
    ref = {"$ref": f"#/$defs/{name}"}
    properties = {field: _matcher(kind) for field, kind in fields.items()}
    properties.update({"any": {"type": "array", "minItems": 1, "items": ref},
                       "all": {"type": "array", "minItems": 1, "items": ref}, "not": ref})
    if account:
        properties["activity"] = {"type": "object", "additionalProperties": False, "properties": {
            "type": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "within": DURATION, "at_least": {"type": "integer", "minimum": 0}}}
        properties["contacts"] = {"anyOf": [{"$ref": "#/$defs/contact_condition"}, {
            "type": "object", "properties": {"where": {"$ref": "#/$defs/contact_condition"},
                                             "at_least": {"type": "integer", "minimum": 0}}}]}
        properties["intent"] = {"type": "object", "additionalProperties": False, "properties": {
            "topic": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "min_score": {"type": "integer", "minimum": 0, "maximum": 100}, "within": DURATION}}
        opportunity = _condition(OPPORTUNITY_FIELD_TYPES, "opportunity_condition", False)
        opportunity["properties"]["created_within"] = DURATION
        del opportunity["minProperties"], opportunity["patternProperties"]
        properties["opportunity"] = opportunity
    return {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": properties,
            "patternProperties": {r"^attributes\.[A-Za-z0-9_][A-Za-z0-9_-]*$": _matcher("any")}}


def _opportunity_condition() -> dict:
    """Inside ``any``/``all``/``not`` of an ``opportunity``: its fields, no attributes."""
    schema = _condition(OPPORTUNITY_FIELD_TYPES, "opportunity_condition", False)
    del schema["patternProperties"]
    return schema


def _steps() -> dict:
    condition = {"$ref": "#/$defs/condition"}
    owner_or_email = {"type": "string"}
    kinds = {
        "email": _object("email", {"to": {"anyOf": [{"const": "owner"}, _object("email.to", {
            "roles": {"type": "array", "items": {"type": "string"}},
            "titles": {"type": "array", "items": {"type": "string"}}, "limit": {"type": "integer", "minimum": 1}})]},
            "subject": {"type": "string"}, "template": {"type": "string"}, "body": {"type": "string"},
            "text": {"type": "string"}, "from": {"type": "string"}, "connector": {"type": "string"},
            "variants": {"type": "array", "minItems": 2, "maxItems": MAX_VARIANTS, "items": _object("email.variant", {
                "name": ID, "weight": {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000},
                "subject": {"type": "string"}, "template": {"type": "string"}, "body": {"type": "string"},
                "text": {"type": "string"}, "from": {"type": "string"}})}}),
        "audience": _object("audience_step", {"action": {"enum": ["add", "remove"]}, "list": {"type": "string"},
                                              "connector": {"type": "string"}}),
        "alert": _object("alert", {"to": owner_or_email, "message": {"type": "string"},
                                   "connector": {"type": "string"}}),
        "task": _object("task", {"to": owner_or_email, "title": {"type": "string"}, "due": DURATION,
                                 "connector": {"type": "string"}}),
        "webhook": _object("webhook", {"payload": {"type": "object"}, "connector": {"type": "string"}}),
        "set_stage": {"type": "string"},
        "wait": DURATION,
        "wait_until": _object("wait_until", {"condition": condition, "timeout": DURATION,
                                             "on_timeout": {"type": "string"}}),
        "branch": _object("branch", {"if": condition, "then": ID, "else": ID}),
        "exit": {"const": True},
    }
    assert set(kinds) == set(STEP_KINDS)
    step = _object("step", {"id": ID, "when": condition, "on_cap": {"enum": ["defer", "skip"]},
                            "max_delay": DURATION, **kinds})
    step["oneOf"] = [{"required": [kind]} for kind in STEP_KINDS]
    return step


def schema_id(base_url: str = DEFAULT_BASE_URL) -> str:
    """The schema's ``$id``: the URL a deployment serves it at."""
    return base_url.rstrip("/") + SCHEMA_PATH


#: The fields of each trigger, typed as the loader (``loader._trigger``) reads them.
TRIGGER_FIELDS = {
    "stage_changed": {"to": TEXT_LIST, "from": TEXT_LIST},
    "score_crossed": {"above": {"type": "number"}},
    "activity": {"type": TEXT_LIST, "within": DURATION},
}


def _trigger() -> dict:
    """``on`` picks the form; ``if``/``then`` (not ``oneOf``) so that a mistake is reported
    at its field (``trigger.within``), where the validator reports it."""
    forms = [{"if": {"properties": {"on": {"const": on}}, "required": ["on"]},
              "then": _object(f"trigger.{on}", {"on": {"const": on}, **fields})}
             for on, fields in TRIGGER_FIELDS.items()]
    assert all(set(SHAPES[f"trigger.{on}"][0]) == {"on", *fields} for on, fields in TRIGGER_FIELDS.items())
    return {"type": "object", "required": ["on"], "properties": {"on": {"enum": list(TRIGGER_FIELDS)}},
            "allOf": forms}


def build(base_url: str = DEFAULT_BASE_URL) -> dict:
    """The schema, as a dict (``json.dumps`` it); its ``$id`` is where ``base_url`` serves it."""
    condition = {"$ref": "#/$defs/condition"}
    caps_list = {"type": "array", "items": _object("cap", {
        "per": {"enum": ["contact", "account"]}, "max": {"type": "integer", "minimum": 0}, "within": DURATION,
        "channel": {"enum": sorted(set(CHANNEL_OF_KIND.values()))}})}
    entry = _object("caps.workspace.entry", {"max": {"type": "integer", "minimum": 0}, "per": DURATION})
    caps_map = _object("caps.workspace", {"contact": entry, "account": entry})
    trigger = _trigger()
    top = {
        "version": {"const": 1}, "key": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]{1,63}$"},
        "name": {"type": "string", "minLength": 1}, "product": {"type": "string"},
        "description": {"type": "string"}, "priority": {"type": "integer", "minimum": 0, "maximum": 100},
        "audience": {**_object("audience", {"where": condition, "segment": {"type": "string"},
                                            "limit": {"type": "integer", "minimum": 1}}),
                     "oneOf": [{"required": ["where"]}, {"required": ["segment"]}]},
        "trigger": trigger,
        "holdout": {"anyOf": [{"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$"},
                              {"type": "number", "minimum": 0, "maximum": 50}]},
        "reenroll": {"anyOf": [DURATION, {"const": "never"}]}, "exit_when": condition,
        "send_window": _object("send_window", {"timezone": {"type": "string"},
                                               "days": {"type": "array", "items": {"enum": list(DAYS)}},
                                               "hours": {"type": "string",
                                                         "pattern": r"^\s*[0-9]{2}:[0-9]{2}\s*-\s*[0-9]{2}:[0-9]{2}\s*$"}}),
        "caps": {"anyOf": [caps_list, caps_map]}, "on_cap": {"enum": ["defer", "skip"]}, "max_delay": DURATION,
        "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
    }
    schema = _object("playbook", top)
    schema.update({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id(base_url),
                   "title": "ABM playbook", "oneOf": [{"required": ["audience"]}, {"required": ["trigger"]}],
                   "$defs": {"condition": _condition(ACCOUNT_FIELD_TYPES, "condition", True),
                             "contact_condition": _condition(CONTACT_FIELD_TYPES, "contact_condition", False),
                             "opportunity_condition": _opportunity_condition(),
                             "step": _steps()}})
    return schema


__all__ = ["build", "schema_id", "SCHEMA_PATH"]
