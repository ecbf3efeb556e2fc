"""Several groupings computed together (the rollup refresh's one pass over the touches, the
events and the attribution paths) give each grouping the answer it gets alone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from abm.db import db
from abm.models import Account, Enrollment, Event, Playbook, PlaybookVersion, Touch
from abm.services import kpi_sql, kpi_trends, kpis, rollups
from tests.kpis.test_kpis import NOW, PERIOD, at, build_june


def engaged(answer: dict) -> dict[str, int]:
    return {r["group"]: r["engaged_accounts"] for r in answer["groups"]} | {None: answer["totals"]["engaged_accounts"]}


def add_hooli() -> None:
    """Hooli: pb-a emails it on 06-01, it clicks on 06-02; pb-b's ad reaches it on 06-20 and
    it only sees impressions after: engaged for pb-a and email, not for pb-b and ads."""
    hooli = Account(name="Hooli", domain="hooli.com", stage="target")
    db.session.add(hooli)
    db.session.flush()
    for key, channel, connector, when in (("pb-a", "email", "outbox", at(6, 1)), ("pb-b", "ads", "li", at(6, 20))):
        pb = db.session.query(Playbook).filter_by(key=key).one()
        version = db.session.query(PlaybookVersion).filter_by(playbook_id=pb.id).one()
        enr = Enrollment(playbook_id=pb.id, version_id=version.id, account_id=hooli.id, state="active",
                         entered_at=at(5, 30))
        db.session.add(enr)
        db.session.flush()
        db.session.add(Touch(enrollment_id=enr.id, playbook_id=pb.id, account_id=hooli.id, contact_key=0,
                             step_id="h", kind=channel, channel=channel, connector=connector, status="sent",
                             sent_at=when))
    db.session.add_all([Event(type="email_click", account_id=hooli.id, occurred_at=at(6, 2)),
                        Event(type="ad_impression", account_id=hooli.id, occurred_at=at(6, 21))])
    db.session.commit()


@pytest.mark.parametrize("model", kpis.MODELS)
def test_groupings_computed_together_answer_as_each_alone(app, model):
    build_june()
    add_hooli()
    ninety = rollups.standard_periods(NOW)[1]
    for period in (PERIOD, ninety, kpis.Period(PERIOD.start, PERIOD.end - timedelta(days=10))):
        together = kpis.compute_many(kpi_sql.TOUCH_GROUPS, period, now=NOW, model=model)
        for group_by in kpi_sql.TOUCH_GROUPS:
            assert together[group_by] == kpis.compute(group_by, period, now=NOW, model=model), (group_by, period)
    assert together["playbook"]["funnel"] is not None
    for playbook, product in (("pb-a", None), (None, "gateway"), ("pb-c", "gateway")):
        together = kpis.compute_many(kpi_sql.TOUCH_GROUPS, PERIOD, playbook, product, now=NOW, model=model)
        for group_by in kpi_sql.TOUCH_GROUPS:
            assert together[group_by] == kpis.compute(group_by, PERIOD, playbook, product, now=NOW, model=model)


def test_an_account_is_engaged_for_the_groups_whose_first_touch_its_activity_followed(app):
    build_june()
    before = {g: engaged(kpis.compute(g, PERIOD, now=NOW)) for g in ("playbook", "channel")}
    add_hooli()
    after = kpis.compute_many(("playbook", "channel"), PERIOD, now=NOW)
    assert engaged(after["playbook"])["pb-a"] == before["playbook"]["pb-a"] + 1
    assert engaged(after["playbook"])["pb-b"] == before["playbook"]["pb-b"]
    assert engaged(after["channel"])["email"] == before["channel"]["email"] + 1
    assert engaged(after["channel"])["ads"] == before["channel"]["ads"]
    assert engaged(after["playbook"])[None] == engaged(after["channel"])[None] == before["playbook"][None] + 1


def add_initrode() -> None:
    """Initrode: pb-c emails it on Friday 06-12, it clicks on Tuesday 06-16, the next week:
    reached and not engaged in the week of 06-08, neither in the next."""
    initrode = Account(name="Initrode", domain="initrode.com", stage="target")
    db.session.add(initrode)
    db.session.flush()
    pb = db.session.query(Playbook).filter_by(key="pb-c").one()
    version = db.session.query(PlaybookVersion).filter_by(playbook_id=pb.id).one()
    enr = Enrollment(playbook_id=pb.id, version_id=version.id, account_id=initrode.id, state="active",
                     entered_at=at(6, 1))
    db.session.add(enr)
    db.session.flush()
    db.session.add_all([Touch(enrollment_id=enr.id, playbook_id=pb.id, account_id=initrode.id, contact_key=0, step_id="i",
                              kind="email", channel="email", connector="outbox", status="sent", sent_at=at(6, 12)),
                        Event(type="email_click", account_id=initrode.id, occurred_at=at(6, 16))])
    db.session.commit()


@pytest.mark.parametrize("model", kpis.MODELS)
def test_a_series_of_weeks_computed_at_once_answers_as_each_week_alone(app, model):
    """The trends page's weeks in one pass: each week's answer, in every grouping, is the
    one computed for that week alone (a touch in one week and activity in the next, leads
    and opportunities across weeks, spend prorated by day)."""
    build_june()
    add_hooli()
    add_initrode()
    weeks = kpi_trends.week_periods(6, NOW)
    for group_by in kpis.GROUPS:
        alone = [kpis.compute(group_by, week, now=NOW, model=model, with_funnel=False) for week in weeks]
        assert kpis.series(group_by, weeks, model=model) == alone, group_by
    assert any(week["totals"]["leads"] for week in alone) and any(week["totals"]["engaged_accounts"] for week in alone)
    week_of_0608 = {r["group"]: r for r in kpis.series("playbook", weeks, model=model)[2]["groups"]}
    assert week_of_0608["pb-c"]["accounts_reached"] == 1 and week_of_0608["pb-c"]["engaged_accounts"] == 0
