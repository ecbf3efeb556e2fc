"""Contacts: create, update, list, and the GDPR erase.

Erasing a person (:func:`erase`) keeps the contact row as an anonymous shell: its
personal fields are blanked and ``erased_at`` set, so touches, events and enrollments
that point at it keep their counts (aggregates stay) while nothing says who it was.
Their events lose the email and properties, their touches lose the rendered payload
(unsent ones are skipped), alerts and errors lose the address and name, stored
idempotent answers that hold the address are dropped, and the
email's SHA-256 goes on the suppression list: :func:`is_suppressed` is what imports,
the API and event ingestion check before accepting that address again.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Text, cast, false, func, or_, select
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from abm.db import db, utcnow
from abm.errors import Conflict, NotFound, ValidationError
from abm.models import Account, Alert, AuditLog, Contact, Event, IdempotencyRecord, Suppression, Touch, User
from abm.normalize import NormalizeError, company_domain_of, normalize_email
from abm.services import identification, paging
from abm.services import settings as settings_service
from abm.services.accounts import MAX_ID, domain_or_error, find_by_domain
from abm.services.paging import SortKey
from abm.services.validation import check, iso

_STR = {"type": ["string", "null"]}
PROPERTIES: dict = {
    "email": {"type": "string", "minLength": 3, "maxLength": 320},
    "first_name": {**_STR, "maxLength": 100},
    "last_name": {**_STR, "maxLength": 100},
    "title": {**_STR, "maxLength": 200},
    "role": {**_STR, "maxLength": 50, "description": "buying role, one of the workspace's roles"},
    "country": {**_STR, "maxLength": 100},
    "phone": {**_STR, "maxLength": 50},
    "account_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
    "account_domain": {"type": "string", "maxLength": 253},
    "attributes": {"type": "object"},
    "crm_ids": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 100}},
}
CREATE_SCHEMA: dict = {"type": "object", "additionalProperties": False, "required": ["email"],
                       "properties": PROPERTIES}
UPDATE_SCHEMA: dict = {"type": "object", "additionalProperties": False, "properties": PROPERTIES}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
CONTACT_SCHEMA: dict = {
    "type": "object", "required": ["id", "email", "account_id", "created_at"],
    "properties": {"id": {"type": "integer"}, **{k: v for k, v in PROPERTIES.items() if k != "account_domain"},
                   "full_name": {"type": "string"}, "unsubscribed_at": _TIME_OR_NULL,
                   "bounced_at": _TIME_OR_NULL, "created_at": {"type": "string", "format": "date-time"},
                   "updated_at": {"type": "string", "format": "date-time"}},
}
FILTERS = ("account_id", "role", "q")
ERASED = "[erased]"


def email_hash(email: str) -> str:
    """SHA-256 (hex) of the normalised address: what the suppression list keeps."""
    try:
        email = normalize_email(email)
    except NormalizeError:
        email = (email or "").strip().lower()
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


def is_suppressed(email: str) -> bool:
    return db.session.execute(select(Suppression.id).where(Suppression.email_hash == email_hash(email))).first() \
        is not None


def suppress(email: str, reason: str) -> None:
    """Put ``email`` on the suppression list (idempotent). Flushes, does not commit."""
    digest = email_hash(email)
    if db.session.execute(select(Suppression.id).where(Suppression.email_hash == digest)).first() is None:
        try:
            with db.session.begin_nested():
                db.session.add(Suppression(email_hash=digest, reason=reason))
        except IntegrityError:
            pass  # added meanwhile by someone else: it is on the list, which is all we want


def get(contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id) if 0 < contact_id < 2**63 else None
    if contact is None or contact.erased_at is not None:
        raise NotFound(f"contact {contact_id}")
    return contact


def _email(value) -> str:
    try:
        email = normalize_email(value)
    except NormalizeError as exc:
        raise ValidationError([{"path": "email", "message": str(exc)}]) from None
    if is_suppressed(email):
        raise ValidationError([{"path": "email", "message": "this address is on the suppression list (the person "
                                                            "was erased or asked never to be contacted)"}])
    return email


def _account_for(data: dict, email: str | None) -> tuple[bool, int | None]:
    """(given, account_id) from account_id / account_domain, else the email's company domain."""
    if data.get("account_id") is not None:
        if db.session.get(Account, data["account_id"]) is None:
            raise ValidationError([{"path": "account_id", "message": f"no account {data['account_id']}"}])
        return True, data["account_id"]
    if "account_id" in data:
        return True, None
    if data.get("account_domain"):
        account = find_by_domain(domain_or_error(data["account_domain"], "account_domain"))
        if account is None:
            raise ValidationError([{"path": "account_domain",
                                    "message": f"no account with domain {data['account_domain']}"}])
        return True, account.id
    if email:
        domain = company_domain_of(email)
        account = find_by_domain(domain) if domain else None
        return False, account.id if account else None
    return False, None


def _apply(contact: Contact, data: dict) -> None:
    if data.get("role") is not None:
        roles = settings_service.current()["roles"]
        if data["role"] not in roles:
            raise ValidationError([{"path": "role", "message": f"unknown role {data['role']!r}; the roles are "
                                                               f"{', '.join(roles)}"}])
    for key in ("first_name", "last_name", "title", "country", "phone", "attributes", "crm_ids"):
        if key in data:
            value = data[key]
            setattr(contact, key, value.strip() if isinstance(value, str) else value)
    if "role" in data:
        contact.buying_role = data["role"]


def _duplicate(email: str, exclude: int | None = None) -> None:
    other = db.session.execute(select(Contact.id).where(Contact.email == email)).scalar_one_or_none()
    if other is not None and other != exclude:
        raise Conflict(f"a contact with email {email} exists already (id {other})", extra={"id": other})


def _audit(action: str, contact: Contact, actor: User | None, details: dict | None = None) -> None:
    db.session.add(AuditLog(actor_id=actor.id if actor else None, action=action, target_type="contact",
                            target_id=str(contact.id), details=details or {}))


def create(data: dict, *, actor: User | None = None, commit: bool = True) -> Contact:
    """A new contact; 422 for a suppressed address, 409 (with ``id``) for a known one."""
    check(CREATE_SCHEMA, data)
    email = _email(data["email"])
    _duplicate(email)
    _, account_id = _account_for(data, email)
    contact = Contact(email=email, account_id=account_id, attributes={}, crm_ids={})
    _apply(contact, data)
    db.session.add(contact)
    db.session.flush()
    _audit("contact.create", contact, actor)
    if commit:
        db.session.commit()
    return contact


def update(contact: Contact, changes: dict, *, actor: User | None = None, commit: bool = True) -> Contact:
    check(UPDATE_SCHEMA, changes)
    if "email" in changes:
        email = _email(changes["email"])
        _duplicate(email, exclude=contact.id)
        contact.email = email
    given, account_id = _account_for({k: v for k, v in changes.items() if k in ("account_id", "account_domain")},
                                     None)
    if given:
        contact.account_id = account_id
    _apply(contact, changes)
    contact.updated_at = utcnow()
    _audit("contact.update", contact, actor, {"fields": sorted(changes)})
    if commit:
        db.session.commit()
    return contact


def erase(contact: Contact, *, actor: User | None = None) -> None:
    """GDPR erasure: remove the person's data everywhere, keep the counts, suppress the address."""
    email, name = contact.email, contact.full_name
    cid = contact.id
    if email:
        suppress(email, "erased")
    who = [Event.contact_id == cid] + ([Event.email == email] if email else [])
    db.session.execute(sql_update(Event).where(or_(*who)).values(email=None, properties={}),
                       execution_options={"synchronize_session": False})
    identification.forget_contact(cid)
    db.session.execute(sql_update(Touch).where(Touch.contact_id == cid, Touch.status.in_(("scheduled", "queued")))
                       .values(status="skipped", error="the contact was erased (GDPR)"),
                       execution_options={"synchronize_session": False})
    db.session.execute(sql_update(Touch).where(Touch.contact_id == cid).values(payload={"erased": True}),
                       execution_options={"synchronize_session": False})
    for secret in [s for s in (email, name) if s and len(s) >= 3]:
        db.session.execute(sql_update(Touch).where(Touch.contact_id == cid, Touch.error.is_not(None))
                           .values(error=func.replace(Touch.error, secret, ERASED)),
                           execution_options={"synchronize_session": False})
        if contact.account_id is not None:
            db.session.execute(sql_update(Alert).where(Alert.account_id == contact.account_id)
                               .values(message=func.replace(Alert.message, secret, ERASED)),
                               execution_options={"synchronize_session": False})
    db.session.execute(sql_update(AuditLog).where(AuditLog.target_type == "contact", AuditLog.target_id == str(cid))
                       .values(details={}), execution_options={"synchronize_session": False})
    if email:
        # Stored answers of idempotent writes (a POST /contacts reply holds the address).
        db.session.execute(sql_delete(IdempotencyRecord).where(
            cast(IdempotencyRecord.response, Text).contains(email, autoescape=True)),
            execution_options={"synchronize_session": False})
    for key in ("email", "first_name", "last_name", "title", "phone", "country"):
        setattr(contact, key, None)
    contact.attributes, contact.crm_ids = {}, {}
    contact.erased_at = utcnow()
    _audit("contact.erase", contact, actor)
    db.session.commit()


def list_contacts(filters: dict | None = None, cursor: str | None = None, limit: int = paging.DEFAULT_LIMIT,
                  *, first_owner_id: int | None = None) -> tuple[list[Contact], str | None]:
    """One page of contacts (erased ones never appear), oldest first; filters account_id, role, q."""
    filters = filters or {}
    query = select(Contact).where(Contact.erased_at.is_(None))
    problems = []
    for key, value in filters.items():
        if value in (None, ""):
            continue
        if key not in FILTERS:
            problems.append({"path": key, "message": f"unknown filter; the filters are {', '.join(FILTERS)}"})
        elif key == "account_id":
            try:
                account_id = int(value)
                query = query.where(Contact.account_id == account_id if 0 < account_id <= MAX_ID else false())
            except (TypeError, ValueError):
                problems.append({"path": "account_id", "message": "must be an account id (a whole number)"})
        elif key == "role":
            query = query.where(Contact.buying_role.in_([v.strip() for v in str(value).split(",") if v.strip()]))
        elif key == "q":
            text = str(value).strip().lower()
            name = func.lower(func.coalesce(Contact.first_name, "") + " " + func.coalesce(Contact.last_name, ""))
            query = query.where(or_(Contact.email.contains(text, autoescape=True),
                                    name.contains(text, autoescape=True),
                                    func.lower(func.coalesce(Contact.title, "")).contains(text, autoescape=True)))
    if problems:
        raise ValidationError(problems)
    keys = [SortKey(Contact.id)]
    if first_owner_id is None:
        return paging.page(query, keys, "id", cursor, limit)
    owned = select(Account.id).where(Account.owner_id == first_owner_id)
    mine = query.where(Contact.account_id.in_(owned))
    others = query.where(or_(Contact.account_id.is_(None), Contact.account_id.not_in(owned)))
    return paging.page_phased([mine, others], keys, f"id|{first_owner_id}", cursor, limit)


def serialize_contact(contact: Contact) -> dict:
    return {
        "id": contact.id, "email": contact.email, "first_name": contact.first_name,
        "last_name": contact.last_name, "full_name": contact.full_name, "title": contact.title,
        "role": contact.buying_role, "country": contact.country, "phone": contact.phone,
        "account_id": contact.account_id, "attributes": contact.attributes or {},
        "crm_ids": contact.crm_ids or {}, "unsubscribed_at": iso(contact.unsubscribed_at),
        "bounced_at": iso(contact.bounced_at), "created_at": iso(contact.created_at),
        "updated_at": iso(contact.updated_at),
    }
