"""Properties of the KPIs on random data: attributed conversions add up to the totals,
and the workers' rollups equal a computation from the raw rows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from abm import metrics
from abm.db import db
from abm.models import Account, Contact, Enrollment, Event, Opportunity, Playbook, PlaybookVersion, Touch
from abm.services import kpi_sql, kpi_trends, kpis, rollups, segments
from abm.services import settings as settings_service
from tests.conftest import empty_database

NOW = datetime(2026, 9, 30, 12, tzinfo=UTC)


def random_world(seed: int) -> None:
    rng = random.Random(seed)
    db.session.rollback()  # the previous example's transaction would hold SQLite's lock
    empty_database(db.engine)
    accounts = [Account(name=f"A{i}", domain=f"a{i}.example", tier=rng.choice([1, 2, 3, None]),
                        country=rng.choice(["DE", "FR", None])) for i in range(rng.randint(3, 8))]
    pbs = [Playbook(key=f"p{i}", name=f"P{i}", status="active", product=rng.choice(["x", "y", None]))
           for i in range(rng.randint(1, 3))]
    db.session.add_all(accounts + pbs)
    db.session.flush()
    vers = [PlaybookVersion(playbook_id=p.id, version=1, source="", compiled={}) for p in pbs]
    contacts = [Contact(account_id=rng.choice(accounts).id, email=f"c{i}@x{i}.example") for i in range(rng.randint(2, 10))]
    db.session.add_all(vers + contacts)
    db.session.flush()
    enrollments = {}
    for a in accounts:
        p = rng.randrange(len(pbs))
        e = Enrollment(playbook_id=pbs[p].id, version_id=vers[p].id, account_id=a.id,
                       state=rng.choice(["active", "completed", "held_out"]), entered_at=NOW - timedelta(days=200))
        db.session.add(e)
        db.session.flush()
        enrollments[a.id] = (e, pbs[p])
    day = lambda: NOW - timedelta(days=rng.uniform(0, 180))  # noqa: E731
    for i in range(rng.randint(0, 40)):
        a = rng.choice(accounts)
        e, p = enrollments[a.id]
        c = rng.choice([x for x in contacts if x.account_id == a.id] or [None])
        db.session.add(Touch(enrollment_id=e.id, playbook_id=p.id, account_id=a.id, contact_id=c.id if c else None,
                             contact_key=i + 1, step_id="s", kind="email", channel=rng.choice(["email", "ads", "alert"]),
                             connector=None, status=rng.choice(["sent", "sent", "failed"]), sent_at=day()))
    for _ in range(rng.randint(0, 30)):
        c = rng.choice(contacts)
        db.session.add(Event(type=rng.choice(["form_fill", "meeting", "email_open", "web_visit"]), contact_id=c.id,
                             account_id=c.account_id, occurred_at=day()))
    for _ in range(rng.randint(0, 6)):
        closed = rng.random() < .6
        db.session.add(Opportunity(account_id=rng.choice(accounts).id, name="o", amount=Decimal(rng.randint(1, 90) * 100),
                                   created_at=day(), closed_at=NOW if closed else None,
                                   won=rng.random() < .5 if closed else None))
    db.session.commit()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the arithmetic is the same on both
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), model=st.sampled_from(metrics.MODELS))
def test_attributed_conversions_add_up_and_rollups_equal_raw(app, seed, model):
    random_world(seed)
    settings_service.update({"attribution": {"window_days": 60, "model": model}})
    period = rollups.standard_periods(NOW)[1]
    for group_by in kpis.GROUPS:
        data = kpis.compute(group_by, period, now=NOW)
        groups = data["groups"]
        assert abs(sum(g["leads"] for g in groups) - data["totals"]["leads"]) < 1e-6
        assert abs(sum(g["opportunities"] for g in groups) - data["totals"]["opportunities"]) < 1e-6
        for g in groups:
            assert g["engaged_accounts"] <= g["accounts_reached"]
            assert g["revenue_influenced"] <= g["pipeline_influenced"]
        rollups._store(rollups.key(group_by, period, None, None), data, NOW)
        served = rollups.kpis(group_by, period, now=NOW)
        assert {k: v for k, v in served.items() if k != "computed_at"} == data


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), model=st.sampled_from([m for m in metrics.MODELS if m != "markov"]))
def test_the_sql_weights_equal_the_reference_arithmetic(app, seed, model):
    """Touch by touch, the weights the database gives equal metrics.position_weights."""
    random_world(seed)
    period = rollups.standard_periods(NOW)[1]
    conv = kpi_sql.conversions(["form_fill", "meeting"], period.start, period.end, 60, with_lead_at=True)
    mt = kpi_sql.marketing_touches("channel", period.start - timedelta(days=60), period.end, None)
    path = kpi_sql.weighted(kpi_sql.numbered(conv, mt, 60), model, 5.0)
    rows = db.session.execute(select(path.c.kind, path.c.conv_id, path.c.account_id, path.c.rn, path.c.n,
                                     path.c.aux, path.c.w, path.c.at, path.c.sent_at)
                              .order_by(path.c.kind, path.c.conv_id, path.c.account_id, path.c.rn)).all()
    by_conv = {}
    for r in rows:
        by_conv.setdefault((r.kind, r.conv_id, r.account_id), []).append(r)
    for touches in by_conv.values():
        n = touches[0].n
        assert [t.rn for t in touches] == list(range(1, n + 1))
        ages = [(t.at - t.sent_at).total_seconds() / 86400 for t in touches]
        lead_at = touches[0].aux if model == "w_shaped" else None
        expected = metrics.position_weights(n, model, lead_at=lead_at, ages=ages, half_life=5.0)
        assert [t.w for t in touches] == pytest.approx(expected, abs=1e-9)
        assert sum(t.w for t in touches) == pytest.approx(1.0)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), metric=st.sampled_from(list(kpis.COMPARED)))
def test_the_models_side_by_side_add_up_to_the_conversions_in_every_grouping(app, seed, metric):
    """The comparison page's table: in every grouping (segments overlapping too) and every
    model, the groups' shares add up to the conversions counted once, and every money
    figure of every model is in whole cents."""
    random_world(seed)
    segments.save("tier-one", "tier: [1]\n")
    segments.save("tiers-one-two", "tier: [1, 2]\n")  # overlaps tier-one
    settings_service.update({"attribution": {"window_days": 60}})
    period = rollups.standard_periods(NOW)[1]
    conversions = kpis.compute("playbook", period, now=NOW)["totals"][metric]
    for group_by in kpis.GROUPS:
        table = kpis.compare_models(group_by, period, metric)
        assert table["models"] == list(metrics.MODELS)
        for model in metrics.MODELS:
            assert sum(row[model] for row in table["groups"]) == pytest.approx(conversions, abs=1e-3), (group_by, model)
            assert table["totals"][model] == pytest.approx(conversions, abs=1e-3)
            for row in kpis.compute(group_by, period, now=NOW, model=model)["groups"]:
                for money in ("cost", "cost_per_lead", "pipeline_influenced", "revenue_influenced"):
                    assert row[money] is None or row[money] == round(row[money], 2)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), model=st.sampled_from(metrics.MODELS))
def test_engaged_accounts_by_hand_and_groupings_computed_together(app, seed, model):
    """Each group's engaged accounts equal a count by hand from the raw rows (an active
    event at or after the group's first touch there, before the period's end), and the
    touch-level groupings computed together give what each gives alone."""
    random_world(seed)
    rng = random.Random(seed)
    touched = db.session.execute(select(Touch.account_id)).scalars().all()
    for account_id in rng.sample(touched, min(3, len(touched))):  # some accounts see only passive events
        db.session.add(Event(type="ad_impression", account_id=account_id, occurred_at=NOW - timedelta(days=1)))
    db.session.commit()
    settings_service.update({"attribution": {"window_days": 60, "model": model}})
    period = rollups.standard_periods(NOW)[1]
    together = kpis.compute_many(kpi_sql.TOUCH_GROUPS, period, now=NOW)
    for group_by in kpi_sql.TOUCH_GROUPS:
        assert together[group_by] == kpis.compute(group_by, period, now=NOW)
    playbook_keys = dict(db.session.execute(select(Playbook.id, Playbook.key)).all())
    firsts: dict[tuple[str, str, int], datetime] = {}
    for t in db.session.execute(select(Touch).where(Touch.status == "sent", Touch.channel.in_(kpi_sql.MARKETING_CHANNELS),
                                                    Touch.sent_at >= period.start, Touch.sent_at < period.end)).scalars():
        for group_by, g in (("playbook", playbook_keys[t.playbook_id]), ("channel", t.channel)):
            key = (group_by, g, t.account_id)
            firsts[key] = min(firsts.get(key, t.sent_at), t.sent_at)
    active = [(e.account_id, e.occurred_at) for e in db.session.execute(select(Event)).scalars()
              if e.type not in kpi_sql.PASSIVE_EVENTS and e.occurred_at < period.end]
    for group_by in ("playbook", "channel"):
        by_hand: dict[str, int] = {}
        for (grouping, g, account_id), first in firsts.items():
            if grouping == group_by:
                by_hand.setdefault(g, 0)
                by_hand[g] += any(a == account_id and at >= first for a, at in active)
        assert {r["group"]: r["engaged_accounts"] for r in together[group_by]["groups"]
                if r["group"] in by_hand} == by_hand
    first_touch: dict[int, datetime] = {}
    for (grouping, _, account_id), first in firsts.items():
        if grouping == "channel":
            first_touch[account_id] = min(first_touch.get(account_id, first), first)
    engaged_total = sum(any(a == account_id and at >= first for a, at in active) for account_id, first in first_touch.items())
    assert together["playbook"]["totals"]["engaged_accounts"] == engaged_total


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), model=st.sampled_from(metrics.MODELS),
       group_by=st.sampled_from(kpis.GROUPS))
def test_weeks_computed_at_once_equal_each_week_alone(app, seed, model, group_by):
    random_world(seed)
    settings_service.update({"attribution": {"window_days": 60, "model": model}})
    weeks = kpi_trends.week_periods(12, NOW)
    assert kpis.series(group_by, weeks) == [kpis.compute(group_by, w, now=NOW, with_funnel=False) for w in weeks]
