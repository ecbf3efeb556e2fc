"""Who is behind a web visit: networks attached to accounts, the ip2asn data an admin
loads with its AS-to-account map, cached company look-ups by IP, and known visitors.

Addresses are stored as 32 hex digits (``range_start``/``range_end``, IPv4 and IPv6
alike) so that they compare exactly on PostgreSQL and SQLite; the matching itself runs
on an in-memory index (:mod:`abm.ipranges`) built from these rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from abm.db import Base, BigId, JSONType, UTCDateTime, utcnow


class AccountNetwork(Base):
    """An IP range an admin attached to an account (a CIDR block or ``first-last``)."""

    __tablename__ = "account_networks"
    __table_args__ = (Index("ix_account_networks_account", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    network: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    range_start: Mapped[str] = mapped_column(String(32))
    range_end: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(100), default="admin")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AsnRange(Base):
    """One row of the ip2asn file the admin loaded (replaced whole by each load)."""

    __tablename__ = "asn_ranges"
    __table_args__ = (Index("ix_asn_ranges_asn", "asn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int]
    range_start: Mapped[str] = mapped_column(String(32))
    range_end: Mapped[str] = mapped_column(String(32))
    asn: Mapped[int] = mapped_column(BigInteger)
    country: Mapped[str] = mapped_column(String(10))
    description: Mapped[str] = mapped_column(String(300))


class AsnAccount(Base):
    """An autonomous system (by number, or by its organisation's name as ip2asn writes
    it) that belongs to an account: its ranges then identify the account."""

    __tablename__ = "asn_accounts"
    __table_args__ = (Index("ix_asn_accounts_asn", "asn"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    asn: Mapped[int | None] = mapped_column(BigInteger)
    org_name: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IpLookup(Base):
    """A company look-up by IP from a provider (IPinfo), kept for a configured time."""

    __tablename__ = "ip_lookups"

    ip: Mapped[str] = mapped_column(String(45), primary_key=True)
    company_name: Mapped[str | None] = mapped_column(String(300))
    company_domain: Mapped[str | None] = mapped_column(String(253))
    company_type: Mapped[str | None] = mapped_column(String(50))
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Visitor(Base):
    """A site visitor id (the snippet's first-party cookie) once it became known."""

    __tablename__ = "visitors"

    visitor_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    identified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataVersion(Base):
    """A counter per kind of reference data; a process holding an in-memory copy of the
    data rebuilds it when the counter moves (one primary-key read per check)."""

    __tablename__ = "data_versions"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    version: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FitModel(Base):
    """A trained ICP fit model (:mod:`abm.fitmodel`); the newest is in force."""

    __tablename__ = "fit_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    space: Mapped[dict] = mapped_column(JSONType)
    names: Mapped[list] = mapped_column(JSONType)
    weights: Mapped[list] = mapped_column(JSONType)
    intercept: Mapped[float]
    auc: Mapped[float | None]
    calibration: Mapped[list] = mapped_column(JSONType, default=list)
    won: Mapped[int]
    lost: Mapped[int]
    train_seconds: Mapped[float]
