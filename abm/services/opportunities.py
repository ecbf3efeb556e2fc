"""Opportunities entered by hand or through the API (the CRM sync upserts its own by CRM id)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from abm.db import db, utcnow
from abm.errors import Conflict, NotFound, ValidationError
from abm.models import Account, AuditLog, Opportunity, User
from abm.services import clock, engine_hooks
from abm.services.accounts import MAX_ID, domain_or_error, find_by_domain
from abm.services.validation import check, iso, parse_time

_TIME = {"type": ["string", "null"], "format": "date-time", "description": "ISO 8601; UTC when no offset"}
PROPERTIES: dict = {
    "account_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    "account_domain": {"type": "string", "minLength": 1, "maxLength": 253},
    "name": {"type": "string", "minLength": 1, "maxLength": 300},
    "amount": {"type": ["number", "null"], "minimum": 0, "maximum": 1e15},
    "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$", "description": "ISO 4217 code"},
    "stage": {"type": ["string", "null"], "maxLength": 100},
    "product": {"type": ["string", "null"], "maxLength": 100},
    "created_at": _TIME,
    "closed_at": _TIME,
    "won": {"type": ["boolean", "null"]},
    "crm_id": {"type": ["string", "null"], "maxLength": 100},
}
CREATE_SCHEMA: dict = {"type": "object", "additionalProperties": False, "required": ["name"],
                       "properties": PROPERTIES}
UPDATE_SCHEMA: dict = {"type": "object", "additionalProperties": False, "properties": PROPERTIES}
OPPORTUNITY_SCHEMA: dict = {
    "type": "object", "required": ["id", "account_id", "name", "currency", "created_at"],
    "properties": {"id": {"type": "integer"}, **{k: v for k, v in PROPERTIES.items() if k != "account_domain"},
                   "account_domain": {"type": "string"}, "updated_at": {"type": "string", "format": "date-time"}},
}


def get(opportunity_id: int) -> Opportunity:
    opp = db.session.get(Opportunity, opportunity_id) if 0 < opportunity_id <= MAX_ID else None
    if opp is None:
        raise NotFound(f"opportunity {opportunity_id}")
    return opp


def _account(data: dict) -> Account | None:
    if "account_id" in data:
        account = db.session.get(Account, data["account_id"])
        if account is None:
            raise ValidationError([{"path": "account_id", "message": f"no account {data['account_id']}"}])
        if "account_domain" in data and account.domain != domain_or_error(data["account_domain"], "account_domain"):
            raise ValidationError([{"path": "account_domain", "message": "names another account than account_id"}])
        return account
    if "account_domain" in data:
        account = find_by_domain(domain_or_error(data["account_domain"], "account_domain"))
        if account is None:
            raise ValidationError([{"path": "account_domain",
                                    "message": f"no account with domain {data['account_domain']}"}])
        return account
    return None


def _apply(opp: Opportunity, data: dict) -> None:
    for key in ("name", "stage", "product", "won"):
        if key in data:
            value = data[key]
            setattr(opp, key, value.strip() if isinstance(value, str) else value)
    if "amount" in data:
        opp.amount = Decimal(str(data["amount"])) if data["amount"] is not None else None
    if "currency" in data:
        opp.currency = data["currency"].upper()
    if "created_at" in data and data["created_at"] is not None:
        opp.created_at = parse_time(data["created_at"], "created_at")
    if "closed_at" in data:
        opp.closed_at = parse_time(data["closed_at"], "closed_at") if data["closed_at"] is not None else None
    if "crm_id" in data:
        other = db.session.execute(select(Opportunity.id).where(Opportunity.crm_id == data["crm_id"])).scalar()
        if data["crm_id"] is not None and other is not None and other != opp.id:
            raise Conflict(f"opportunity {other} has crm_id {data['crm_id']} already", extra={"id": other})
        opp.crm_id = data["crm_id"]
    if opp.closed_at is not None and opp.created_at is not None and opp.closed_at < opp.created_at:
        raise ValidationError([{"path": "closed_at", "message": "is before created_at"}])


def _audit(action: str, opp: Opportunity, actor: User | None, details: dict) -> None:
    db.session.add(AuditLog(actor_id=actor.id if actor else None, action=action, target_type="opportunity",
                            target_id=str(opp.id), details=details))


def create(data: dict, *, actor: User | None = None, commit: bool = True) -> Opportunity:
    """A new opportunity of the account named by ``account_id`` or ``account_domain``."""
    check(CREATE_SCHEMA, data)
    account = _account(data)
    if account is None:
        raise ValidationError([{"path": "account_id", "message": "give account_id or account_domain"}])
    opp = Opportunity(account_id=account.id, account=account, name=data["name"], currency="USD",
                      created_at=clock.now())
    _apply(opp, data)
    db.session.add(opp)
    db.session.flush()
    _audit("opportunity.create", opp, actor, {"account_id": account.id})
    engine_hooks.opportunities_changed([account.id])
    if commit:
        db.session.commit()
    return opp


def update(opp: Opportunity, changes: dict, *, actor: User | None = None, commit: bool = True) -> Opportunity:
    check(UPDATE_SCHEMA, changes)
    accounts_before = {opp.account_id}
    account = _account(changes)
    if account is not None:
        opp.account = account
    _apply(opp, changes)
    opp.updated_at = utcnow()
    _audit("opportunity.update", opp, actor, {"fields": sorted(changes)})
    engine_hooks.opportunities_changed(accounts_before | {opp.account_id})
    if commit:
        db.session.commit()
    return opp


def serialize_opportunity(opp: Opportunity) -> dict:
    return {
        "id": opp.id, "account_id": opp.account_id, "account_domain": opp.account.domain if opp.account else None,
        "name": opp.name, "amount": float(opp.amount) if opp.amount is not None else None,
        "currency": opp.currency, "stage": opp.stage, "product": opp.product, "created_at": iso(opp.created_at),
        "closed_at": iso(opp.closed_at), "won": opp.won, "crm_id": opp.crm_id, "updated_at": iso(opp.updated_at),
    }
