"""YAML ``variants:`` of an email step -> :class:`playbooks.variants.Variant`, with
located errors: a list of at least two, each with a unique ``name`` (a step id's form),
a positive ``weight`` (1 when not written), and the fields it overrides, checked as the
step's own are (templates rendered against the sample account and contact)."""

from __future__ import annotations

import math
import re

from playbooks._check import Checker, Node, describe, plain
from playbooks._shapes import SHAPES
from playbooks._template_check import email_body, sender, template_text
from playbooks.variants import Variant

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_VARIANTS = 10


def parse_variants(chk: Checker, node: Node) -> tuple[Variant, ...] | None:
    """The variants, or None when any is wrong (every error reported)."""
    if not node.is_seq:
        chk.error(node, f"'variants' is a list of variants (each with a name), found {describe(node.value)}")
        return None
    if not 2 <= len(node.value) <= MAX_VARIANTS:
        chk.error(node, f"'variants' lists {len(node.value)}; an A/B test needs between 2 and {MAX_VARIANTS} "
                        "(remove 'variants' to send the step as written)")
        return None
    seen: dict[str, Node] = {}
    variants = [_variant(chk, element, seen) for element in node.elements()]
    return tuple(variants) if None not in variants else None


def _variant(chk: Checker, node: Node, seen: dict[str, Node]) -> Variant | None:
    entries = chk.mapping(node, *SHAPES["email.variant"])
    if entries is None:
        return None
    errors_before = len(chk.errors)
    name = _name(chk, entries["name"], seen) if "name" in entries else None
    weight = _weight(chk, entries["weight"]) if "weight" in entries else 1
    subject = template_text(chk, entries["subject"], email=True) if "subject" in entries else None
    body, template = email_body(chk, entries)
    text = template_text(chk, entries["text"], email=True) if "text" in entries else None
    address = sender(chk, entries["from"]) if "from" in entries else None
    if len(chk.errors) > errors_before or len(entries) < len(node.value) or name is None:
        return None
    return Variant(name, weight, subject, body, template, text, address)


def _name(chk: Checker, node: Node, seen: dict[str, Node]) -> str | None:
    value = plain(node.value)
    if not isinstance(value, str) or not _NAME.match(value):
        chk.error(node, f"{describe(value)} is not a variant name (letters, digits, - and _, starting with a "
                        "letter or digit, at most 64)")
        return None
    if value in seen:
        chk.error(node, f"duplicate variant name '{value}' (also used at line {seen[value].line})")
        return None
    seen[value] = node
    return value


def _weight(chk: Checker, node: Node) -> float | int | None:
    value = chk.number(node)
    if value is None:
        return None
    if value <= 0 or not math.isfinite(value) or value > 1_000_000:
        chk.error(node, f"a weight is a positive number (at most 1000000), found {value}; remove the variant "
                        "to send it to nobody")
        return None
    return value
