"""What the Outbox page reads from the database: the outbox connectors' folders, and the account and
playbook behind each email file (the files themselves are read by ``abm/web/outbox.py``)."""

from __future__ import annotations

from sqlalchemy import select

from abm.db import db
from abm.models import Account, ConnectorConfig, Enrollment
from abm.models import Playbook as PlaybookRow


def connector_directories() -> list[tuple[str, str]]:
    """(connector name, folder) of every outbox connector that names a folder, by name."""
    rows = db.session.execute(select(ConnectorConfig).where(ConnectorConfig.type == "outbox")
                              .order_by(ConnectorConfig.name)).scalars()
    return [(row.name, directory) for row in rows if (directory := (row.settings or {}).get("directory"))]


def connector_names() -> list[str]:
    """Every outbox connector's name (the touches they carried are the Outbox's emails)."""
    return list(db.session.execute(select(ConnectorConfig.name).where(ConnectorConfig.type == "outbox")
                                   .order_by(ConnectorConfig.name)).scalars())


def playbook_keys(limit: int = 500) -> list[str]:
    """The playbooks' keys, for the Outbox's filter."""
    return list(db.session.execute(select(PlaybookRow.key).order_by(PlaybookRow.key).limit(limit)).scalars())


def enrollment_labels(enrollment_ids: set[int]) -> dict[int, tuple[int, str, str]]:
    """Per enrollment: (account id, account name, playbook key)."""
    if not enrollment_ids:
        return {}
    rows = db.session.execute(
        select(Enrollment.id, Account.id, Account.name, PlaybookRow.key)
        .join(Account, Account.id == Enrollment.account_id)
        .join(PlaybookRow, PlaybookRow.id == Enrollment.playbook_id)
        .where(Enrollment.id.in_(enrollment_ids))).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}
