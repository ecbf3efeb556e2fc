"""The shared KPIs over the API: by playbook, channel or product; lift; spend entries."""

from __future__ import annotations

from flask import Response, jsonify

from abm import exports
from abm.api import bp
from abm.api._openapi import MANAGERS, operation, register_schema
from abm.errors import ApiError
from abm.models import Cost
from abm.services import kpi_trace, kpi_trends, kpis, rollups, spend
from abm.services.validation import column_string

PERIOD_QUERY = {
    "from": {"type": "string", "description": "start date (YYYY-MM-DD) or time; default: 90 days before `to`"},
    "to": {"type": "string", "description": "end date, inclusive (YYYY-MM-DD), or time; default: now"},
}
MODEL_QUERY = {
    "model": {"enum": [*kpis.MODELS, *kpis.metrics.MODEL_ALIASES],
              "description": "attribution model (default: the workspace's); see /kpis/glossary"},
}
#: Figures that credit no touch: ``model`` is accepted (every KPI request takes it) and changes nothing.
UNATTRIBUTED = {"model": {**MODEL_QUERY["model"], "description": "accepted; this figure does not depend on the "
                                                                 "attribution model"}}
GROUP_QUERY = {
    "group_by": {"enum": list(kpis.GROUPS), "description": "default: playbook"},
    "playbook": {"type": "string", "description": "only this playbook (key)"},
    "product": {"type": "string", "description": "only playbooks of this product"},
    "format": {"enum": ["json", "csv"]},
}
KPI_ROW = register_schema("KpiGroup", {"type": "object", "properties": {
    "group": {"type": "string"}, "touches": {"type": "integer"}, "accounts_reached": {"type": "integer"},
    "engaged_accounts": {"type": "integer"}, "leads": {"type": "number"}, "cost": {"type": "number"},
    "cost_per_lead": {"type": ["number", "null"]}, "opportunities": {"type": "number"},
    "lead_to_opportunity_rate": {"type": ["number", "null"]}, "opportunity_to_won_rate": {"type": ["number", "null"]},
    "pipeline_influenced": {"type": "number"}, "revenue_influenced": {"type": "number"},
    "median_days_first_touch_to_opportunity": {"type": ["number", "null"]}}})
KPIS = register_schema("Kpis", {"type": "object", "properties": {
    "group_by": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"},
    "groups": {"type": "array", "items": KPI_ROW}, "totals": {"type": "object"}, "funnel": {"type": "array"},
    "attribution": {"type": "object"}}})
LIFT = register_schema("Lift", {"type": "object", "properties": {
    "playbook": {"type": "string"}, "enrolled": {"type": "integer"}, "held_out": {"type": "integer"},
    "metrics": {"type": "array", "items": {"type": "object", "properties": {
        "metric": {"type": "string"}, "enrolled_rate": {"type": ["number", "null"]},
        "held_out_rate": {"type": ["number", "null"]}, "difference": {"type": ["number", "null"]},
        "ci95": {"type": ["array", "null"]}, "sentence": {"type": "string"}}}}}})
COST_BODY = {"type": "object", "additionalProperties": False, "required": ["amount"], "properties": {
    "playbook": column_string(Cost.playbook_key), "channel": column_string(Cost.channel),
    "product": column_string(Cost.product),
    "amount": {"type": ["number", "string"]}, "currency": column_string(Cost.currency),
    "date": {"type": "string", "format": "date"}, "from": {"type": "string", "format": "date"},
    "to": {"type": "string", "format": "date"}}}
COST = register_schema("Cost", {"type": "object", "properties": {
    "id": {"type": "integer"}, "playbook": {"type": ["string", "null"]}, "channel": {"type": ["string", "null"]},
    "product": {"type": ["string", "null"]}, "amount": {"type": "string"}, "currency": {"type": "string"},
    "from": {"type": "string"}, "to": {"type": "string"}}})


def _period(query) -> kpis.Period:
    try:
        return kpis.Period.parse(query.get("from"), query.get("to"))
    except kpis.KpiError as exc:
        raise ApiError(422, str(exc), [{"path": "from" if "from" in str(exc) else "to", "message": str(exc)}]) from None


def csv_response(rows: list[dict], name: str) -> Response:
    return Response(exports.csv_text(rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _invalid(exc: kpis.KpiError, path: str) -> ApiError:
    return ApiError(422, str(exc), [{"path": "model" if "model" in str(exc) else path, "message": str(exc)}])


@bp.get("/kpis")
@operation("The shared KPIs by playbook, channel, product, tier, owner, industry or country over a period "
           "(JSON or CSV)", tags=["kpis"], query={**PERIOD_QUERY, **GROUP_QUERY, **MODEL_QUERY},
           responses={200: ("The KPIs", KPIS)})
def get_kpis(query):
    period = _period(query)
    try:
        data = rollups.kpis(query.get("group_by", "playbook"), period, query.get("playbook"), query.get("product"),
                            model=query.get("model"))
    except kpis.KpiError as exc:
        raise _invalid(exc, "group_by") from None
    if query.get("format") == "csv":
        return csv_response(data["groups"], f"kpis-by-{data['group_by']}")
    return jsonify(data)


@bp.get("/kpis/velocity")
@operation("Median days in each stage before moving on, for moves in the period", tags=["kpis"],
           query={**PERIOD_QUERY, "format": {"enum": ["json", "csv"]}, **UNATTRIBUTED})
def get_velocity(query):
    rows = kpis.stage_velocity(_period(query))
    return csv_response(rows, "stage-velocity") if query.get("format") == "csv" else jsonify(items=rows)


@bp.get("/kpis/coverage")
@operation("Target accounts reached and engaged, and buying roles reached", tags=["kpis"],
           query={**PERIOD_QUERY, "format": {"enum": ["json", "csv"]}, **UNATTRIBUTED})
def get_coverage(query):
    data = kpis.coverage(_period(query))
    return csv_response(data["roles"], "coverage-by-role") if query.get("format") == "csv" else jsonify(data)


@bp.get("/kpis/funnel")
@operation("Accounts at each step from target to won", tags=["kpis"],
           query={**PERIOD_QUERY, "playbook": {"type": "string"}, "format": {"enum": ["json", "csv"]},
                  **UNATTRIBUTED})
def get_funnel(query):
    data = rollups.kpis("playbook", _period(query), query.get("playbook"))["funnel"]
    return csv_response(data, "funnel") if query.get("format") == "csv" else jsonify(items=data)


@bp.get("/kpis/models")
@operation("The attribution models side by side: the leads, opportunities or won deals each credits to each group",
           tags=["kpis"], query={**PERIOD_QUERY, **GROUP_QUERY,
                                 "metric": {"enum": list(kpis.COMPARED), "description": "default: leads"}})
def get_kpi_models(query):
    try:
        data = kpis.compare_models(query.get("group_by", "playbook"), _period(query), query.get("metric", "leads"),
                                   query.get("playbook"), query.get("product"))
    except kpis.KpiError as exc:
        raise _invalid(exc, "group_by") from None
    if query.get("format") == "csv":
        return csv_response(data["groups"], f"attribution-models-{data['metric']}-by-{data['group_by']}")
    return jsonify(data)


@bp.get("/kpis/accounts")
@operation("The accounts behind one figure of the KPIs", tags=["kpis"],
           query={**PERIOD_QUERY, "metric": {"enum": list(kpi_trace.BEHIND), "required": True},
                  "playbook": {"type": "string"}, "product": {"type": "string"},
                  "group_by": {"enum": list(kpis.GROUPS), "required": True},
                  "group": {"type": "string", "description": "the group; without it, every group's (the totals); "
                                                             "the funnel's step; coverage's target, reached, "
                                                             "engaged or a buying role"}, **MODEL_QUERY})
def get_kpi_accounts(query):
    try:
        ids = kpi_trace.accounts_behind(query["metric"], query["group_by"], query.get("group"), _period(query),
                                   query.get("playbook"), query.get("product"), query.get("model"))
    except kpis.KpiError as exc:
        raise _invalid(exc, "group") from None
    return jsonify(account_ids=ids, count=len(ids))


@bp.get("/kpis/trends")
@operation("Every KPI week by week, oldest first: the totals of each of the last weeks (`rows`) and each group's "
           "series (`groups`, by `group_by`; with `format=csv` and a `group_by`, one CSV row per group and week)",
           tags=["kpis"],
           query={"weeks": {"type": "integer", "minimum": 1, "maximum": kpi_trends.MAX_WEEKS,
                            "description": "default 12"},
                  "group_by": {"enum": list(kpis.GROUPS), "description": "default: playbook"},
                  "playbook": {"type": "string"}, "product": {"type": "string"}, "format": {"enum": ["json", "csv"]},
                  **MODEL_QUERY})
def get_kpi_trends(query):
    try:
        data = kpi_trends.weekly(int(query.get("weeks") or 12), query.get("model"), query.get("playbook"),
                                 query.get("product"), group_by=query.get("group_by", "playbook"))
    except kpis.KpiError as exc:
        raise _invalid(exc, "weeks" if "weeks" in str(exc) else "group_by") from None
    if query.get("format") == "csv":
        if query.get("group_by"):
            return csv_response(kpi_trends.group_csv_rows(data), f"kpis-by-week-and-{data['group_by']}")
        return csv_response(data["rows"], "kpis-by-week")
    return jsonify(data)


@bp.get("/kpis/opportunities")
@operation("The opportunities behind pipeline influenced and the median days to opportunity (each with its days "
           "from the group's first touch; metric=revenue: revenue influenced; metric=closed: the credited closed "
           "opportunities behind the opportunity to won rate, each with its credit) of one group, or of all",
           tags=["kpis"], query={**PERIOD_QUERY, **GROUP_QUERY, "group": {"type": "string"},
                                 "metric": {"enum": ["pipeline", "revenue", "days", "closed"]}, **MODEL_QUERY})
def get_kpi_opportunities(query):
    args = (query.get("group_by", "playbook"), query.get("group"), _period(query), query.get("playbook"),
            query.get("product"))
    try:
        if query.get("metric") == "closed":
            rows = kpi_trace.closed_behind(*args, query.get("model"))
        else:
            rows = kpi_trace.opportunities_behind(*args, won=query.get("metric") == "revenue")
    except kpis.KpiError as exc:
        raise _invalid(exc, "group_by") from None
    return csv_response(rows, "opportunities") if query.get("format") == "csv" else jsonify(items=rows)


@bp.get("/kpis/leads")
@operation("The leads credited to one group (or all), each with its credit and whether it became an opportunity: "
           "the rows behind the lead to opportunity rate", tags=["kpis"],
           query={**PERIOD_QUERY, **GROUP_QUERY, "group": {"type": "string"}, **MODEL_QUERY})
def get_kpi_leads(query):
    try:
        rows = kpi_trace.leads_behind(query.get("group_by", "playbook"), query.get("group"), _period(query),
                                      query.get("playbook"), query.get("product"), query.get("model"))
    except kpis.KpiError as exc:
        raise _invalid(exc, "group_by") from None
    return csv_response(rows, "leads") if query.get("format") == "csv" else jsonify(items=rows)


@bp.get("/kpis/moves")
@operation("The stage moves behind stage velocity: out of `stage`, or all, each with the days spent in the stage "
           "left", tags=["kpis"], query={**PERIOD_QUERY, "stage": {"type": "string"},
                                         "format": {"enum": ["json", "csv"]}})
def get_kpi_moves(query):
    try:
        rows = kpi_trace.stage_moves(_period(query), query.get("stage"))
    except kpis.KpiError as exc:
        raise _invalid(exc, "stage") from None
    return csv_response(rows, "stage-moves") if query.get("format") == "csv" else jsonify(items=rows)


@bp.get("/kpis/costs")
@operation("The spend entries (prorated to the period) and unit costs behind the cost of one group, or of all",
           tags=["kpis"], query={**PERIOD_QUERY, **GROUP_QUERY, "group": {"type": "string"}})
def get_kpi_costs(query):
    try:
        rows = kpi_trace.spend_behind(query.get("group_by", "playbook"), query.get("group"), _period(query),
                                      query.get("playbook"), query.get("product"))
    except kpis.KpiError as exc:
        raise _invalid(exc, "group_by") from None
    return csv_response(rows, "cost-rows") if query.get("format") == "csv" else jsonify(items=rows)


@bp.get("/kpis/touches")
@operation("The marketing touches behind the touch count of one group, or of all: `count` all of them, `items` the "
           f"newest (at most {kpi_trace.TOUCH_LIST_LIMIT:,})", tags=["kpis"],
           query={**PERIOD_QUERY, **GROUP_QUERY, "group": {"type": "string"}})
def get_kpi_touches(query):
    try:
        total, rows = kpi_trace.touches_behind(query.get("group_by", "playbook"), query.get("group"), _period(query),
                                               query.get("playbook"), query.get("product"))
    except kpis.KpiError as exc:
        raise _invalid(exc, "group_by") from None
    return csv_response(rows, "touches") if query.get("format") == "csv" else jsonify(count=total, items=rows)


@bp.get("/playbooks/<key>/lift")
@operation("Enrolled against held-out accounts: engaged, opportunity and won rates with 95% intervals",
           tags=["kpis"], query={"format": {"enum": ["json", "csv"]}, **UNATTRIBUTED},
           responses={200: ("The lift", LIFT)})
def get_lift(key: str, query):
    data = kpis.lift(key)
    if query.get("format") == "csv":
        return csv_response([{"playbook": key, **{k: v for k, v in m.items() if k != "ci95"},
                              "ci95_low": m["ci95"][0] if m["ci95"] else None,
                              "ci95_high": m["ci95"][1] if m["ci95"] else None} for m in data["metrics"]],
                            f"lift-{key}")
    return jsonify(data)


@bp.post("/costs")
@operation("Record spend for a playbook, channel or product over a date or period", roles=MANAGERS,
           tags=["kpis"], body=COST_BODY, responses={201: ("The spend entry", COST)})
def post_cost(body):
    cost = spend.record_cost(body)
    return jsonify(id=cost.id, playbook=cost.playbook_key, channel=cost.channel, product=cost.product,
                   amount=str(cost.amount), currency=cost.currency, **{"from": cost.date_from.isoformat(),
                                                                       "to": cost.date_to.isoformat()}), 201
