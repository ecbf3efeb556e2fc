"""The account-level KPIs in SQL: the funnel, coverage, each playbook's lift, stage
velocity and pipeline over time. One statement per figure; callers shape the rows.

Events are read through ``ix_events_account_at`` (one probe per account: "did it have
an active event after this moment?"), never by lists of account ids.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, and_, case, cast, exists, func, literal, select, union_all

from abm.db import db
from abm.models import Account, Contact, Enrollment, Event, Opportunity, Playbook, StageChange, Touch
from abm.services.kpi_sql import MARKETING_CHANNELS, PASSIVE_EVENTS, at_or_after, days_between

FUNNEL_STEPS = ("target", "reached", "engaged", "lead", "opportunity", "won")


def _active_since(account_id, since, until=None):
    """The account had an active event at or after ``since`` (and before ``until``)."""
    cond = [Event.account_id == account_id, Event.occurred_at >= since, Event.type.not_in(PASSIVE_EVENTS)]
    if until is not None:
        cond.append(Event.occurred_at < until)
    return exists().where(*cond)


def _touched(account_id, start: datetime, end: datetime):
    return exists().where(Touch.account_id == account_id, Touch.status == "sent",
                          Touch.channel.in_(MARKETING_CHANNELS), Touch.sent_at >= start, Touch.sent_at < end)


def targets(playbook_ids: set[int] | None = None):
    """Accounts enrolled in a playbook and not held out."""
    q = select(Enrollment.account_id).where(Enrollment.state != "held_out")
    if playbook_ids is not None:
        q = q.where(Enrollment.playbook_id.in_(playbook_ids or {-1}))
    return q.distinct().cte("targets")


def funnel_steps(start: datetime, end: datetime, lead_types: list[str], playbook_ids: set[int] | None = None) -> dict:
    """For each funnel step, a query of the accounts at it."""
    t = targets(playbook_ids)
    a = t.c.account_id
    reached = select(a).where(_touched(a, start, end))
    lead = exists().where(Event.account_id == a, Event.occurred_at >= start, Event.occurred_at < end,
                          Event.type.in_(lead_types))
    opp = [Opportunity.account_id == a, Opportunity.created_at >= start, Opportunity.created_at < end]
    return {"target": select(a), "reached": reached,
            "engaged": reached.where(_active_since(a, start, end)),
            "lead": reached.where(lead),
            "opportunity": select(a).where(exists().where(*opp)),
            "won": select(a).where(exists().where(*opp, Opportunity.won.is_(True)))}


def funnel_counts(start: datetime, end: datetime, lead_types: list[str],
                  playbook_ids: set[int] | None = None) -> dict[str, int]:
    """The number of accounts at each funnel step, in one pass over the target accounts.

    The period's touched accounts, lead events and opportunities are read once each (a
    range of ``touches``, ``ix_events_type_at`` and ``ix_opportunities_created``) and
    joined; events are probed through ``ix_events_account_at`` (is there an active event
    in the period?) only for reached accounts.
    """
    t = targets(playbook_ids)
    a = t.c.account_id
    touched = (select(Touch.account_id).where(Touch.status == "sent", Touch.channel.in_(MARKETING_CHANNELS),
                                              Touch.sent_at >= start, Touch.sent_at < end).distinct().cte("touched"))
    opps = (select(Opportunity.account_id, func.max(case((Opportunity.won.is_(True), 1), else_=0)).label("won"))
            .where(Opportunity.created_at >= start, Opportunity.created_at < end)
            .group_by(Opportunity.account_id).cte("opps"))
    # the period's lead events through ix_events_type_at: a few percent of the events, read once
    leads = (select(Event.account_id).where(Event.type.in_(lead_types), Event.occurred_at >= start,
                                            Event.occurred_at < end, Event.account_id.is_not(None))
             .distinct().cte("lead_accounts"))
    reached = touched.c.account_id.is_not(None)

    def when_reached(cond):  # CASE evaluates in order: events are probed for reached accounts only
        return case((reached, case((cond, 1), else_=0)), else_=0)

    flags = (select(case((reached, 1), else_=0).label("reached"),
                    when_reached(_active_since(a, start, end)).label("engaged"),
                    when_reached(leads.c.account_id.is_not(None)).label("lead"),
                    case((opps.c.account_id.is_not(None), 1), else_=0).label("opportunity"),
                    func.coalesce(opps.c.won, 0).label("won"))
             .select_from(t.outerjoin(touched, touched.c.account_id == a).outerjoin(opps, opps.c.account_id == a)
                          .outerjoin(leads, leads.c.account_id == a))
             .subquery())
    row = db.session.execute(select(func.count(), *(func.coalesce(func.sum(c), 0) for c in flags.c))
                             .select_from(flags)).one()
    return dict(zip(FUNNEL_STEPS, (int(v) for v in row), strict=True))


COVERAGE_PARTS = ("target", "reached", "engaged")


def coverage_accounts(part: str, start: datetime, end: datetime):
    """The accounts behind one coverage figure: ``target``, ``reached``, ``engaged``, or a
    buying role (target accounts with a contact of that role reached); the same conditions
    as :func:`coverage_statement` counts."""
    t = targets()
    a = t.c.account_id
    if part == "target":
        return select(a)
    reached = select(a).where(_touched(a, start, end))
    if part == "reached":
        return reached
    if part == "engaged":
        return reached.where(_active_since(a, start, end))
    return (select(Contact.account_id).select_from(Touch).join(Contact, Contact.id == Touch.contact_id)
            .where(Touch.status == "sent", Touch.channel.in_(MARKETING_CHANNELS), Touch.sent_at >= start,
                   Touch.sent_at < end, Contact.account_id.in_(select(a)),
                   func.coalesce(Contact.buying_role, "other") == part))


def coverage_statement(start: datetime, end: datetime, with_counts: bool = True):
    """Target accounts, reached, engaged, and per buying role the target accounts with a
    contact of that role reached: rows (part, role, accounts). Without ``with_counts``,
    the roles' rows only (the first three are the funnel's first three steps)."""
    t = targets()
    a = t.c.account_id
    reached = select(a).where(_touched(a, start, end)).cte("reached")
    role = func.coalesce(Contact.buying_role, "other")
    by_role = (select(literal("role"), role, func.count(Contact.account_id.distinct()))
               .select_from(Touch).join(Contact, Contact.id == Touch.contact_id)
               .where(Touch.status == "sent", Touch.channel.in_(MARKETING_CHANNELS), Touch.sent_at >= start,
                      Touch.sent_at < end, Contact.account_id.in_(select(a)))
               .group_by(role))
    if not with_counts:
        return by_role
    return union_all(
        select(literal("target"), literal(None), func.count()).select_from(t),
        select(literal("reached"), literal(None), func.count()).select_from(reached),
        select(literal("engaged"), literal(None), func.count())
        .where(_active_since(reached.c.account_id, start, end)).select_from(reached),
        by_role,
    )


def lift_statement(playbook_id: int | None = None):
    """Per playbook, enrolled and held-out accounts and how many of each reached engaged,
    opportunity and won after entering: rows (playbook_id, held, n, engaged, opportunity, won).

    An account is held out when any of its enrollments in the playbook is; it entered at
    its first enrollment.
    """
    held = func.max(case((Enrollment.state == "held_out", 1), else_=0))
    q = select(Enrollment.playbook_id, Enrollment.account_id, func.min(Enrollment.entered_at).label("entered"),
               held.label("held")).group_by(Enrollment.playbook_id, Enrollment.account_id)
    if playbook_id is not None:
        q = q.where(Enrollment.playbook_id == playbook_id)
    e = q.cte("entered")
    opp = [Opportunity.account_id == e.c.account_id, Opportunity.created_at >= e.c.entered]

    def share(cond):
        return func.sum(case((cond, 1), else_=0))

    return (select(e.c.playbook_id, e.c.held, func.count(), share(_active_since(e.c.account_id, e.c.entered)),
                   share(exists().where(*opp)), share(exists().where(*opp, Opportunity.won.is_(True))))
            .group_by(e.c.playbook_id, e.c.held))


def playbooks_with_enrollments() -> list[tuple[int, str, str]]:
    return db.session.execute(select(Playbook.id, Playbook.key, Playbook.name).where(
        exists().where(Enrollment.playbook_id == Playbook.id)).order_by(Playbook.key)).all()


def velocity_statement(start: datetime, end: datetime):
    """Days in the stage an account left, for moves in [start, end): rows (stage, days,
    account_id, to_stage, changed_at), the last three naming the move (its list: /kpis/moves).

    The history is ordered as the CRM recorded it (by ``changed_at``). The row recording
    an account's creation ("(none) -> stage", its first row) is dropped when an older
    change exists (a CRM backfill that arrived after the account was created): it is
    when we learned of the account, not a move. When the first change kept is a move
    out of a stage (it names ``from_stage``), the time in that first stage counts from
    the account's creation when that is earlier.
    """
    ordered = select(StageChange.id, StageChange.account_id, StageChange.from_stage, StageChange.to_stage,
                     StageChange.changed_at,
                     func.min(StageChange.id).over(partition_by=StageChange.account_id).label("first_id"),
                     func.min(StageChange.changed_at).over(partition_by=StageChange.account_id).label("oldest")
                     ).subquery()
    creation_outranked = and_(ordered.c.from_stage.is_(None), ordered.c.id == ordered.c.first_id,
                              ordered.c.changed_at > ordered.c.oldest)
    kept = select(ordered).where(~creation_outranked).subquery()
    w = {"partition_by": kept.c.account_id, "order_by": [kept.c.changed_at, kept.c.id]}
    seq = select(kept, func.lag(kept.c.to_stage).over(**w).label("prev_stage"),
                 func.lag(kept.c.changed_at).over(**w).label("prev_at"),
                 func.row_number().over(**w).label("rn")).cte("seq")
    in_period = and_(seq.c.changed_at >= start, seq.c.changed_at < end)
    move = (seq.c.account_id, seq.c.to_stage, seq.c.changed_at)
    return union_all(
        select(seq.c.prev_stage.label("stage"), cast(days_between(seq.c.changed_at, seq.c.prev_at), Float)
               .label("days"), *move)
        .where(seq.c.rn > 1, in_period),
        select(seq.c.from_stage, cast(days_between(seq.c.changed_at, Account.created_at), Float), *move)
        .join(Account, Account.id == seq.c.account_id)
        .where(seq.c.rn == 1, seq.c.from_stage.is_not(None), Account.created_at < seq.c.changed_at, in_period),
    )


def pipeline_statement(start: datetime, end: datetime, window_days: float, span_days: float,
                       playbook_ids: set[int] | None = None):
    """Opportunities created in [start, end) at accounts with a marketing touch within the
    window before (of the ``playbook_ids``, when given: the dashboard's playbook and product
    filters): rows (bucket, pipeline, revenue), bucket = whole spans since ``start``."""
    cond = [Touch.account_id == Opportunity.account_id, Touch.status == "sent", Touch.channel.in_(MARKETING_CHANNELS),
            Touch.sent_at <= Opportunity.created_at, at_or_after(Touch.sent_at, Opportunity.created_at, -window_days)]
    if playbook_ids is not None:
        cond.append(Touch.playbook_id.in_(playbook_ids or {-1}))
    touched = exists().where(*cond)
    bucket = cast(func.floor(days_between(Opportunity.created_at, literal(start, Opportunity.created_at.type))
                             / span_days), Float)
    amount = func.coalesce(Opportunity.amount, 0)
    return (select(bucket.label("b"), func.sum(amount), func.sum(case((Opportunity.won.is_(True), amount), else_=0)))
            .where(Opportunity.created_at >= start, Opportunity.created_at < end, touched)
            .group_by(bucket))

