"""Reach and engagement per group and period, in SQL: the touches sent in each period,
the accounts they reached, and which of those engaged.

An account is engaged for a group when it had an active event (not in
:data:`~abm.services.kpi_sql.PASSIVE_EVENTS`) at or after the group's first touch there
in the period, before the period's end. Each reached account's last active event of the
period is probed once (a backward probe of ``ix_events_account_at``, index-only on
PostgreSQL) and shared by every grouping computed together.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select, union_all

from abm.models import ConnectorConfig, Event
from abm.services.kpi_sql import PASSIVE_EVENTS, Cut, answer_row, periods_cte


def in_periods(mt, cut: Cut):
    """The touches of ``mt`` sent in one of the periods of ``cut`` (with ``b`` and
    ``b_end`` when there are several: a range join to :func:`periods_cte`)."""
    if not cut.many:
        start, end = cut.spans[0]
        return select(mt).where(mt.c.sent_at >= start, mt.c.sent_at < end).cte("inp")
    periods = periods_cte(cut.spans)
    return (select(mt, periods.c.b, periods.c.b_end)
            .join(periods, and_(mt.c.sent_at >= periods.c.b_start, mt.c.sent_at < periods.c.b_end)).cte("inp"))


def last_active(inp, cut: Cut):
    """Per account reached in a period (``inp`` of :func:`in_periods`): its last active
    event (not in :data:`PASSIVE_EVENTS`) at or after its first touch of the period and
    before the period's end (``at``, NULL when none). One backward probe of
    ``ix_events_account_at`` per account and period, shared by every grouping: the
    account is engaged for a group when ``at`` is at or after that group's first touch there."""
    keys = [*cut.keys(inp), *([inp.c.b_end] if cut.many else [])]
    firsts = (select(*keys, inp.c.account_id, func.min(inp.c.sent_at).label("first"))
              .group_by(*keys, inp.c.account_id).subquery())
    at = (select(Event.occurred_at).where(Event.account_id == firsts.c.account_id, Event.occurred_at >= firsts.c.first,
                                          Event.occurred_at < cut.end(firsts), Event.type.not_in(PASSIVE_EVENTS))
          .order_by(Event.occurred_at.desc()).limit(1).scalar_subquery())
    return select(*cut.keys(firsts), firsts.c.account_id, at.label("at")).cte("last_active")


def engaged_pairs(inp, cut: Cut, column: str = "g", last=None):
    """(group, [period,] account) where the account had an active event at or after the
    group's first touch there in the period, before the period's end; groups from
    ``inp``'s ``column``, ``last`` the :func:`last_active` of ``inp`` when several
    groupings share it."""
    last = last if last is not None else last_active(inp, cut)
    g = inp.c[column]
    firsts = (select(g.label("g"), *cut.keys(inp), inp.c.account_id, func.min(inp.c.sent_at).label("first"))
              .group_by(g, *cut.keys(inp), inp.c.account_id).subquery())
    return (select(firsts.c.g, *cut.keys(firsts), firsts.c.account_id)
            .join(last, and_(last.c.account_id == firsts.c.account_id, *cut.same(last, firsts)))
            .where(last.c.at >= firsts.c.first).cte(f"engaged_{column}"))


def reach_statement(mt, cut: Cut, columns: dict[str, str]):
    """Touches, accounts reached, unit cost and engaged accounts per group and period, and
    the totals of each period; ``columns``: each grouping asked for and the column of
    ``mt`` with its groups."""
    inp = in_periods(mt, cut)
    b, per = cut.number(inp), cut.keys(inp)
    unit = func.coalesce(func.sum(ConnectorConfig.unit_cost * inp.c.share), 0)
    costed = inp.outerjoin(ConnectorConfig, ConnectorConfig.name == inp.c.connector)
    last = last_active(inp, cut)
    parts = [select(*answer_row("reach", None, func.count(inp.c.touch_id.distinct()),
                                func.count(inp.c.account_id.distinct()), unit, b=b)).select_from(costed).group_by(*per),
             select(*answer_row("engaged", None, func.count(last.c.account_id), b=cut.number(last)))
             .where(last.c.at.is_not(None)).group_by(*cut.keys(last))]
    for grouping, column in columns.items():
        g = inp.c[column]
        engaged = engaged_pairs(inp, cut, column, last)
        parts += [select(*answer_row("reach", g, func.count(), func.count(inp.c.account_id.distinct()), unit,
                                     grouping=grouping, b=b)).select_from(costed).group_by(g, *per),
                  select(*answer_row("engaged", engaged.c.g, func.count(), grouping=grouping, b=cut.number(engaged)))
                  .group_by(engaged.c.g, *cut.keys(engaged))]
    return union_all(*parts)
