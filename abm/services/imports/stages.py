"""A stage from a file never moves an account back behind a change recorded later.

A CSV export is a picture of the CRM at some moment; imported later, an older picture
must not undo what happened since. For each row that would change a stored account's
stage:

- with a *last modified* cell (Salesforce's and HubSpot's exports carry one), the stage
  is taken only when that date is later than the account's last recorded stage change
  (from the CRM, the API, a page, a playbook or an earlier import), and the change is
  recorded at that date;
- without one, the stage may move forward in the workspace's stage order, never back.

A refused stage is a cell error on ``stage``; the rest of the row is imported.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from abm.db import db
from abm.models import Account, StageChange

#: Date forms of the last-modified cells besides ISO 8601 (Salesforce's US export, European spreadsheets).
DATE_FORMATS = ("%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%d.%m.%Y %H:%M", "%d.%m.%Y")


def parse_modified(text: str) -> datetime:
    """A last-modified cell as an aware UTC datetime (naive forms are read as UTC)."""
    value = None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for form in DATE_FORMATS:
            try:
                value = datetime.strptime(text, form)
                break
            except ValueError:
                continue
    if value is None:
        raise ValueError(f"{text!r} is not a date (write it like 2025-03-01 or 2025-03-01T14:30:00Z)")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stored_stages(domains: list[str]) -> dict[str, tuple[str, datetime | None]]:
    """Per stored domain: (its stage, when its stage last changed, if ever recorded).

    The row recorded when the account was made ("(none) -> stage") is no change: a CRM
    export older than the account's creation here still tells its stage.
    """
    last = (select(func.max(StageChange.changed_at))
            .where(StageChange.account_id == Account.id, StageChange.from_stage.is_not(None))
            .scalar_subquery())
    rows = db.session.execute(select(Account.domain, Account.stage, last).where(Account.domain.in_(domains))).all()
    return {domain: (stage, changed) for domain, stage, changed in rows}


def refusal(stored: str, changed: datetime | None, stage: str, modified: datetime | None,
            order: list[str]) -> str | None:
    """Why the file's ``stage`` must not replace the ``stored`` one (None: it may)."""
    if stage == stored:
        return None
    if modified is not None:
        if changed is not None and changed > modified:
            return (f"the account moved to {stored} on {changed:%Y-%m-%d %H:%M} UTC, after this row was last "
                    f"modified ({modified:%Y-%m-%d %H:%M} UTC); its stage was left unchanged")
        return None
    if stage in order and stored in order and order.index(stage) < order.index(stored):
        return (f"this would move the account back from {stored} to {stage}; a file moves a stage back only "
                "with a last modified date later than the account's last stage change; its stage was left "
                "unchanged")
    return None
