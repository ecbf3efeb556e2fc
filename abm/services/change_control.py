"""Change control for playbooks: the diff between two versions, a clone under a new
key, and a test of an email step sent to yourself.

(Moving running enrollments to a new version is :func:`abm.services.playbooks.migrate`,
shown first by ``plan(..., migrate=True)``.)
"""

from __future__ import annotations

import json
import re

from flask import current_app
from sqlalchemy import select

from abm.db import db
from abm.errors import ApiError, Conflict, NotFound
from abm.models import Account
from abm.models import Playbook as PlaybookRow
from abm.services import audience, clock, touches
from abm.services import playbooks as playbook_service
from abm.services.transactions import rolls_back_on_error
from playbooks import variants
from playbooks.diff import diff as meaning_diff
from playbooks.diff import text_diff
from playbooks.model import EmailStep
from playbooks.templates import TemplateError, render_touch
from workers import enqueue

_KEY_LINE = re.compile(r"^key:[^\n]*$", re.MULTILINE)
_NAME_LINE = re.compile(r"^name:[^\n]*$", re.MULTILINE)
#: What a test email's unsubscribe link points to: nowhere that unsubscribes anybody.
TEST_UNSUBSCRIBE_PATH = "/u/test-send"


def diff(key: str, old: int, new: int | None = None) -> dict:
    """Version ``old`` against version ``new`` (the current one by default): the YAML as
    a unified diff, and what changed in meaning (``playbooks.diff``)."""
    before = playbook_service.source_of(key, old)
    after = playbook_service.source_of(key, new)
    return {"key": key, "from": before.version, "to": after.version,
            "yaml": text_diff(before.source, after.source, f"{key} v{before.version}", f"{key} v{after.version}"),
            **meaning_diff(playbook_service.compiled(before), playbook_service.compiled(after))}


@rolls_back_on_error
def clone(key: str, new_key: str, name: str | None = None, actor_id: int | None = None) -> tuple[PlaybookRow, int]:
    """The current version of ``key`` stored as a new draft playbook ``new_key`` (named
    ``name``, or "NAME (copy)"). Raises Conflict when ``new_key`` exists, and
    ``PlaybookInvalid`` when the new key is not a valid key."""
    row = playbook_service.get(key)
    if db.session.execute(select(PlaybookRow.id).where(PlaybookRow.key == new_key)).first():
        raise Conflict(f"a playbook {new_key!r} exists already; choose another key")
    source = playbook_service.source_of(key).source
    if not _KEY_LINE.search(source):
        raise ApiError(422, "the playbook's source has no top-level 'key:' line to change; edit a copy by hand")
    source = _KEY_LINE.sub(f"key: {json.dumps(new_key)}", source, count=1)
    source = _NAME_LINE.sub(f"name: {json.dumps(name or f'{row.name} (copy)')}", source, count=1)
    return playbook_service.apply(source, f"{new_key}.yaml", actor_id=actor_id)


def test_send(key: str, step_id: str, to: str, account: str, contact: str | None = None,
              version: int | None = None, variant: str | None = None) -> dict:
    """Render email step ``step_id`` for ``account`` (id or domain) and ``contact``
    (email; by default the first the step would pick) and queue it to ``to`` through
    the step's connector. The unsubscribe link points nowhere. A step with A/B variants
    sends ``variant`` (by name), by default the one that contact is assigned. ``{"job",
    "to", "subject", "account", "contact", "variant"}``."""
    pb = playbook_service.compiled(playbook_service.source_of(key, version))
    try:
        step = pb.step(step_id)
    except KeyError:
        raise NotFound(f"step {step_id!r} of playbook {key!r}") from None
    if not isinstance(step, EmailStep):
        raise ApiError(422, f"step {step_id!r} is a {step.kind} step; only email steps can be sent as a test")
    facts = audience.load_facts([_account_id(account)], clock.now())
    [account_facts] = facts.values()
    chosen = _contact(step, account_facts, contact)
    step, variant = _variant(pb, step, chosen, account_facts.fields["id"], variant)
    url = current_app.config.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/") + TEST_UNSUBSCRIBE_PATH
    try:
        payload = render_touch(step, pb, account_facts.fields, chosen, unsubscribe_url=url, now=clock.now())
    except TemplateError as exc:
        raise ApiError(422, f"step {step_id!r} does not render for this account: {exc}") from None
    payload["subject"] = f"[Test{' variant ' + variant if variant else ''}] {payload['subject']}"
    contact_fields = {k: v for k, v in chosen.items() if not k.endswith("_at")}
    job = enqueue.email_to_self(step.connector, payload, to, dict(account_facts.fields), contact_fields,
                                {"key": pb.key, "name": pb.name, "product": pb.product})
    return {"job": job, "to": to, "subject": payload["subject"], "account": account_facts.fields["domain"],
            "contact": chosen.get("email"), "variant": variant}


def _variant(pb, step: EmailStep, contact: dict, account_id: int, name: str | None) -> tuple[EmailStep, str | None]:
    """The step as variant ``name`` sends it (default: the contact's assigned one), and
    that name; the step as written and None when it has no variants."""
    if not step.variants:
        if name:
            raise ApiError(422, f"step {step.id!r} has no A/B variants; leave 'variant' out")
        return step, None
    if name is None:
        chosen = variants.assign(pb.key, step.id, variants.recipient_key(contact.get("id"), account_id),
                                 step.variants)
    else:
        chosen = next((v for v in step.variants if v.name == name), None)
        if chosen is None:
            raise ApiError(422, f"step {step.id!r} has no variant {name!r} (its variants: "
                                f"{', '.join(v.name for v in step.variants)})")
    return variants.apply(step, chosen), chosen.name


def _account_id(account: str) -> int:
    text = (account or "").strip()
    column = Account.id if text.isdigit() else Account.domain
    value = int(text) if text.isdigit() else text.lower()
    found = db.session.execute(select(Account.id).where(column == value)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"account {text!r}")
    return found


def _contact(step: EmailStep, facts, contact: str | None) -> dict:
    if contact:
        wanted = contact.strip().lower()
        found = next((c for c in facts.contacts if (c.get("email") or "").lower() == wanted), None)
        if found is None:
            raise NotFound(f"contact {contact!r} of account {facts.fields['domain']!r}")
        return found
    chosen, _ = touches.recipients_for(step, facts)
    if chosen:
        return chosen[0]
    if facts.contacts:
        return facts.contacts[0]
    raise ApiError(422, f"account {facts.fields['domain']!r} has no contact to render the email for; "
                        "choose another account")


__all__ = ["diff", "clone", "test_send", "TEST_UNSUBSCRIBE_PATH"]
