"""Engagement events, account score history and alerts to the sales side."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, and_, or_, text
from sqlalchemy.orm import Mapped, mapped_column

from abm.db import Base, BigId, JSONType, UTCDateTime, utcnow

EVENT_TYPES = (
    "email_delivered", "email_open", "email_click", "email_bounce", "email_reply",
    "unsubscribe", "spam_report", "web_visit", "form_fill", "meeting", "ad_impression",
    "ad_click", "content_download", "webinar", "intent", "browser_form_fill",
)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        # ``type`` and the lead event's who ride along so that the KPIs' probes ("an active
        # event after this moment?") and lead scans read the index alone (index-only scans)
        Index("ix_events_account_at", "account_id", "occurred_at", postgresql_include=["type"]),
        Index("ix_events_contact_at", "contact_id", "occurred_at"),
        Index("ix_events_type_at", "type", "occurred_at", postgresql_include=["account_id", "contact_id"]),
        Index("ix_events_unmatched_email", "email", postgresql_where=text("account_id IS NULL"),
              sqlite_where=text("account_id IS NULL")),
        Index("ix_events_unmatched_domain", "domain", postgresql_where=text("account_id IS NULL"),
              sqlite_where=text("account_id IS NULL")),
        # repeated opens of one email are looked up by touch (abm.services.heat)
        Index("ix_events_open_touch", "touch_id", "occurred_at", postgresql_where=text("type = 'email_open'"),
              sqlite_where=text("type = 'email_open'")),
        # Anonymous visits of one visitor, found when the visitor becomes known.
        Index("ix_events_anonymous_visitor", "visitor_id", "occurred_at",
              postgresql_where=text("contact_id IS NULL AND visitor_id IS NOT NULL"),
              sqlite_where=text("contact_id IS NULL AND visitor_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(50))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    email: Mapped[str | None] = mapped_column(String(320))
    domain: Mapped[str | None] = mapped_column(String(253))
    url: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(100))
    touch_id: Mapped[int | None] = mapped_column(BigId)
    playbook_id: Mapped[int | None] = mapped_column(ForeignKey("playbooks.id", ondelete="SET NULL"))
    properties: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: How many of this event one row stands for (ad reports give impressions per day).
    quantity: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    #: The share of the event's points that counts (``abm.services.heat``): 0 for an email
    #: opened again within the window, less than 1 for passive points over the cap.
    factor: Mapped[float] = mapped_column(default=1.0, server_default=text("1"))
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    #: The site snippet's visitor id (a first-party cookie), for stitching once it is known.
    visitor_id: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScoreSnapshot(Base):
    """One score per account per day, for trend lines and week-over-week change."""

    __tablename__ = "score_snapshots"
    # The trend lines read a page's accounts over 30 days from the index alone (on
    # PostgreSQL): the daily rows of one account lie on 30 different pages of the table.
    __table_args__ = (Index("ix_score_snapshots_trend", "account_id", "day", postgresql_include=["score"]),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    score: Mapped[float]


class Alert(Base):
    """A reason for a seller to act on an account: it rose a level, its engagement surged,
    or a playbook's alert step named its owner.

    ``reason`` is what de-duplication works on (``level:warm``, ``level:hot``, ``surge``,
    ``playbook:<id>:<step>``): an account may have one open alert per reason and period,
    so a warm-to-hot escalation or a second surge is a new alert. ``status`` is about
    delivery (Slack, email: open until sent, then sent or failed; ``playbook`` when the
    playbook's own touch delivers it); the inbox state is in ``acknowledged_at``,
    ``snoozed_until`` and ``dismissed_at`` (not relevant, with the seller's ``feedback``).
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_account_created", "account_id", "created_at"),
                      Index("ix_alerts_user_created", "user_id", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(30))  # level_up, surge, playbook
    level: Mapped[str | None] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open, sent, failed, playbook
    connector: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(150))
    score_before: Mapped[float | None]
    score_after: Mapped[float | None]
    #: What was behind it when it was raised: the week's events by type, the contacts and
    #: playbooks they came from (so the inbox explains it without re-reading history).
    details: Mapped[dict | None] = mapped_column(JSONType, default=dict)
    playbook_id: Mapped[int | None] = mapped_column(ForeignKey("playbooks.id", ondelete="SET NULL"))
    step_id: Mapped[str | None] = mapped_column(String(100))
    suggestion: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    feedback: Mapped[str | None] = mapped_column(Text)
    handled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    #: The inbox states, in the order the inbox shows them.
    STATES = ("new", "snoozed", "acknowledged", "not_relevant")

    @classmethod
    def in_state(cls, state: str, now: datetime):
        """SQL: the alert is in ``state`` at ``now`` (a snooze that ran out is new again)."""
        undecided = and_(cls.dismissed_at.is_(None), cls.acknowledged_at.is_(None))
        return {
            "new": and_(undecided, or_(cls.snoozed_until.is_(None), cls.snoozed_until <= now)),
            "snoozed": and_(undecided, cls.snoozed_until > now),
            "acknowledged": and_(cls.dismissed_at.is_(None), cls.acknowledged_at.is_not(None)),
            "not_relevant": cls.dismissed_at.is_not(None),
        }[state]
