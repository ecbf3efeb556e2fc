"""Late matching: events kept for an email or domain that matched nothing are matched
when the contact or account appears (a periodic job; a few statements, no row loop)."""

from __future__ import annotations

from sqlalchemy import and_, exists, select, update

from abm.db import db
from abm.models import Account, Contact, Event
from abm.normalize import FREE_MAIL_DOMAINS
from abm.services import identification, scores


def match_pending() -> int:
    """Match unmatched events to contacts (by email) and accounts (by domain), and kept
    anonymous visits to accounts (by address); rescore those."""
    by_address = identification.match_pending()
    if by_address:
        scores.rescore(by_address)
        db.session.commit()

    by_email = and_(Event.account_id.is_(None), Event.email.is_not(None),
                    exists().where(Contact.email == Event.email, Contact.account_id.is_not(None)))
    by_domain = and_(Event.account_id.is_(None), Event.domain.is_not(None),
                     Event.domain.not_in(FREE_MAIL_DOMAINS), exists().where(Account.domain == Event.domain))
    accounts = set(db.session.execute(
        select(Contact.account_id).join(Event, Event.email == Contact.email)
        .where(Event.account_id.is_(None), Contact.account_id.is_not(None)).distinct()).scalars())
    accounts |= set(db.session.execute(
        select(Account.id).join(Event, Event.domain == Account.domain)
        .where(Event.account_id.is_(None), Event.domain.not_in(FREE_MAIL_DOMAINS)).distinct()).scalars())
    if not accounts:
        return 0
    contact_of = select(Contact.id).where(Contact.email == Event.email).scalar_subquery()
    account_of_contact = select(Contact.account_id).where(Contact.email == Event.email).scalar_subquery()
    n = db.session.execute(update(Event).where(by_email).values(contact_id=contact_of, account_id=account_of_contact)
                           .execution_options(synchronize_session=False)).rowcount
    account_of_domain = select(Account.id).where(Account.domain == Event.domain).scalar_subquery()
    n += db.session.execute(update(Event).where(by_domain).values(account_id=account_of_domain)
                            .execution_options(synchronize_session=False)).rowcount
    scores.rescore(accounts)
    db.session.commit()
    return n
