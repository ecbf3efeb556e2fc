"""Configured connectors: a type, a name, settings, and secrets kept encrypted."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from abm.db import Base, JSONType, UTCDateTime, utcnow


class ConnectorConfig(Base):
    __tablename__ = "connectors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(50))
    settings: Mapped[dict] = mapped_column(JSONType, default=dict)  # non-secret fields only
    secrets: Mapped[str | None] = mapped_column(Text)  # Fernet token of a JSON object
    enabled: Mapped[bool] = mapped_column(default=True)
    default_for: Mapped[list] = mapped_column(JSONType, default=list)  # channels it is the default of
    unit_cost: Mapped[Decimal] = mapped_column(Numeric(12, 4), default=0)
    rate_limit: Mapped[str | None] = mapped_column(String(50))  # e.g. "600/60" calls per seconds
    state: Mapped[dict] = mapped_column(JSONType, default=dict)  # cursors, list ids
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
