"""SQLAlchemy models, one module per aggregate; imported here so Alembic sees them all."""

from abm.db import Base
from abm.models.account import Account, Contact, Opportunity, StageChange, Suppression
from abm.models.connector import ConnectorConfig
from abm.models.engagement import EVENT_TYPES, Alert, Event, ScoreSnapshot
from abm.models.identity import AccountNetwork, AsnAccount, AsnRange, DataVersion, FitModel, IpLookup, Visitor
from abm.models.imports import IMPORT_STATUSES, ImportFile, ImportRun
from abm.models.kpi import Cost, KpiRollup
from abm.models.playbook import (
    ENROLLMENT_STATES,
    PLAYBOOK_STATUSES,
    TOUCH_STATUSES,
    Enrollment,
    Playbook,
    PlaybookVersion,
    Touch,
)
from abm.models.segment import Segment
from abm.models.settings import WorkspaceSettings
from abm.models.user import ROLES, ApiToken, AuditLog, IdempotencyRecord, User

__all__ = [
    "Base", "Account", "Contact", "Opportunity", "StageChange", "Suppression", "ConnectorConfig",
    "EVENT_TYPES", "Alert", "Event", "ScoreSnapshot", "IMPORT_STATUSES", "ImportFile", "ImportRun", "Cost", "KpiRollup", "ENROLLMENT_STATES",
    "PLAYBOOK_STATUSES", "TOUCH_STATUSES", "Enrollment", "Playbook", "PlaybookVersion", "Touch",
    "Segment", "WorkspaceSettings", "AccountNetwork", "AsnAccount", "AsnRange", "DataVersion", "FitModel", "IpLookup", "Visitor", "ROLES", "ApiToken", "AuditLog", "IdempotencyRecord", "User",
]
