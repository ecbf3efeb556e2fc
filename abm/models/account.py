"""Accounts, their contacts, stage history and opportunities."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from abm.db import Base, BigId, JSONType, UTCDateTime, utcnow


class Account(Base):
    __tablename__ = "accounts"
    #: No index holds score or score_ref: they change with every engagement batch, and an
    #: update that changes no indexed column's value can be HOT (fillfactor 70 on
    #: PostgreSQL leaves room on each page), which keeps the drain and a full re-score fast
    #: at 100,000 accounts. Lists sorted by score take the top rows of a filtered scan.
    #: ``engagement`` (the level) and ``fit_score`` are in ``ix_accounts_owner_stage_level``
    #: all the same: a batch rewrites them with the same value for all but the few accounts
    #: whose level moves (the fit, once a day), and the index lets the stage and fit by
    #: engagement matrices count 100,000 accounts from the index alone, a seller's from a
    #: range of it (``sales_view.matrices``).
    __table_args__ = (
        Index("ix_accounts_stage", "stage"),
        Index("ix_accounts_owner_stage_level", "owner_id", "stage", "engagement", "fit_score"),
        Index("ix_accounts_tier", "tier"),
        Index("ix_accounts_lower_name", func.lower("name")),
        # Keyset pages of the account list sorted by last change (id breaks ties).
        Index("ix_accounts_updated_id", "updated_at", "id"),
        {"postgresql_with": {"fillfactor": 70}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    industry: Mapped[str | None] = mapped_column(String(100))
    employees: Mapped[int | None]
    annual_revenue: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    country: Mapped[str | None] = mapped_column(String(100))
    tier: Mapped[int | None]
    tags: Mapped[list] = mapped_column(JSONType, default=list)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    stage: Mapped[str] = mapped_column(String(50), default="target")
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)
    crm_ids: Mapped[dict] = mapped_column(JSONType, default=dict)
    notes: Mapped[str | None] = mapped_column(Text)
    #: The engagement score at score_updated_at (decayed by the periodic job and each drain).
    score: Mapped[float] = mapped_column(default=0.0)
    #: Sum of weight * 2 ** ((occurred_at - SCORE_EPOCH) / half_life) over the account's
    #: events: exact under incremental adds, and ordering by it orders by score now.
    score_ref: Mapped[float] = mapped_column(default=0.0)
    #: The part of ``score_ref`` from passive exposure (``heat.passive_types``): the share
    #: ``passive_ref / score_ref`` says what drove the level (the decay cancels out).
    passive_ref: Mapped[float] = mapped_column(default=0.0, server_default=text("0"))
    engagement: Mapped[str] = mapped_column(String(10), default="cold")
    score_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: ICP fit, 0 to 100 (abm.services.fit): the model's when one is in force, else the rules'.
    fit_score: Mapped[float | None]
    fit_rules: Mapped[float | None]
    fit_model: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner = relationship("User", lazy="joined")
    contacts: Mapped[list[Contact]] = relationship(back_populates="account", passive_deletes=True)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_account_role", "account_id", "buying_role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(String(200))
    buying_role: Mapped[str | None] = mapped_column(String(50))
    country: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(50))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)
    crm_ids: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    account: Mapped[Account | None] = relationship(back_populates="contacts")

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)


class StageChange(Base):
    __tablename__ = "stage_changes"
    __table_args__ = (Index("ix_stage_changes_account_at", "account_id", "changed_at"),
                      Index("ix_stage_changes_to_at", "to_stage", "changed_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(50))
    to_stage: Mapped[str] = mapped_column(String(50))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(100))  # api, import, ui:<user>, playbook:<key>, crm:<connector>
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Opportunity(Base):
    __tablename__ = "opportunities"
    __table_args__ = (Index("ix_opportunities_account_created", "account_id", "created_at"),
                      Index("ix_opportunities_created", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    stage: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    won: Mapped[bool | None]
    crm_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    account: Mapped[Account] = relationship()


class Suppression(Base):
    """Emails that must never be contacted again, kept only as SHA-256 hashes (GDPR erase)."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
