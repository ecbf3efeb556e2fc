"""The KPIs as SQL over touches, events and opportunities (PostgreSQL and SQLite).

Each function builds one statement; :mod:`abm.services.kpis` runs them and shapes the
rows into the answer. The statements read:

- the sent marketing touches of the period and of the attribution window before it
  (one pass over ``touches``, each row labelled with its group, or with the group of
  each of several groupings computed together);
- the events through ``ix_events_account_at`` (reach and engagement, in
  :mod:`abm.services.kpi_reach`) and
  ``ix_events_type_at`` / ``ix_events_contact_at`` (the lead events of the period, and
  whether the contact had one before);
- the opportunities through ``ix_opportunities_created`` and
  ``ix_opportunities_account_created``.

Attribution joins each conversion (a lead, an opportunity created in the period) to
the touches at its account within the window before it (a range join), numbers them
with window functions and gives each touch its weight under the chosen model
(:data:`MODELS`), so that the weights of one conversion add up to one.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import (
    Float,
    Interval,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import aliased

from abm.db import db
from abm.metrics import CONVERSION, START
from abm.metrics import NULL as NULL_STATE
from abm.models import Account, Event, Opportunity, Playbook, Touch, User
from abm.services import segments

MARKETING_CHANNELS = ("email", "ads", "webhook")
#: Events that say nothing about interest: they do not make an account "engaged".
PASSIVE_EVENTS = ("email_delivered", "ad_impression", "email_bounce", "unsubscribe", "spam_report")
#: Groupings by a field of the touch, of its playbook, or of its account.
GROUP_COLUMNS = {
    "playbook": lambda: func.coalesce(Playbook.key, "(deleted playbook)"),
    "channel": lambda: Touch.channel,
    "product": lambda: func.coalesce(func.nullif(Playbook.product, ""), "(no product)"),
    "tier": lambda: func.coalesce(literal("tier ") + cast(Account.tier, String), "(no tier)"),
    "owner": lambda: func.coalesce(User.email, "(no owner)"),
    "industry": lambda: func.coalesce(func.nullif(Account.industry, ""), "(no industry)"),
    "country": lambda: func.coalesce(func.nullif(Account.country, ""), "(no country)"),
    "segment": None,  # the saved segments (abm.services.segments): see _segment_touches
}
ACCOUNT_GROUPS = ("tier", "owner", "industry", "country")
#: Groupings by a field of the touch or its playbook: several can label one pass over the touches.
TOUCH_GROUPS = ("playbook", "channel", "product")


def label_column(grouping: str, first: str) -> str:
    """The column of :func:`marketing_touches` holding ``grouping``'s label: ``g`` for the
    first grouping asked for, ``g_<grouping>`` for the others (its ``also``)."""
    return "g" if grouping == first else f"g_{grouping}"


def _postgres() -> bool:
    return db.dialect == "postgresql"


def days_between(later, earlier):
    """``later - earlier`` in days, as a number."""
    if _postgres():
        return (func.date_part("epoch", later) - func.date_part("epoch", earlier)) / 86400.0
    return func.julianday(later) - func.julianday(earlier)


def _plus(b, days: float):
    return b + literal(timedelta(days=days), Interval()) if days else b


def at_or_after(a, b, days: float = 0):
    """``a >= b + days``, exact to the microsecond on PostgreSQL, the millisecond on SQLite."""
    if _postgres():
        return a >= _plus(b, days)
    fmt = "%Y-%m-%d %H:%M:%f"
    return func.strftime(fmt, a) >= func.strftime(fmt, b, f"{days:+g} days")


def at_or_before(a, b, days: float = 0):
    """``a <= b + days``."""
    if _postgres():
        return a <= _plus(b, days)
    fmt = "%Y-%m-%d %H:%M:%f"
    return func.strftime(fmt, a) <= func.strftime(fmt, b, f"{days:+g} days")


def marketing_touches(group_by: str, since: datetime, until: datetime, playbook_ids: set[int] | None,
                      also: tuple[str, ...] = ()):
    """Sent marketing touches in [since, until), each with its group ``g`` (and, for each
    grouping in ``also``, one of :data:`TOUCH_GROUPS`, its group in ``g_<grouping>``)."""
    assert set(also) <= set(TOUCH_GROUPS), also
    q = (_segment_touches() if group_by == "segment" else
         select(Touch.id.label("touch_id"), Touch.account_id, Touch.sent_at, Touch.connector,
                GROUP_COLUMNS[group_by]().label("g"), *(GROUP_COLUMNS[a]().label(f"g_{a}") for a in also),
                literal(1.0).label("share"))
         .select_from(Touch).outerjoin(Playbook, Playbook.id == Touch.playbook_id))
    q = (q.where(Touch.status == "sent", Touch.channel.in_(MARKETING_CHANNELS), Touch.sent_at >= since,
                Touch.sent_at < until))
    if group_by in ACCOUNT_GROUPS:
        q = q.join(Account, Account.id == Touch.account_id)
    if group_by == "owner":
        q = q.outerjoin(User, User.id == Account.owner_id)
    if playbook_ids is not None:
        q = q.where(Touch.playbook_id.in_(playbook_ids or {-1}))
    return q.cte("mt")


def _segment_touches():
    """The touches with the saved segments their account is in now, one row per segment
    (``(no segment)`` for an account in none). Segments may overlap: a touch at an
    account in two segments counts as one touch in each, and ``share`` (1/2 there) splits
    what it carries, its unit cost and its weight in a conversion, between them, so that
    costs and credits still add up to the totals."""
    members = segments.memberships()
    q = (select(Touch.id.label("touch_id"), Touch.account_id, Touch.sent_at, Touch.connector)
         .select_from(Touch).outerjoin(Playbook, Playbook.id == Touch.playbook_id))
    if members is None:
        return q.add_columns(literal("(no segment)").label("g"), literal(1.0).label("share"))
    m = members.subquery()
    return q.outerjoin(m, m.c.account_id == Touch.account_id).add_columns(
        func.coalesce(m.c.segment, "(no segment)").label("g"),
        (literal(1.0) / func.count().over(partition_by=Touch.id)).label("share"))


def answer_row(part: str, g, *values, b, grouping: str | None = None):
    """One row of a multi-part answer: (grouping, part, group, period, v1..v4), numbers as
    floats; a row of the totals (``g`` None) has no grouping: it is every grouping's;
    ``b``: which period of the :class:`Cut` it is for."""
    values = list(values) + [literal(0.0)] * (4 - len(values))
    return [(literal(grouping) if grouping else cast(null(), String)).label("grouping"), literal(part).label("part"),
            (g if g is not None else cast(null(), String)).label("g"), b.label("b"),
            *(cast(v, Float).label(f"v{i}") for i, v in enumerate(values, 1))]


def periods_cte(spans: list[tuple[datetime, datetime]]):
    """Consecutive periods (start, end), a series of weeks, as rows (``b``: their
    number, ``b_start``, ``b_end``)."""
    at = Touch.sent_at.type
    return union_all(*(select(literal(i).label("b"), literal(start, at).label("b_start"),
                              literal(end, at).label("b_end")) for i, (start, end) in enumerate(spans))).cte("periods")


class Cut:
    """How the rows of consecutive periods ``spans`` (start, end) are told apart: by a
    column ``b`` (their number) and ``b_end`` when there are several; for one period,
    which is most questions, by nothing (its number 0 and its end constants), so that
    its statements are plain ranges."""

    def __init__(self, spans: list[tuple[datetime, datetime]]):
        self.spans, self.many = spans, len(spans) > 1

    def number(self, rel):
        return rel.c.b if self.many else literal(0)

    def keys(self, rel) -> list:
        return [rel.c.b] if self.many else []

    def end(self, rel):
        return rel.c.b_end if self.many else literal(self.spans[0][1], Touch.sent_at.type)

    def same(self, a, b) -> list:
        """The condition that rows of ``a`` and ``b`` are of the same period."""
        return [a.c.b == b.c.b] if self.many else []


def _leads(lead_types: list[str], start: datetime, end: datetime):
    """Each contact's first ever lead event, when it falls in [start, end)."""
    earlier = aliased(Event)
    return (select(Event.contact_id.label("conv_id"), Event.account_id, func.min(Event.occurred_at).label("at"))
            .where(Event.type.in_(lead_types), Event.contact_id.is_not(None), Event.account_id.is_not(None),
                   Event.occurred_at >= start, Event.occurred_at < end,
                   ~exists().where(earlier.contact_id == Event.contact_id, earlier.account_id == Event.account_id,
                                   earlier.type.in_(lead_types), earlier.occurred_at < start))
            .group_by(Event.contact_id, Event.account_id).cte("leads"))


def conversions(lead_types: list[str], start: datetime, end: datetime, window_days: float, with_lead_at: bool):
    """Leads and opportunities created in [start, end), one row each, with their outcomes.

    ``to_opp``: a lead whose account had an opportunity created within the window after
    it; ``lead_at`` (for the W-shaped model): the account's first lead event before
    the opportunity.
    """
    leads = _leads(lead_types, start, end)
    opp = aliased(Opportunity)
    to_opp = case((exists().where(opp.account_id == leads.c.account_id, at_or_after(opp.created_at, leads.c.at),
                                  at_or_before(opp.created_at, leads.c.at, window_days)), 1), else_=0)
    lead_at = (select(func.min(Event.occurred_at)).where(
        Event.account_id == Opportunity.account_id, Event.type.in_(lead_types),
        Event.occurred_at <= Opportunity.created_at).scalar_subquery() if with_lead_at else null())
    zero = literal(0)
    return union_all(
        select(literal("lead").label("kind"), leads.c.conv_id, leads.c.account_id, leads.c.at,
               to_opp.label("to_opp"), zero.label("closed"), zero.label("won_closed"), zero.label("won"),
               cast(literal(0), Float).label("amount"), cast(null(), leads.c.at.type).label("lead_at")),
        select(literal("opp"), Opportunity.id, Opportunity.account_id, Opportunity.created_at, zero,
               case((Opportunity.closed_at.is_not(None), 1), else_=0),
               case((and_(Opportunity.closed_at.is_not(None), Opportunity.won.is_(True)), 1), else_=0),
               case((Opportunity.won.is_(True), 1), else_=0), cast(func.coalesce(Opportunity.amount, 0), Float),
               lead_at)
        .where(Opportunity.created_at >= start, Opportunity.created_at < end),
    ).cte("conv")


def numbered(conv, mt, window_days: float):
    """Each conversion joined to the touches at its account within the window before it,
    numbered in time order (``rn`` of ``n``)."""
    per_conv = [conv.c.kind, conv.c.conv_id, conv.c.account_id]
    order = [mt.c.sent_at, mt.c.touch_id]
    # a touch has one row per group it is in (several only for overlapping segments): its rows share one number
    labels = [c for c in mt.c if c.name == "g" or c.name.startswith("g_")]
    ranked = (select(conv, mt.c.touch_id, mt.c.sent_at, *labels, mt.c.share,
                     func.dense_rank().over(partition_by=per_conv, order_by=order).label("rn"))
              .select_from(conv.join(mt, and_(mt.c.account_id == conv.c.account_id, mt.c.sent_at <= conv.c.at,
                                              at_or_after(mt.c.sent_at, conv.c.at, -window_days))))
              .cte("p00"))
    by_conv = [ranked.c.kind, ranked.c.conv_id, ranked.c.account_id]
    return select(ranked, func.max(ranked.c.rn).over(partition_by=by_conv).label("n")).cte("p0")


def weighted(p0, model: str, half_life_days: float, removal: dict[str, float] | None = None):
    """The numbered touches with the model's weight ``w``; a conversion's weights add up to 1.

    ``removal``: the Markov model's removal effect of each group.
    """
    by_conv = [p0.c.kind, p0.c.conv_id, p0.c.account_id]
    if model == "w_shaped":  # the number of the last touch before the lead: the middle anchor
        aux = func.max(case((p0.c.sent_at <= p0.c.lead_at, p0.c.rn))).over(partition_by=by_conv)
    elif model == "time_decay":  # 2 ** -(age / half-life)
        aux = func.exp(-math.log(2) * days_between(p0.c.at, p0.c.sent_at) / half_life_days)
    elif model == "markov":  # the group's removal effect, shared among its touches in the path
        effect = case(removal, value=p0.c.g, else_=0.0) if removal else literal(0.0)
        aux = effect / func.count().over(partition_by=[*by_conv, p0.c.g])
    else:
        aux = literal(0)
    p1 = select(p0, aux.label("aux")).cte("p1")
    w = weight(model, p1, by_conv=[p1.c.kind, p1.c.conv_id, p1.c.account_id])
    # a touch's weight split between the groups it is in (the Markov model's groups are its units already)
    return select(p1, (w if model == "markov" else w * p1.c.share).label("w")).cte("path")


def transitions_statement(p0, inp, conv):
    """The journeys as moves between states, for the Markov model: rows (from, to, count).

    A conversion's journey is its numbered touches, ending in ``(conversion)``; an
    account reached in the period without a conversion has its touches of the period,
    ending in ``(null)``.
    """
    by_conv = [p0.c.kind, p0.c.conv_id, p0.c.account_id]
    conv_next = select(p0.c.g, p0.c.rn, func.lead(p0.c.g).over(partition_by=by_conv, order_by=p0.c.rn)
                       .label("nxt")).subquery()
    lost = inp.c.account_id.not_in(select(conv.c.account_id))
    by_account = {"partition_by": inp.c.account_id, "order_by": [inp.c.sent_at, inp.c.touch_id]}
    lost_next = select(inp.c.g, func.row_number().over(**by_account).label("rn"),
                       func.lead(inp.c.g).over(**by_account).label("nxt")).where(lost).subquery()
    moves = union_all(
        select(literal(START).label("a"), conv_next.c.g.label("b")).where(conv_next.c.rn == 1),
        select(conv_next.c.g, func.coalesce(conv_next.c.nxt, CONVERSION)),
        select(literal(START), lost_next.c.g).where(lost_next.c.rn == 1),
        select(lost_next.c.g, func.coalesce(lost_next.c.nxt, NULL_STATE)),
    ).subquery()
    return select(moves.c.a, moves.c.b, func.count()).group_by(moves.c.a, moves.c.b)


def _u_shaped(rn, n):
    return case((n == 1, 1.0), (n == 2, 0.5), (or_(rn == 1, rn == n), 0.4), else_=0.2 / (n - 2))


def weight(model: str, p, by_conv):
    """The weight of touch number ``rn`` of ``n`` under ``model`` (docs/kpis.md, "Attribution")."""
    rn, n, aux = p.c.rn, p.c.n, p.c.aux
    if model == "last_touch":
        return case((rn == n, 1.0), else_=0.0)
    if model == "first_touch":
        return case((rn == 1, 1.0), else_=0.0)
    if model == "linear":
        return 1.0 / n
    if model == "u_shaped":
        return _u_shaped(rn, n)
    if model == "w_shaped":
        return case((and_(aux > 1, aux < n), case((n == 3, 1.0 / 3), (or_(rn == 1, rn == aux, rn == n), 0.3),
                                                  else_=0.1 / (n - 3))), else_=_u_shaped(rn, n))
    if model in ("time_decay", "markov"):
        total = func.sum(aux if model == "markov" else aux * p.c.share).over(partition_by=by_conv)
        return case((total > 0, aux / total), else_=1.0 / n)
    raise ValueError(f"no SQL weight for model {model!r}")


def _median_rows(part: str, values, grouping: str, cut: Cut):
    """(part, g, median of v) per group and period, by numbering the values of each."""
    each = [values.c.g, *cut.keys(values)]
    numbered = select(*each, values.c.v,
                      func.row_number().over(partition_by=each, order_by=values.c.v).label("i"),
                      func.count().over(partition_by=each).label("k")).subquery()
    return (select(*answer_row(part, numbered.c.g, func.avg(numbered.c.v), grouping=grouping, b=cut.number(numbered)))
            .where(or_(numbered.c.i == (numbered.c.k + 1) // 2, numbered.c.i == (numbered.c.k + 2) // 2))
            .group_by(numbered.c.g, *cut.keys(numbered)))


def _credits(path, grouping: str, column: str, cut: Cut) -> list:
    """One grouping's credits per group, period and kind, influence per group and period, and medians."""
    lead, opp = path.c.kind == "lead", path.c.kind == "opp"
    w, g, b, per = path.c.w, path.c[column], cut.number(path), cut.keys(path)
    first = (select(g.label("g"), *per, path.c.conv_id, path.c.amount, path.c.won,
                    days_between(path.c.at, func.min(path.c.sent_at)).label("v"))
             .where(opp).group_by(g, *per, path.c.conv_id, path.c.amount, path.c.won, path.c.at)
             .cte(f"influence_{column}"))
    return [
        # a touch that gets no share creates no group (first and last touch)
        select(*answer_row("leads", g, func.sum(w), func.sum(w * path.c.to_opp), grouping=grouping, b=b))
        .where(lead, w > 0).group_by(g, *per),
        select(*answer_row("opps", g, func.sum(w), func.sum(w * path.c.closed), func.sum(w * path.c.won_closed),
                           grouping=grouping, b=b)).where(opp, w > 0).group_by(g, *per),
        select(*answer_row("influence", first.c.g, func.sum(first.c.amount), func.sum(first.c.amount * first.c.won),
                           grouping=grouping, b=cut.number(first))).group_by(first.c.g, *cut.keys(first)),
        _median_rows("days_to_opp", first, grouping, cut),
    ]


def attribution_statement(path, columns: dict[str, str], cut: Cut):
    """Credits per group and kind, influence per group, medians (for each grouping in
    ``columns``, the column of ``path`` with its groups), and the totals, for each period
    of ``cut`` the conversions fall in (the conversions of ``path`` are those of the
    whole span)."""
    if cut.many:
        periods = periods_cte(cut.spans)
        path = (select(path, periods.c.b)
                .join(periods, and_(path.c.at >= periods.c.b_start, path.c.at < periods.c.b_end)).cte("path_in"))
    convs = (select(path.c.kind, path.c.conv_id, path.c.account_id, path.c.won, path.c.amount, *cut.keys(path))
             .distinct().cte("converted"))
    is_opp = case((convs.c.kind == "opp", 1), else_=0)
    b, per = cut.number(convs), cut.keys(convs)
    return union_all(
        *(part for grouping, column in columns.items() for part in _credits(path, grouping, column, cut)),
        select(*answer_row("totals", None, func.sum(1 - is_opp), func.sum(is_opp), func.sum(is_opp * convs.c.won),
                           func.sum(is_opp * convs.c.amount), b=b)).group_by(*per),
        select(*answer_row("revenue", None, func.sum(is_opp * convs.c.won * convs.c.amount), b=b)).group_by(*per),
    )


def tune() -> None:
    """On PostgreSQL, for the current transaction only: no JIT compilation (tens of ms
    per statement and nothing gained on these statements: trends of 12 weeks at 100,000
    accounts 3.3 s with it, 2.6 s without). A larger ``work_mem`` was measured too and
    left alone: it made the 365-day answer 5% slower."""
    if _postgres():
        db.session.execute(text("SET LOCAL jit = off"))


def run(statement) -> list:
    return db.session.execute(statement).all()
