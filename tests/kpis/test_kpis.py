"""Every KPI on a small dataset computed by hand (docs/kpis.md walks through the same one).

June 2026. Playbooks pb-a and pb-b sell the product "gateway", pb-c sells "vault".

    T1 06-02 pb-a email -> Acme/c1        E7 06-03 email_open  c1   O1 Acme     06-20  10,000  won 06-28
    T2 06-05 pb-b ads   -> Acme           E3 06-04 email_click c2   O2 Initech  06-25   5,000  open
    T3 06-03 pb-a email -> Globex/c2      E1 06-10 form_fill   c1   O3 Umbrella 06-15   7,000  (never touched)
    T4 05-20 pb-c email -> Initech/c3     E2 06-12 meeting     c4
    T5 06-10 pb-c alert -> Initech        E4 06-01 form_fill   c3
                                          E5 04-01 form_fill   c2 (c2's first lead event: before June)
                                          E6 06-15 meeting     c2

Unit costs: outbox 0.50, li 2.00. Spend: pb-a 300 over 05-16..06-14 (14 of its 30 days in
June: 140), ads 100 on 06-10. Last-touch attribution, 90-day window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from abm.db import db
from abm.models import (
    Account,
    ConnectorConfig,
    Contact,
    Cost,
    Enrollment,
    Event,
    Opportunity,
    Playbook,
    PlaybookVersion,
    StageChange,
    Touch,
)
from abm.services import kpis, rollups

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def at(month, day, hour=10):
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def june(app):
    return build_june()


def build_june() -> dict[str, int]:
    """The dataset above, in the current app context; returns account ids by name."""
    accs = {n: Account(name=n, domain=f"{n.lower()}.com", stage="target") for n in
            ("Acme", "Globex", "Initech", "Umbrella")}
    db.session.add_all(accs.values())
    db.session.flush()
    a = {n: x.id for n, x in accs.items()}
    cs = {"c1": Contact(account_id=a["Acme"], email="c1@acme.com", buying_role="champion"),
          "c2": Contact(account_id=a["Globex"], email="c2@globex.com", buying_role="decision_maker"),
          "c3": Contact(account_id=a["Initech"], email="c3@initech.com", buying_role="user"),
          "c4": Contact(account_id=a["Acme"], email="c4@acme.com", buying_role="decision_maker")}
    db.session.add_all(cs.values())
    pbs = {k: Playbook(key=k, name=k.upper(), status="active", product=p)
           for k, p in (("pb-a", "gateway"), ("pb-b", "gateway"), ("pb-c", "vault"))}
    db.session.add_all(pbs.values())
    db.session.flush()
    c = {n: x.id for n, x in cs.items()}
    vers = {k: PlaybookVersion(playbook_id=p.id, version=1, source="", compiled={}) for k, p in pbs.items()}
    db.session.add_all(vers.values())
    db.session.flush()

    def enroll(pb, acc, state="active", entered=at(5, 1)):
        e = Enrollment(playbook_id=pbs[pb].id, version_id=vers[pb].id, account_id=a[acc], state=state,
                       entered_at=entered)
        db.session.add(e)
        db.session.flush()
        return e

    e_a1, e_a2, _e_a4 = enroll("pb-a", "Acme"), enroll("pb-a", "Globex"), enroll("pb-a", "Umbrella", "held_out")
    e_b1, e_c3 = enroll("pb-b", "Acme", entered=at(6, 1)), enroll("pb-c", "Initech", entered=at(5, 15))
    db.session.add_all([
        ConnectorConfig(name="outbox", type="outbox", unit_cost=Decimal("0.5")),
        ConnectorConfig(name="li", type="linkedin", unit_cost=Decimal("2")),
        ConnectorConfig(name="log", type="log", unit_cost=Decimal("0")),
    ])

    def touch(name, enr, pb, acc, contact, channel, connector, when):
        db.session.add(Touch(enrollment_id=enr.id, playbook_id=pbs[pb].id, account_id=a[acc],
                             contact_id=c.get(contact), contact_key=c.get(contact, 0), step_id=name,
                             kind=channel, channel=channel, connector=connector, status="sent", sent_at=when))

    touch("T1", e_a1, "pb-a", "Acme", "c1", "email", "outbox", at(6, 2))
    touch("T2", e_b1, "pb-b", "Acme", None, "ads", "li", at(6, 5))
    touch("T3", e_a2, "pb-a", "Globex", "c2", "email", "outbox", at(6, 3))
    touch("T4", e_c3, "pb-c", "Initech", "c3", "email", "outbox", at(5, 20))
    touch("T5", e_c3, "pb-c", "Initech", None, "alert", "log", at(6, 10))
    for etype, contact, acc, when in (("email_open", "c1", "Acme", at(6, 3, 9)),
                                      ("email_click", "c2", "Globex", at(6, 4, 9)),
                                      ("form_fill", "c1", "Acme", at(6, 10, 9)),
                                      ("meeting", "c4", "Acme", at(6, 12, 9)),
                                      ("form_fill", "c3", "Initech", at(6, 1, 9)),
                                      ("form_fill", "c2", "Globex", at(4, 1, 9)),
                                      ("meeting", "c2", "Globex", at(6, 15, 9))):
        db.session.add(Event(type=etype, contact_id=c[contact], account_id=a[acc], occurred_at=when))
    db.session.add_all([
        Opportunity(account_id=a["Acme"], name="O1", amount=Decimal(10000), created_at=at(6, 20),
                    closed_at=at(6, 28), won=True, product="gateway"),
        Opportunity(account_id=a["Initech"], name="O2", amount=Decimal(5000), created_at=at(6, 25), product="vault"),
        Opportunity(account_id=a["Umbrella"], name="O3", amount=Decimal(7000), created_at=at(6, 15)),
        Cost(playbook_key="pb-a", amount=Decimal(300), date_from=at(5, 16).date(), date_to=at(6, 14).date()),
        Cost(channel="ads", amount=Decimal(100), date_from=at(6, 10).date(), date_to=at(6, 10).date()),
    ])
    for acc, stage, when in (("Acme", "target", at(5, 1)), ("Acme", "engaged", at(6, 5)),
                             ("Acme", "opportunity", at(6, 20)), ("Globex", "target", at(5, 11)),
                             ("Globex", "aware", at(6, 11))):
        db.session.add(StageChange(account_id=a[acc], to_stage=stage, changed_at=when, source="test"))
    db.session.commit()
    return a


PERIOD = kpis.Period.parse("2026-06-01", "2026-06-30", NOW)
EMPTY = {"touches": 0, "accounts_reached": 0, "engaged_accounts": 0, "leads": 0.0, "cost": 0.0,
         "cost_per_lead": None, "opportunities": 0.0, "lead_to_opportunity_rate": None,
         "opportunity_to_won_rate": None, "pipeline_influenced": 0.0, "revenue_influenced": 0.0,
         "median_days_first_touch_to_opportunity": None}


def row(group, **values):
    return {"group": group, **EMPTY, **values}


def by_group(data):
    return {g["group"]: g for g in data["groups"]}


def test_kpis_by_playbook(june):
    data = kpis.compute("playbook", PERIOD, now=NOW)
    assert by_group(data) == {
        "pb-a": row("pb-a", touches=2, accounts_reached=2, engaged_accounts=2, cost=141.0,
                    pipeline_influenced=10000.0, revenue_influenced=10000.0,
                    median_days_first_touch_to_opportunity=18.0),
        "pb-b": row("pb-b", touches=1, accounts_reached=1, engaged_accounts=1, leads=2.0, cost=2.0,
                    cost_per_lead=1.0, opportunities=1.0, lead_to_opportunity_rate=1.0,
                    opportunity_to_won_rate=1.0, pipeline_influenced=10000.0, revenue_influenced=10000.0,
                    median_days_first_touch_to_opportunity=15.0),
        "pb-c": row("pb-c", leads=1.0, cost_per_lead=0.0, opportunities=1.0, lead_to_opportunity_rate=1.0,
                    pipeline_influenced=5000.0, median_days_first_touch_to_opportunity=36.0),
        "(unassigned)": row("(unassigned)", cost=100.0),
    }
    assert data["totals"] == {"touches": 3, "accounts_reached": 2, "engaged_accounts": 2, "leads": 3,
                              "cost": 243.0, "cost_per_lead": 81.0, "opportunities": 2, "won": 1,
                              "pipeline_influenced": 15000.0, "revenue_influenced": 10000.0}
    assert data["funnel"] == [{"step": "target", "accounts": 3}, {"step": "reached", "accounts": 2},
                              {"step": "engaged", "accounts": 2}, {"step": "lead", "accounts": 2},
                              {"step": "opportunity", "accounts": 2}, {"step": "won", "accounts": 1}]


def test_kpis_by_channel(june):
    assert by_group(kpis.compute("channel", PERIOD, now=NOW)) == {
        "email": row("email", touches=2, accounts_reached=2, engaged_accounts=2, leads=1.0, cost=1.0,
                     cost_per_lead=1.0, opportunities=1.0, lead_to_opportunity_rate=1.0,
                     pipeline_influenced=15000.0, revenue_influenced=10000.0,
                     median_days_first_touch_to_opportunity=27.0),
        "ads": row("ads", touches=1, accounts_reached=1, engaged_accounts=1, leads=2.0, cost=102.0,
                   cost_per_lead=51.0, opportunities=1.0, lead_to_opportunity_rate=1.0,
                   opportunity_to_won_rate=1.0, pipeline_influenced=10000.0, revenue_influenced=10000.0,
                   median_days_first_touch_to_opportunity=15.0),
        "(unassigned)": row("(unassigned)", cost=140.0),
    }


def test_kpis_by_product(june):
    assert by_group(kpis.compute("product", PERIOD, now=NOW)) == {
        "gateway": row("gateway", touches=3, accounts_reached=2, engaged_accounts=2, leads=2.0, cost=143.0,
                       cost_per_lead=71.5, opportunities=1.0, lead_to_opportunity_rate=1.0,
                       opportunity_to_won_rate=1.0, pipeline_influenced=10000.0, revenue_influenced=10000.0,
                       median_days_first_touch_to_opportunity=18.0),
        "vault": row("vault", leads=1.0, cost_per_lead=0.0, opportunities=1.0, lead_to_opportunity_rate=1.0,
                     pipeline_influenced=5000.0, median_days_first_touch_to_opportunity=36.0),
        "(unassigned)": row("(unassigned)", cost=100.0),
    }


def test_even_split_and_first_touch_attribution(june, make_user):
    from abm.services import settings

    settings.update({"attribution": {"window_days": 90, "model": "even"}}, make_user("admin").id)
    groups = by_group(kpis.compute("playbook", PERIOD, now=NOW))
    # c1 and c4 each split between T1 (pb-a) and T2 (pb-b); O1 likewise
    assert (groups["pb-a"]["leads"], groups["pb-b"]["leads"], groups["pb-c"]["leads"]) == (1.0, 1.0, 1.0)
    assert (groups["pb-a"]["opportunities"], groups["pb-b"]["opportunities"]) == (0.5, 0.5)
    settings.update({"attribution": {"window_days": 90, "model": "first_touch"}}, make_user("admin").id)
    groups = by_group(kpis.compute("playbook", PERIOD, now=NOW))
    assert (groups["pb-a"]["leads"], groups["pb-b"]["leads"]) == (2.0, 0.0)


def test_stage_velocity_coverage_and_lift(june):
    velocity = {r["stage"]: r for r in kpis.stage_velocity(PERIOD)}
    assert velocity["target"] == {"stage": "target", "moves": 2, "median_days": 33.0}
    assert velocity["engaged"] == {"stage": "engaged", "moves": 1, "median_days": 15.0}
    assert velocity["mqa"]["median_days"] is None
    cov = kpis.coverage(PERIOD)
    assert (cov["target_accounts"], cov["reached"], cov["engaged"]) == (3, 2, 2)
    roles = {r["role"]: r for r in cov["roles"]}
    assert roles["decision_maker"] == {"role": "decision_maker", "accounts": 1, "share": 0.3333}
    assert roles["champion"]["accounts"] == 1 and roles["user"]["accounts"] == 0

    lift = kpis.lift("pb-a")
    assert (lift["enrolled"], lift["held_out"]) == (2, 1)
    m = {x["metric"]: x for x in lift["metrics"]}
    assert (m["engaged"]["enrolled_rate"], m["engaged"]["held_out_rate"], m["engaged"]["difference"]) == (1.0, 0.0, 1.0)
    assert (m["opportunity"]["enrolled_rate"], m["opportunity"]["held_out_rate"]) == (0.5, 1.0)
    assert (m["won"]["enrolled_rate"], m["won"]["held_out_rate"]) == (0.5, 0.0)
    assert m["won"]["ci95"][0] < 0.5 < m["won"]["ci95"][1]
    assert m["engaged"]["sentence"].startswith("not enough accounts yet: about")


def test_the_api_answers_the_same_figures_and_exports_csv(june, api):
    c = api("ae")
    resp = c.get("/api/v1/kpis?group_by=channel&from=2026-06-01&to=2026-06-30")
    assert resp.status_code == 200
    assert by_group(resp.json)["ads"]["cost_per_lead"] == 51.0
    csv_resp = c.get("/api/v1/kpis?group_by=channel&from=2026-06-01&to=2026-06-30&format=csv")
    lines = csv_resp.data.decode().splitlines()
    assert csv_resp.mimetype == "text/csv" and lines[0].startswith("group,touches,accounts_reached")
    assert any(line.startswith("ads,1,1,1,2.0,102.0,51.0,") for line in lines)
    assert c.get("/api/v1/kpis?group_by=colour").status_code == 422
    assert c.get("/api/v1/kpis?from=2026-07-01&to=2026-06-01").status_code == 422
    lift = c.get("/api/v1/playbooks/pb-a/lift")
    assert lift.status_code == 200 and lift.json["held_out"] == 1
    assert c.get("/api/v1/playbooks/nope/lift").status_code == 404
    behind = c.get("/api/v1/kpis/accounts?metric=reached&group_by=playbook&group=pb-a"
                   "&from=2026-06-01&to=2026-06-30")
    assert behind.json["account_ids"] == sorted([june["Acme"], june["Globex"]])


def test_costs_are_recorded_and_validated(june, api):
    assert api("ae").post("/api/v1/costs", json={"amount": 5, "channel": "ads", "date": "2026-06-02"}).status_code == 403
    m = api("manager")
    ok = m.post("/api/v1/costs", json={"playbook": "pb-b", "amount": "50.00", "currency": "usd",
                                        "from": "2026-06-01", "to": "2026-06-30"})
    assert ok.status_code == 201 and ok.json["currency"] == "USD"
    bad = m.post("/api/v1/costs", json={"playbook": "pb-zz", "amount": -1, "date": "2026-13-01"})
    assert bad.status_code == 422
    assert {d["path"] for d in bad.json["error"]["details"]} >= {"amount", "date", "playbook"}
    groups = by_group(kpis.compute("playbook", PERIOD, now=NOW))
    assert groups["pb-b"]["cost"] == 52.0 and groups["pb-b"]["cost_per_lead"] == 26.0


def test_rollups_equal_a_fresh_computation(june):
    stored = rollups.refresh(NOW)
    assert stored == len(rollups.STANDARD_DAYS) * len(kpis.GROUPS)
    for period in rollups.standard_periods(NOW):
        for group_by in kpis.GROUPS:
            served = rollups.kpis(group_by, period, now=NOW)
            fresh = kpis.compute(group_by, period, now=NOW)
            assert served["computed_at"] == NOW.isoformat()
            assert {k: v for k, v in served.items() if k != "computed_at"} == fresh
        assert rollups.extras(period, now=NOW) == rollups.extras_of(period)


def test_pipeline_influenced_over_time(june):
    series = kpis.pipeline_series(PERIOD, buckets=3)  # 1-10, 11-20, 21-30 June
    assert [(s["start"], s["pipeline"], s["revenue"]) for s in series] == [
        ("2026-06-01", 0.0, 0.0), ("2026-06-11", 10000.0, 10000.0), ("2026-06-21", 5000.0, 0.0)]
    assert [x["playbook"] for x in kpis.lifts()] == ["pb-a", "pb-b", "pb-c"]
