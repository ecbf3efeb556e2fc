"""Who each event is of: its account, contact and playbook, found with a few bulk look-ups."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from abm.db import db, in_list, utcnow
from abm.models import Account, Contact, Suppression, Touch
from abm.services.contacts import email_hash


@dataclass
class _Found:
    """What a batch of events names, looked up in bulk."""

    by_email: dict = field(default_factory=dict)  # email -> (contact id, account id)
    by_contact: dict = field(default_factory=dict)  # contact id -> account id
    by_domain: dict = field(default_factory=dict)  # domain -> account id
    touches: dict = field(default_factory=dict)  # touch id -> (account id, contact id, playbook id)
    accounts: set = field(default_factory=set)  # account ids that exist


def match_events(events: list[dict]) -> list[dict]:
    """Resolve every event to (account, contact, playbook) with a few bulk lookups."""
    _forget_suppressed(events, {e["email"] for e in events if e.get("email")})
    found = _look_up(events)
    received = utcnow()
    return [_event_row(e, found, received) for e in events]


def _look_up(events: list[dict]) -> _Found:
    """The contacts, accounts and touches the events name, a chunk of keys per query."""
    def keys(name: str) -> set:
        return {e[name] for e in events if e.get(name)}

    found, s = _Found(), db.session
    for chunk in chunks(keys("email")):
        for cid, email, aid in s.execute(select(Contact.id, Contact.email, Contact.account_id)
                                         .where(in_list(Contact.email, chunk))):
            found.by_email[email] = (cid, aid)
    for chunk in chunks(keys("contact_id")):
        found.by_contact.update(s.execute(select(Contact.id, Contact.account_id)
                                          .where(in_list(Contact.id, chunk))).all())
    for chunk in chunks(keys("account_domain")):
        found.by_domain.update(s.execute(select(Account.domain, Account.id)
                                         .where(in_list(Account.domain, chunk))).all())
    for chunk in chunks(keys("touch_id")):
        for tid, aid, cid, pid in s.execute(select(Touch.id, Touch.account_id, Touch.contact_id, Touch.playbook_id)
                                            .where(in_list(Touch.id, chunk))):
            found.touches[tid] = (aid, cid, pid)
    for chunk in chunks(keys("account_id")):
        found.accounts.update(s.execute(select(Account.id).where(in_list(Account.id, chunk))).scalars())
    return found


def _resolve(e: dict, found: _Found) -> tuple[int | None, int | None, int | None]:
    """(account, contact, playbook) of one event: its touch, else its contact, email, account id, domain."""
    account_id = contact_id = playbook_id = None
    if e.get("touch_id") in found.touches:
        account_id, contact_id, playbook_id = found.touches[e["touch_id"]]
    if contact_id is None and e.get("contact_id") in found.by_contact:
        contact_id, account_id = e["contact_id"], found.by_contact[e["contact_id"]] or account_id
    if contact_id is None and e.get("email") in found.by_email:
        contact_id, aid = found.by_email[e["email"]]
        account_id = account_id or aid
    if account_id is None and e.get("account_id") in found.accounts:
        account_id = e["account_id"]
    if account_id is None and e.get("account_domain") in found.by_domain:
        account_id = found.by_domain[e["account_domain"]]
    return account_id, contact_id, playbook_id


def _event_row(e: dict, found: _Found, received) -> dict:
    account_id, contact_id, playbook_id = _resolve(e, found)
    email = e.get("email")
    return {
        "type": e["type"], "occurred_at": e["occurred_at"], "account_id": account_id,
        "contact_id": contact_id, "email": email,
        "domain": e.get("account_domain") or (email.rsplit("@", 1)[-1] if email else None),
        "url": e.get("url"), "source": e.get("source"),
        "touch_id": e.get("touch_id") if e.get("touch_id") in found.touches else None,
        "playbook_id": playbook_id, "properties": dict(e.get("properties") or {}), "dedup_key": e["dedup_key"],
        "quantity": int(e.get("quantity") or 1), "visitor_id": e.get("visitor_id"),
        "received_at": received,
    }



def _forget_suppressed(events: list[dict], emails: set[str]) -> None:
    """An erased person's email (on the suppression list, as a hash) is never stored again."""
    hashes = {email_hash(e): e for e in emails}
    gone = set()
    for chunk in chunks(hashes):
        gone.update(hashes[h] for h in db.session.execute(
            select(Suppression.email_hash).where(in_list(Suppression.email_hash, chunk))).scalars())
    for e in events:
        if e.get("email") in gone:
            e["email"] = None
            e.pop("contact_id", None)


def chunks(items, size: int = 1000):
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]
