"""Traceability: the accounts, opportunities, leads, stage moves and spend rows behind
each KPI figure.

Each list is the same SQL as the figure (:mod:`abm.services.kpi_sql`), stopped before
it counts: the accounts a group reached or engaged, the accounts and opportunities whose
conversions it was credited, the opportunities behind its pipeline and revenue (each
with the days from the group's first touch: its median days to opportunity), the
spend entries and per-touch unit costs behind its cost, the credited leads behind its
lead to opportunity rate and the credited closed opportunities behind its opportunity
to won rate (each with its credit, the numerator's rows marked), and the stage moves
behind a stage's velocity, and the touches behind a group's touch count (newest first,
at most :data:`TOUCH_LIST_LIMIT` listed, all counted).
"""

from __future__ import annotations

from sqlalchemy import func, select

from abm import metrics
from abm.db import db
from abm.models import Account, ConnectorConfig, Contact, Cost, Opportunity, Playbook, Touch
from abm.services import kpi_accounts, kpi_glossary, kpi_reach, kpi_sql, kpis, spend
from abm.services import settings as settings_service

#: The most touches, and accounts, one list shows (its CSV included): a request does bounded work.
TOUCH_LIST_LIMIT = ACCOUNT_LIST_LIMIT = 100_000
BEHIND = ("reached", "engaged", "leads", "opportunities", "won", "funnel", "coverage")


def accounts_behind(metric: str, group_by: str, group: str | None, period: kpis.Period, playbook: str | None = None,
                    product: str | None = None, model: str | None = None) -> list[int]:
    """The ids of the accounts behind one figure (see :func:`accounts_query`), in order."""
    q = accounts_query(metric, group_by, group, period, playbook, product, model)
    return sorted(db.session.execute(q.distinct()).scalars())


def account_list(metric: str, group_by: str, group: str | None, period: kpis.Period, playbook: str | None = None,
                 product: str | None = None, model: str | None = None,
                 limit: int = ACCOUNT_LIST_LIMIT) -> tuple[int, list[dict]]:
    """The accounts behind one figure: their number, and the ``limit`` highest scores
    among them (then by name), read in the database (a request does bounded work)."""
    ids = accounts_query(metric, group_by, group, period, playbook, product, model).distinct().subquery()
    total = db.session.execute(select(func.count()).select_from(ids)).scalar_one()
    q = (select(Account).join(ids, ids.c.account_id == Account.id)
         .order_by(Account.score.desc(), Account.name, Account.id).limit(limit))
    return total, [{"id": a.id, "name": a.name, "domain": a.domain, "stage": a.stage, "engagement": a.engagement,
                    "score": round(a.score, 1)} for a in db.session.execute(q).scalars()]


def accounts_query(metric: str, group_by: str, group: str | None, period: kpis.Period, playbook: str | None = None,
                   product: str | None = None, model: str | None = None):
    """The query of the accounts behind one figure (a column ``account_id``, repeats
    possible): ``reached``, ``engaged``, ``leads`` (credited to the group),
    ``opportunities`` or ``won`` (influenced by the group), every group's when ``group``
    is empty (the totals); ``funnel`` with the step as ``group``; ``coverage`` with
    ``target``, ``reached``, ``engaged`` or a buying role as ``group``."""
    if metric not in BEHIND:
        raise kpis.KpiError(f"unknown metric {metric!r} (metrics: {', '.join(BEHIND)})")
    if metric == "coverage":
        if not group:
            raise kpis.KpiError(f"name the coverage figure as group: {', '.join(kpi_accounts.COVERAGE_PARTS)} "
                                "or a buying role")
        return _as_account_id(kpi_accounts.coverage_accounts(group, period.start, period.end))
    if metric == "funnel":
        if group not in kpis.FUNNEL_STEPS:
            raise kpis.KpiError(f"unknown funnel step {group!r} (steps: {', '.join(kpis.FUNNEL_STEPS)})")
        steps = kpi_accounts.funnel_steps(period.start, period.end, kpis.lead_types(), kpis.playbook_ids_for(playbook, product))
        return _as_account_id(steps[group])
    kpis.check_group(group_by)
    mt, path = kpis.touches_and_path(group_by, period, playbook, product, model)
    cut = kpi_sql.Cut([(period.start, period.end)])
    inp = kpi_reach.in_periods(mt, cut)
    if metric == "reached":
        q = select(inp.c.account_id).where(inp.c.g == group) if group else select(inp.c.account_id)
    elif metric == "engaged":
        pairs = kpi_reach.engaged_pairs(inp, cut)
        q = select(pairs.c.account_id).where(pairs.c.g == group) if group else select(pairs.c.account_id)
    else:
        q = select(path.c.account_id).where(path.c.g == group) if group else select(path.c.account_id)
        q = q.where(path.c.kind == "lead", path.c.w > 0) if metric == "leads" else q.where(path.c.kind == "opp")
        if metric == "won":
            q = q.where(path.c.won == 1)
    return q


def _as_account_id(q):
    """A one-column query of account ids, its column named ``account_id``."""
    sub = q.subquery()
    return select(list(sub.c)[0].label("account_id"))


def opportunities_behind(group_by: str, group: str | None, period: kpis.Period, playbook: str | None = None,
                         product: str | None = None, won: bool = False) -> list[dict]:
    """The opportunities behind a group's pipeline influenced (``won``: its revenue); every
    group's when ``group`` is None (the totals, each opportunity once)."""
    kpis.check_group(group_by)
    _, path = kpis.touches_and_path(group_by, period, playbook, product, None)
    # the days from the group's first touch (any group's, for the totals): what its median counts
    firsts = select(path.c.conv_id, kpi_sql.days_between(path.c.at, func.min(path.c.sent_at)).label("days")).where(
        path.c.kind == "opp")
    if group is not None:
        firsts = firsts.where(path.c.g == group)
    firsts = firsts.group_by(path.c.conv_id, path.c.at).subquery()
    q = (select(Opportunity, Account.name, firsts.c.days).join(firsts, firsts.c.conv_id == Opportunity.id)
         .join(Account, Account.id == Opportunity.account_id).order_by(Opportunity.created_at, Opportunity.id))
    if won:
        q = q.where(Opportunity.won.is_(True))
    return [{**_opportunity(o, name), "days_from_first_touch": round(float(days), 2)}
            for o, name, days in db.session.execute(q)]


def _opportunity(o: Opportunity, account: str) -> dict:
    return {"id": o.id, "account_id": o.account_id, "account": account, "name": o.name,
            "amount": float(o.amount or 0), "currency": o.currency, "created_at": o.created_at.isoformat(),
            "closed_at": o.closed_at.isoformat() if o.closed_at else None, "won": o.won}


def _credits(kind: str, group_by: str, group: str | None, period: kpis.Period, playbook: str | None,
             product: str | None, model: str | None, *outcomes: str):
    """Each conversion of ``kind`` credited to the group (every group's when None), with its
    credit (the sum of the group's touches' weights, as the figures add them) and ``outcomes``."""
    kpis.check_group(group_by)
    _, path = kpis.touches_and_path(group_by, period, playbook, product, model)
    cols = [path.c.conv_id, path.c.account_id, path.c.at, *(path.c[o] for o in outcomes)]
    q = select(*cols, func.sum(path.c.w).label("credit")).where(path.c.kind == kind, path.c.w > 0)
    if group is not None:
        q = q.where(path.c.g == group)
    return q.group_by(*cols).subquery()


def leads_behind(group_by: str, group: str | None, period: kpis.Period, playbook: str | None = None,
                 product: str | None = None, model: str | None = None) -> list[dict]:
    """The leads credited to a group, each with its credit and whether its account had an
    opportunity created within the window after it: the rows behind the group's lead to
    opportunity rate (the credit of the marked ones over the credit of all)."""
    c = _credits("lead", group_by, group, period, playbook, product, model, "to_opp")
    q = (select(c, Contact.email, Account.name).join(Contact, Contact.id == c.c.conv_id)
         .join(Account, Account.id == c.c.account_id).order_by(c.c.at, c.c.conv_id))
    return [{"contact_id": r.conv_id, "contact": r.email, "account_id": r.account_id, "account": r.name,
             "lead_at": r.at.isoformat(), "credit": round(float(r.credit), 4), "became_opportunity": bool(r.to_opp)}
            for r in db.session.execute(q)]


def closed_behind(group_by: str, group: str | None, period: kpis.Period, playbook: str | None = None,
                  product: str | None = None, model: str | None = None) -> list[dict]:
    """The closed opportunities credited to a group, each with its credit, the won ones
    marked: the rows behind the group's opportunity to won rate."""
    c = _credits("opp", group_by, group, period, playbook, product, model, "closed")
    q = (select(Opportunity, Account.name, c.c.credit).join(c, c.c.conv_id == Opportunity.id)
         .join(Account, Account.id == Opportunity.account_id).where(c.c.closed == 1)
         .order_by(Opportunity.created_at, Opportunity.id))
    return [{**_opportunity(o, name), "credit": round(float(credit), 4)} for o, name, credit in db.session.execute(q)]


def stage_moves(period: kpis.Period, stage: str | None = None) -> list[dict]:
    """The stage moves behind stage velocity (out of ``stage``, or all), each with the days
    spent in the stage left: their median is the stage's figure."""
    if stage is not None and stage not in settings_service.current()["stages"]:
        raise kpis.KpiError(f"unknown stage {stage!r}")
    m = kpi_accounts.velocity_statement(period.start, period.end).subquery()
    q = (select(m, Account.name).join(Account, Account.id == m.c.account_id).order_by(m.c.changed_at, m.c.account_id))
    if stage is not None:
        q = q.where(m.c.stage == stage)
    return [{"account_id": r.account_id, "account": r.name, "from_stage": r.stage, "to_stage": r.to_stage,
             "moved_at": r.changed_at.isoformat(), "days_in_stage": round(float(r.days), 2)}
            for r in db.session.execute(q)]


def spend_behind(group_by: str, group: str | None, period: kpis.Period, playbook: str | None = None,
                 product: str | None = None) -> list[dict]:
    """The rows behind a group's cost: each spend entry's prorated part, and each connector's
    unit cost times the touches sent (every group's when ``group`` is None)."""
    kpis.check_group(group_by)
    mt, _ = kpis.touches_and_path(group_by, period, playbook, product, None)
    inp = kpi_reach.in_periods(mt, kpi_sql.Cut([(period.start, period.end)]))
    # a touch at an account in two overlapping segments is half a touch's cost in each (kpi_sql._segment_touches)
    q = (select(inp.c.connector, func.sum(inp.c.share), ConnectorConfig.unit_cost)
         .join(ConnectorConfig, ConnectorConfig.name == inp.c.connector)
         .where(ConnectorConfig.unit_cost > 0).group_by(inp.c.connector, ConnectorConfig.unit_cost))
    if group is not None:
        q = q.where(inp.c.g == group)
    rows = [{"source": "unit cost", "id": None, "what": f"{kpi_glossary.count(n)} touches through {connector}",
             "entry_amount": float(unit), "amount": metrics.cents(float(unit) * float(n))}
            for connector, n, unit in db.session.execute(q)]
    products = dict(db.session.execute(select(Playbook.key, Playbook.product)).all())
    entries = select(Cost).where(Cost.date_to >= period.start.date(), Cost.date_from <= period.end.date())
    for c in db.session.execute(entries.order_by(Cost.date_from, Cost.id)).scalars():
        part = spend.prorate(c, period.start, period.end)
        if not part or (playbook and c.playbook_key != playbook) or (product and c.product != product):
            continue
        if group is None or spend.spend_group(c, group_by, products) == group:
            rows.append({"source": "spend entry", "id": c.id,
                         "what": " ".join(f"{k} {v}" for k, v in (("playbook", c.playbook_key), ("channel", c.channel),
                                                                 ("product", c.product)) if v)
                         + f", {c.date_from} to {c.date_to}", "entry_amount": float(c.amount),
                         "amount": metrics.cents(part)})
    return rows


def touches_behind(group_by: str, group: str | None, period: kpis.Period, playbook: str | None = None,
                   product: str | None = None, limit: int = TOUCH_LIST_LIMIT) -> tuple[int, list[dict]]:
    """The marketing touches a group's touch count counts (every group's when ``group`` is
    None): their number, and the newest ``limit`` of them."""
    kpis.check_group(group_by)
    mt, _ = kpis.touches_and_path(group_by, period, playbook, product, None)
    inp = kpi_reach.in_periods(mt, kpi_sql.Cut([(period.start, period.end)]))
    ids = select(inp.c.touch_id).where(inp.c.g == group) if group is not None else select(inp.c.touch_id)
    ids = ids.distinct().subquery()
    total = db.session.execute(select(func.count()).select_from(ids)).scalar_one()
    q = (select(Touch.id, Touch.sent_at, Touch.channel, Touch.connector, Touch.step_id, Playbook.key,
                Account.id.label("account_id"), Account.name, Contact.email)
         .join(ids, ids.c.touch_id == Touch.id).join(Account, Account.id == Touch.account_id)
         .outerjoin(Playbook, Playbook.id == Touch.playbook_id).outerjoin(Contact, Contact.id == Touch.contact_id)
         .order_by(Touch.sent_at.desc(), Touch.id.desc()).limit(limit))
    return total, [{"touch_id": r.id, "sent_at": r.sent_at.isoformat(), "account_id": r.account_id,
                    "account": r.name, "contact": r.email, "playbook": r.key, "step": r.step_id,
                    "channel": r.channel, "connector": r.connector} for r in db.session.execute(q)]
