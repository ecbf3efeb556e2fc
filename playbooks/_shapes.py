"""The keys every mapping of the playbook language allows and requires, by where it
appears: one table that the validator (``chk.mapping(node, *SHAPES[...])``) and the JSON
Schema (``playbooks.json_schema``) both read, so they cannot disagree on them."""

from __future__ import annotations

from playbooks.model import STEP_KINDS

TOP_LEVEL_KEYS = (
    "version", "key", "name", "product", "description", "priority", "audience", "trigger", "holdout",
    "reenroll", "exit_when", "send_window", "caps", "on_cap", "max_delay", "steps",
)
#: where -> (allowed keys, required keys)
SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "playbook": (TOP_LEVEL_KEYS, ("version", "key", "name", "steps")),
    "audience": (("where", "segment", "limit"), ()),
    "trigger.stage_changed": (("on", "to", "from"), ("to",)),
    "trigger.score_crossed": (("on", "above"), ("above",)),
    "trigger.activity": (("on", "type", "within"), ()),
    "send_window": (("timezone", "days", "hours"), ()),
    "cap": (("per", "max", "within", "channel"), ("per", "max", "within")),
    "caps.workspace": (("contact", "account"), ()),
    "caps.workspace.entry": (("max", "per"), ("max", "per")),
    "step": (("id", "when", "on_cap", "max_delay") + STEP_KINDS, ()),
    "email": (("to", "subject", "template", "body", "text", "from", "connector", "variants"), ("to", "subject")),
    "email.variant": (("name", "weight", "subject", "template", "body", "text", "from"), ("name",)),
    "email.to": (("roles", "titles", "limit"), ()),
    "audience_step": (("connector", "list", "action"), ("list", "action")),
    "alert": (("to", "message", "connector"), ("to", "message")),
    "task": (("to", "title", "due", "connector"), ("to", "title")),
    "webhook": (("connector", "payload"), ("payload",)),
    "wait_until": (("condition", "timeout", "on_timeout"), ("condition", "timeout")),
    "branch": (("if", "then", "else"), ("if", "then")),
}
