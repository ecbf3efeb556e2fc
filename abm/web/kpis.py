"""The shared KPI dashboard, the accounts behind each figure, and spend entry."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from abm import exports
from abm.errors import ValidationError
from abm.services import kpi_glossary, kpi_trace, kpi_trends, kpis, rollups
from abm.services import settings as settings_service
from abm.services import spend as spend_service
from abm.services.clock import utcnow
from abm.web._access import MANAGERS, role_required

bp = Blueprint("kpis", __name__)

PRESETS = (30, 90, 365)
#: The groups the trends page draws (the most touched first); the API and the CSV give all.
TREND_GROUPS = 12


def _period_args() -> tuple[kpis.Period, dict, list[str]]:
    """The period and filters of the request; problems are shown, never raised."""
    args = {k: (request.args.get(k) or "").strip()
            for k in ("from", "to", "days", "product", "playbook", "group_by", "model")}
    problems = []
    period = None
    if args["from"] or args["to"]:
        try:
            period = kpis.Period.parse(args["from"] or None, args["to"] or None)
        except kpis.KpiError as exc:
            problems.append(str(exc))
    if period is None:
        days = int(args["days"]) if args["days"].isdigit() and int(args["days"]) in PRESETS else 90
        args["days"] = str(days)
        period = next(p for p in rollups.standard_periods() if round(p.days) == days)
    if args["group_by"] not in kpis.GROUPS:
        args["group_by"] = "playbook"
    if args["model"] and kpis.metrics.MODEL_ALIASES.get(args["model"], args["model"]) not in kpis.MODELS:
        problems.append(f"unknown attribution model {args['model']!r}")
        args["model"] = ""
    return period, args, problems


def _as_param(at: datetime, end: bool) -> str:
    """A period bound as the API reads it: a date at midnight (``to`` inclusive), else the time."""
    if (at.hour, at.minute, at.second, at.microsecond) != (0, 0, 0, 0):
        return at.isoformat()
    return ((at - timedelta(days=1)) if end else at).date().isoformat()


def api_query(period: kpis.Period, args: dict) -> dict:
    """The query that asks the API for the same figures as the page: the period it showed
    (whether chosen as a preset or as from/to) and every filter; the page's ``days`` is
    unknown to the API, so it is turned into ``from`` and ``to``."""
    query = {"from": _as_param(period.start, False), "to": _as_param(period.end, True)}
    query.update({k: args[k] for k in ("group_by", "model", "playbook", "product") if args.get(k)})
    return query


@bp.get("/kpis")
@role_required()
def index():
    period, args, problems = _period_args()
    playbook, product, model = args["playbook"] or None, args["product"] or None, args["model"] or None
    data = rollups.kpis(args["group_by"], period, playbook, product, model=model)
    by_channel = (data if args["group_by"] == "channel"
                  else rollups.kpis("channel", period, playbook, product, model=model))
    by_playbook = (data if args["group_by"] == "playbook"
                   else rollups.kpis("playbook", period, playbook, product, model=model))
    age = (utcnow() - datetime.fromisoformat(data["computed_at"])).total_seconds()
    extras = rollups.extras(period)
    if playbook or product:  # the stored pipeline is every playbook's: the filtered one is computed here
        extras = {**extras, "pipeline": kpis.pipeline_series(period, playbook_ids=kpis.playbook_ids_for(playbook, product))}
    lifts = [lift for lift in extras["lifts"] if playbook is None or lift["playbook"] == playbook]
    products, playbooks = spend_service.products(), spend_service.playbook_keys()
    query = {k: v for k, v in args.items() if v and k != "group_by"}
    currency = settings_service.current().get("currency", "USD")
    return render_template(
        "web/kpis/index.html", data=data, by_channel=by_channel, by_playbook=by_playbook, lifts=lifts,
        velocity=extras["velocity"], coverage=extras["coverage"], pipeline=extras["pipeline"], period=period,
        args=args, problems=problems, products=products, playbooks=playbooks, presets=PRESETS, query=query,
        export_query=api_query(period, args),
        groups=kpis.GROUPS, models=kpis.MODELS, age_seconds=max(0, round(age)), label=kpi_glossary.label,
        funnel_labels={t.key: t.label for t in kpi_glossary.FUNNEL}, format_money=kpi_glossary.money,
        lift_labels=kpi_glossary.LIFT_METRICS, format_days=kpi_glossary.days,
        currency=currency, money_of=lambda v: kpi_glossary.money(v, currency))


@bp.get("/kpis/trends")
@role_required()
def trends():
    """Every KPI week by week, each with a chart: the totals, or (``group_by``) each group's."""
    _, args, problems = _period_args()
    by_group = bool(request.args.get("group_by")) and args["group_by"] in kpis.GROUPS
    weeks = request.args.get("weeks", "12")
    weeks = int(weeks) if weeks.isdigit() and 1 <= int(weeks) <= kpi_trends.MAX_WEEKS else 12
    data = kpi_trends.weekly(weeks, args["model"] or None, args["playbook"] or None, args["product"] or None,
                             group_by=args["group_by"])
    if request.args.get("format") == "csv":
        if by_group:
            return _csv(kpi_trends.group_csv_rows(data), f"kpis-by-week-and-{data['group_by']}")
        return _csv(data["rows"], "kpis-by-week")
    currency = settings_service.current().get("currency", "USD")
    formats = {"money": lambda v: kpi_glossary.money(v, currency), "count": kpi_glossary.count,
               "rate": kpi_glossary.percent, "days": kpi_glossary.days}
    query = {k: v for k, v in args.items() if v and k in ("model", "playbook", "product")}
    return render_template("web/kpis/trends.html", data=data, weeks=weeks, args=args, problems=problems,
                           by_group=by_group, groups=kpis.GROUPS, query=query, formats=formats,
                           shown_groups=data["groups"][:TREND_GROUPS], label=kpi_glossary.label)


@bp.get("/kpis/glossary")
@role_required()
def glossary():
    """What each figure counts and how each attribution model shares a conversion."""
    return render_template("web/kpis/glossary.html", sections=kpi_glossary.SECTIONS)


@bp.get("/kpis/models")
@role_required()
def compare():
    """The attribution models side by side: one row per group, one column per model."""
    period, args, problems = _period_args()
    metric = request.args.get("metric", "leads")
    if metric not in kpis.COMPARED:
        problems.append(f"unknown figure {metric!r}")
        metric = "leads"
    data = kpis.compare_models(args["group_by"], period, metric, args["playbook"] or None, args["product"] or None)
    query = {k: v for k, v in args.items() if v and k not in ("group_by", "model")}
    export_query = {k: v for k, v in api_query(period, args).items() if k != "model"}
    return render_template("web/kpis/compare.html", data=data, args=args, metric=metric, problems=problems,
                           groups=kpis.GROUPS, metrics=list(kpis.COMPARED), query=query, export_query=export_query)


def _csv(rows: list[dict], name: str) -> Response:
    return Response(exports.csv_text(rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


#: What the dashboard's view is made of: a list's "Back to the KPIs" keeps each.
DASHBOARD_ARGS = ("from", "to", "days", "product", "playbook", "group_by", "model")


def _list(template: str, rows: list[dict], name: str, **context):
    """A list behind a figure: the page, or its CSV with ``format=csv``."""
    if request.args.get("format") == "csv":
        return _csv(rows, name)
    csv_url = url_for(request.endpoint, **{**request.args.to_dict(), "format": "csv"})
    back = {k: v for k in DASHBOARD_ARGS if (v := (request.args.get(k) or "").strip())}
    return render_template(template, rows=rows, csv_url=csv_url, back_url=url_for("kpis.index", **back),
                           format_money=kpi_glossary.money, currency=settings_service.current().get("currency", "USD"),
                           **context)


#: The most accounts the page lists (the highest scores); its CSV lists up to
#: :data:`kpi_trace.ACCOUNT_LIST_LIMIT`.
ACCOUNTS_ON_PAGE = 500


@bp.get("/kpis/accounts")
@role_required()
def accounts():
    period, args, problems = _period_args()
    metric = request.args.get("metric", "reached")
    group = request.args.get("group", "")
    limit = kpi_trace.ACCOUNT_LIST_LIMIT if request.args.get("format") == "csv" else ACCOUNTS_ON_PAGE
    try:
        total, rows = kpi_trace.account_list(metric, args["group_by"], group, period, args["playbook"] or None,
                                             args["product"] or None, args["model"] or None, limit=limit)
    except kpis.KpiError as exc:
        problems.append(str(exc))
        total, rows = 0, []
    return _list("web/kpis/accounts.html", rows, f"accounts-{metric}", total=total, metric=metric,
                 group=group, args=args, period=period, problems=problems)


#: The opportunity lists: the figure each stands behind.
OPPORTUNITY_LISTS = ("pipeline", "revenue", "days", "closed")


def _pipeline_slice(period: kpis.Period, problems: list[str]) -> kpis.Period | None:
    """``slice=i``: the i-th column of the dashboard's pipeline chart, a part of the period."""
    raw = request.args.get("slice")
    if raw is None:
        return period
    if raw.isdigit() and int(raw) < kpis.PIPELINE_SLICES:
        return kpis.slices(period)[int(raw)]
    problems.append(f"slice must be a number from 0 to {kpis.PIPELINE_SLICES - 1}")
    return None


@bp.get("/kpis/opportunities")
@role_required()
def opportunities():
    """The opportunities behind pipeline influenced and the median days to opportunity
    (``metric=revenue``: revenue influenced; ``closed``: the opportunity to won rate;
    ``slice``: a column of the pipeline chart)."""
    period, args, problems = _period_args()
    metric = request.args.get("metric") if request.args.get("metric") in OPPORTUNITY_LISTS else "pipeline"
    group = request.args.get("group") or None
    shown = _pipeline_slice(period, problems)
    filters = (args["group_by"], group, shown or period, args["playbook"] or None, args["product"] or None)
    if shown is None:
        rows = []
    elif metric == "closed":
        rows = kpi_trace.closed_behind(*filters, args["model"] or None)
    else:
        rows = kpi_trace.opportunities_behind(*filters, won=metric == "revenue")
    return _list("web/kpis/opportunities.html", rows, f"opportunities-{metric}", metric=metric, group=group,
                 args=args, period=shown or period, problems=problems)


@bp.get("/kpis/leads")
@role_required()
def leads():
    """The credited leads behind a lead to opportunity rate, those that became one marked."""
    period, args, problems = _period_args()
    group = request.args.get("group") or None
    rows = kpi_trace.leads_behind(args["group_by"], group, period, args["playbook"] or None, args["product"] or None,
                                  args["model"] or None)
    return _list("web/kpis/leads.html", rows, "leads", group=group, args=args, period=period, problems=problems)


@bp.get("/kpis/moves")
@role_required()
def moves():
    """The stage moves behind stage velocity: out of ``stage``, or all."""
    period, args, problems = _period_args()
    stage = request.args.get("stage") or None
    try:
        rows = kpi_trace.stage_moves(period, stage)
    except kpis.KpiError as exc:
        problems.append(str(exc))
        rows = []
    return _list("web/kpis/moves.html", rows, "stage-moves", stage=stage, args=args, period=period, problems=problems)


#: The most touches the page shows; its CSV lists up to :data:`kpi_trace.TOUCH_LIST_LIMIT`.
TOUCHES_ON_PAGE = 500


@bp.get("/kpis/touches")
@role_required()
def touches():
    """The marketing touches behind a group's touch count (all counted, the newest listed)."""
    period, args, problems = _period_args()
    group = request.args.get("group") or None
    limit = kpi_trace.TOUCH_LIST_LIMIT if request.args.get("format") == "csv" else TOUCHES_ON_PAGE
    try:
        total, rows = kpi_trace.touches_behind(args["group_by"], group, period, args["playbook"] or None,
                                               args["product"] or None, limit=limit)
    except kpis.KpiError as exc:
        problems.append(str(exc))
        total, rows = 0, []
    return _list("web/kpis/touches.html", rows, "touches", total=total, group=group, args=args, period=period,
                 problems=problems)


@bp.get("/kpis/costs")
@role_required()
def costs():
    """The spend entries and unit costs behind a cost figure."""
    period, args, problems = _period_args()
    group = request.args.get("group") or None
    rows = kpi_trace.spend_behind(args["group_by"], group, period, args["playbook"] or None, args["product"] or None)
    return _list("web/kpis/costs.html", rows, "cost-rows", group=group, args=args, period=period, problems=problems)


@bp.route("/kpis/spend", methods=["GET", "POST"])
@role_required(*MANAGERS)
def spend():
    errors: list[dict] = []
    form = {}
    if request.method == "POST":
        if request.files.get("file") and request.files["file"].filename:
            created, errors = spend_service.record_csv(request.files["file"].stream)
            if created:
                flash(f"{created} spend entries recorded", "success")
            if not errors:
                return redirect(url_for("kpis.spend"))
        else:
            form = {k: (request.form.get(k) or "").strip() for k in
                    ("playbook", "channel", "product", "amount", "currency", "date", "from", "to")}
            try:
                spend_service.record_cost({k: v for k, v in form.items() if v})
                flash("Spend recorded", "success")
                return redirect(url_for("kpis.spend"))
            except ValidationError as exc:
                errors = [{"row": None, **d} for d in exc.details]
    entries, playbooks = spend_service.latest(), spend_service.playbook_keys()
    return render_template("web/kpis/spend.html", entries=entries, errors=errors, form=form, playbooks=playbooks), (
        422 if errors else 200)

