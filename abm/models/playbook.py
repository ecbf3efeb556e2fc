"""Playbooks, their versions, the enrollments of accounts and the touches they make."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from abm.db import Base, BigId, JSONType, UTCDateTime, utcnow

PLAYBOOK_STATUSES = ("draft", "active", "paused", "archived")
#: Enrollment states: active (due at next_run_at), waiting (wait_until), held_out
#: (control group, never touched), completed, exited.
ENROLLMENT_STATES = ("active", "waiting", "held_out", "completed", "exited")
TOUCH_STATUSES = ("scheduled", "queued", "sent", "failed", "suppressed", "skipped")


class Playbook(Base):
    __tablename__ = "playbooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    product: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[int] = mapped_column(default=50)
    current_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    versions: Mapped[list[PlaybookVersion]] = relationship(
        back_populates="playbook", order_by="PlaybookVersion.version", cascade="all, delete-orphan")


class PlaybookVersion(Base):
    __tablename__ = "playbook_versions"
    __table_args__ = (UniqueConstraint("playbook_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    playbook_id: Mapped[int] = mapped_column(ForeignKey("playbooks.id", ondelete="CASCADE"))
    version: Mapped[int]
    source: Mapped[str] = mapped_column(Text)
    compiled: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    playbook: Mapped[Playbook] = relationship(back_populates="versions")


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("playbook_id", "account_id", "cycle"),
        Index("ix_enrollments_due", "state", "next_run_at"),
        Index("ix_enrollments_playbook_state", "playbook_id", "state"),
        Index("ix_enrollments_account", "account_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    playbook_id: Mapped[int] = mapped_column(ForeignKey("playbooks.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("playbook_versions.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    cycle: Mapped[int] = mapped_column(default=1)
    state: Mapped[str] = mapped_column(String(20), default="active")
    step_index: Mapped[int] = mapped_column(default=0)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wait_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_reason: Mapped[str | None] = mapped_column(String(50))
    entry_source: Mapped[str] = mapped_column(String(50), default="audience")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Touch(Base):
    """One message or action for one account (and contact), made by one step.

    Unique on (enrollment, step, contact_key) with contact_key = the contact's id, or 0
    for account-level touches: the dispatcher can write a touch twice and get one.
    """

    __tablename__ = "touches"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id", "contact_key", name="uq_touches_key"),
        UniqueConstraint("alert_id", name="uq_touches_alert_id"),
        Index("ix_touches_status_due", "status", "due_at"),
        Index("ix_touches_account_created", "account_id", "created_at"),
        Index("ix_touches_playbook_status", "playbook_id", "status"),
        Index("ix_touches_contact_sent", "contact_id", "sent_at"),
        Index("ix_touches_not_before", "not_before", postgresql_where=text("not_before IS NOT NULL"),
              sqlite_where=text("not_before IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: Empty for a sales alert's touch (``alert_id`` set): alerts go out through the same
    #: claim, retry and rate-limit path as playbook steps.
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    playbook_id: Mapped[int | None] = mapped_column(ForeignKey("playbooks.id", ondelete="CASCADE"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    contact_key: Mapped[int] = mapped_column(default=0)
    step_id: Mapped[str] = mapped_column(String(100))
    step_index: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20))
    connector: Mapped[str | None] = mapped_column(String(100))
    #: The A/B variant of the email step this touch sends (``playbooks.variants``); None
    #: when the step has no variants.
    variant: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    payload: Mapped[dict] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A queued touch released after a retryable failure waits until then (the provider's
    #: Retry-After or the backoff); the dispatcher enqueues it again at that time.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    provider_id: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
