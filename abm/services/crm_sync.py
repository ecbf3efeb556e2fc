"""CRM changes into the product: stage moves and opportunities from HubSpot or Salesforce.

The CRM connectors (webhooks and polls) produce ``stage_changed`` and ``opportunity``
events (see :mod:`connectors.crm`), queued like engagement events. Here they are
applied: every stage move goes through ``accounts.change_stage`` with the source
``crm:<connector>`` (so history is kept, exits are checked and triggered playbooks
start), and opportunities are upserted by their CRM id.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select

from abm.db import db, utcnow
from abm.errors import ValidationError
from abm.models import Account, Opportunity
from abm.normalize import NormalizeError, normalize_domain
from abm.services import accounts as accounts_service
from abm.services import engine_hooks
from abm.services import settings as settings_service
from connectors.crm import map_stage

log = logging.getLogger(__name__)


def _time(value) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return utcnow()
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _accounts_for(events: list[dict]) -> tuple[dict[str, Account], dict[tuple[str, str], Account]]:
    domains = set()
    for e in events:
        try:
            if e.get("account_domain"):
                domains.add(normalize_domain(e["account_domain"]))
        except NormalizeError:
            continue
    by_domain = {a.domain: a for a in db.session.execute(
        select(Account).where(Account.domain.in_(domains))).scalars()} if domains else {}
    by_crm: dict[tuple[str, str], Account] = {}
    wanted: dict[str, set[str]] = {}
    for e in events:
        cid = (e.get("properties") or {}).get("account_crm_id") if e["type"] == "opportunity" else e.get("crm_id")
        if cid:
            wanted.setdefault(e.get("source") or "crm", set()).add(str(cid))
    for source, ids in wanted.items():
        q = select(Account).where(Account.crm_ids[source].as_string().in_(ids))
        for a in db.session.execute(q).scalars():
            by_crm[(source, a.crm_ids[source])] = a
    return by_domain, by_crm


def _workspace_stage(props: dict) -> str | None:
    """The event's mapped stage, else the workspace's ``crm_stage_map`` applied to its CRM value."""
    if props.get("stage"):
        return props["stage"]
    return map_stage(props.get("crm_stage"), settings_service.current().get("crm_stage_map") or {})


def apply(events: list[dict], commit: bool = True) -> dict:
    """Apply CRM events in order; returns counts of what changed.

    ``commit=False`` leaves the transaction open, so that a caller (the CRM poll) can
    save its cursor in the same commit as the changes it brought.
    """
    by_domain, by_crm = _accounts_for(events)
    counts = {"stages": 0, "opportunities": 0, "unmatched": 0, "unknown_stage": 0}
    deal_accounts: set[int] = set()
    for e in sorted(events, key=lambda x: str(x.get("occurred_at"))):
        source = e.get("source") or "crm"
        props = e.get("properties") or {}
        if e["type"] == "stage_changed":
            account = by_crm.get((source, str(e.get("crm_id"))))
            if account is None and e.get("account_domain"):
                try:
                    account = by_domain.get(normalize_domain(e["account_domain"]))
                except NormalizeError:
                    account = None
            if account is None:
                counts["unmatched"] += 1
                continue
            if e.get("crm_id") and account.crm_ids.get(source) != str(e["crm_id"]):
                account.crm_ids = {**account.crm_ids, source: str(e["crm_id"])}
                by_crm[(source, str(e["crm_id"]))] = account
            stage = _workspace_stage(props)
            if stage and stage != account.stage:
                try:
                    accounts_service.change_stage(account, stage, source=f"crm:{source}", actor_id=None,
                                                  at=_time(e.get("occurred_at")))
                except ValidationError:
                    log.warning("CRM %s: stage %r (from %r) is not a workspace stage; fix the stage map",
                                source, stage, props.get("crm_stage"))
                    counts["unknown_stage"] += 1
                    continue
                counts["stages"] += 1
        elif e["type"] == "opportunity":
            account_id = _upsert_opportunity(e, source, props, by_crm, by_domain)
            if account_id is not None:
                counts["opportunities"] += 1
                deal_accounts.add(account_id)
            else:
                counts["unmatched"] += 1
    engine_hooks.opportunities_changed(deal_accounts)
    if commit:
        db.session.commit()
    return counts


def _upsert_opportunity(e, source, props, by_crm, by_domain) -> int | None:
    """The opportunity created or updated from a CRM event: its account's id (None when
    the event names no known account or deal)."""
    account = by_crm.get((source, str(props.get("account_crm_id"))))
    if account is None and e.get("account_domain"):
        try:
            account = by_domain.get(normalize_domain(e["account_domain"]))
        except NormalizeError:
            account = None
    if not e.get("crm_id"):
        return None
    crm_id = f"{source}:{e['crm_id']}"
    opp = db.session.execute(select(Opportunity).where(Opportunity.crm_id == crm_id)).scalar_one_or_none()
    if account is None and opp is None:
        return None
    if opp is None:
        opp = Opportunity(crm_id=crm_id, account_id=account.id, name=props.get("name") or "Opportunity",
                          created_at=_time(props.get("created_at") or e.get("occurred_at")))
        db.session.add(opp)
    if account is not None:
        opp.account_id = account.id
    if props.get("created_at"):
        # The CRM's own creation date (HubSpot createdate, Salesforce CreatedDate) wins over
        # the moment the product first heard of the deal (a webhook carries no creation date).
        opp.created_at = _time(props["created_at"])
    currency = props.get("currency")
    if isinstance(currency, str) and len(currency.strip()) == 3:
        opp.currency = currency.strip().upper()
    opp.name = props.get("name") or opp.name
    try:
        opp.amount = Decimal(str(props["amount"])) if props.get("amount") not in (None, "") else opp.amount
    except InvalidOperation:
        pass
    opp.stage = props.get("crm_stage") or opp.stage
    if props.get("is_closed"):
        opp.closed_at = _time(props.get("close_date") or e.get("occurred_at"))
        opp.won = bool(props.get("is_won"))
    return opp.account_id
