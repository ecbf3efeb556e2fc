"""Contacts linked to their account by the account's id in the CRM.

CRM contact exports name the contact's account by its CRM id: Salesforce's ``Account
ID``, HubSpot's ``Associated Company ID``. Accounts imported from the same CRM keep that
id (``Account.crm_ids``), so the id links a contact whose email domain differs from the
account's website (a subsidiary, a personal address). It comes before any domain: the
account-domain column, then the email's domain, are used only when no account has the id.

Salesforce ids come in a 15-character case-sensitive form and an 18-character form (the
15 plus a checksum); reports export one, the API the other. They are compared on their
first 15 characters.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from abm.db import db
from abm.models import Account
from abm.services.imports.importer import Row
from abm.services.imports.report import ImportReport

NAMES = {"salesforce": "Salesforce", "hubspot": "HubSpot"}


def _key(source: str, crm_id: str) -> str:
    return crm_id[:15] if source == "salesforce" else crm_id


def link(rows: list[Row], report: ImportReport) -> None:
    """Set ``account_domain`` of each row whose ``account_crm`` (source, id) names a stored account; a row
    whose id matches none is reported and keeps its other ways to an account."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        source, crm_id = row.values["account_crm"]
        wanted[source].add(_key(source, crm_id))
    domains: dict[tuple[str, str], str] = {}
    for source, keys in wanted.items():
        stored = Account.crm_ids[source].as_string()
        if source == "salesforce":
            stored = func.substr(stored, 1, 15)
        for key, domain in db.session.execute(select(stored, Account.domain).where(stored.in_(sorted(keys)))):
            domains[(source, key)] = domain
    db.session.commit()  # end the look-up's transaction (the reading thread's)
    for row in rows:
        source, crm_id = row.values.pop("account_crm")
        domain = domains.get((source, _key(source, crm_id)))
        if domain is not None:
            row.values["account_domain"] = domain
            row.values["account_domain_column"] = f"account_{source}"
        else:
            report.error(row.number, f"account_{source}", f"no account has the {NAMES[source]} id {crm_id} "
                         "(import the accounts of the same export first); the contact's account was found by "
                         "its domain instead")
