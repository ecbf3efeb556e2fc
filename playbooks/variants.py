"""A/B variants of an email step: what a variant overrides, and which one a contact gets.

An email step may list ``variants``; each has a ``name``, a ``weight`` (a positive
number, 1 when not written) and the fields it overrides (``subject``, ``body`` or
``template``, ``text``, ``from``); a field it does not write is the step's own. A
variant that writes a new body and no ``text`` gets its plain text derived from its own
HTML (the step's text belongs to the step's body).

Assignment is stable: a contact's bucket for a step, a number in ``[0, 100)``, is
:func:`playbooks.holdout.bucket` of the playbook key and ``"{step_id}:{contact_key}"``
(SHA-256, the same rule as the holdout's); the variants share ``[0, 100)`` in proportion
to their weights, in the order written. So the same contact gets the same variant on a
retry, on a re-run, on another enrollment and in the dry run; changing the weights
moves only the contacts whose bucket crosses a boundary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from playbooks.holdout import bucket

#: The step fields a variant may override, by their YAML name -> the step's attribute.
OVERRIDES = {"subject": "subject", "body": "body", "template": "template", "text": "text", "from": "sender"}


@dataclass(frozen=True)
class Variant:
    """One variant: ``body`` holds the HTML source (inline, or the file's text when
    ``template`` names one); None fields are the step's own."""

    name: str
    weight: float = 1
    subject: str | None = None
    body: str | None = None
    template: str | None = None
    text: str | None = None
    sender: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "weight": self.weight, "subject": self.subject, "body": self.body,
                "template": self.template, "text": self.text, "from": self.sender}

    @classmethod
    def from_dict(cls, data: dict) -> Variant:
        return cls(data["name"], data.get("weight", 1), data.get("subject"), data.get("body"),
                   data.get("template"), data.get("text"), data.get("from"))

    @property
    def overrides(self) -> tuple[str, ...]:
        """The YAML names of the fields this variant writes, in a fixed order."""
        return tuple(key for key, attribute in OVERRIDES.items() if getattr(self, attribute) is not None)


def contact_bucket(playbook_key: str, step_id: str, contact_key: int | str) -> float:
    """The contact's bucket for this step, in ``[0, 100)``."""
    return bucket(playbook_key, f"{step_id}:{contact_key}")


def recipient_key(contact_id: int | None, account_id: int) -> int | str:
    """Who a variant is drawn for: the contact's id, or ``owner:<account id>`` for an email
    to the account's owner."""
    return contact_id if contact_id is not None else f"owner:{account_id}"


def assign(playbook_key: str, step_id: str, contact_key: int | str, variants: tuple[Variant, ...]) -> Variant:
    """The variant a contact gets (``variants`` not empty): the one whose share of
    ``[0, 100)``, in proportion to the weights in the order written, holds its bucket."""
    point = contact_bucket(playbook_key, step_id, contact_key) / 100 * sum(v.weight for v in variants)
    edge = 0.0
    for variant in variants:
        edge += variant.weight
        if point < edge:
            return variant
    return variants[-1]  # float rounding at the very top


def shares(variants: tuple[Variant, ...]) -> dict[str, float]:
    """Each variant's expected share of the contacts, as a fraction."""
    total = sum(v.weight for v in variants)
    return {v.name: v.weight / total for v in variants}


def apply(step, variant: Variant):
    """The email step as this variant sends it (a copy with the variant's fields, and no
    variants of its own)."""
    changes = {attribute: getattr(variant, attribute) for attribute in OVERRIDES.values()
               if getattr(variant, attribute) is not None}
    if variant.body is not None:
        changes.setdefault("template", None)
        changes.setdefault("text", None)
    return dataclasses.replace(step, variants=(), **changes)


__all__ = ["Variant", "OVERRIDES", "assign", "recipient_key", "apply", "contact_bucket", "shares"]
