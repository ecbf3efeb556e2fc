"""The attribution kept by day (abm.services.kpi_days): after any random mix of new and
changed rows, the answer put together from the days kept equals the live one, and a
refresh recomputes only the days the changed rows reach."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from abm import metrics
from abm.db import db
from abm.models import Account, Contact, Cost, Enrollment, Event, KpiDayPart, Opportunity, StageChange, Touch
from abm.services import kpi_days, kpis, rollups
from abm.services import settings as settings_service
from tests.kpis.test_kpi_properties import NOW, random_world

#: A failing example is reported as it is: shrinking one takes minutes of rebuilt worlds.
NO_SHRINKING = (Phase.explicit, Phase.reuse, Phase.generate)
MODELS = [m for m in metrics.MODELS if m != "markov"]
PERIOD = rollups.standard_periods(NOW)[1]  # the last 90 days: the default view
FIRST = PERIOD.start.date()


def _at(rng: random.Random, back_days: float) -> datetime:
    return NOW - timedelta(days=rng.uniform(0, back_days))


def _touch(rng: random.Random, account: Account, at: datetime | None, status: str = "sent") -> Touch:
    enrollment = db.session.execute(select(Enrollment).where(Enrollment.account_id == account.id)).scalars().first()
    return Touch(enrollment_id=enrollment.id, playbook_id=enrollment.playbook_id, account_id=account.id,
                 contact_key=rng.randint(10**6, 10**9), step_id="s", kind="email",
                 channel=rng.choice(["email", "ads", "alert"]), status=status, sent_at=at)


def random_changes(rng: random.Random) -> None:
    """A minute's worth of rows, new and changed: events today and backfilled, touches
    sent today and backfilled (and one sent only now), opportunities new, closed, moved
    and deleted, lead events matched to their contact late, stage changes and spend."""
    accounts = list(db.session.execute(select(Account)).scalars())
    contacts = list(db.session.execute(select(Contact)).scalars())
    lead_types = ["form_fill", "meeting", "email_open", "web_visit"]
    for _ in range(rng.randint(1, 6)):
        c = rng.choice(contacts)
        back = rng.choice([0.5, 0.5, 120])  # today, or a backfill
        db.session.add(Event(type=rng.choice(lead_types), contact_id=c.id, account_id=c.account_id,
                             occurred_at=_at(rng, back)))
    unmatched = Event(type="form_fill", occurred_at=_at(rng, 100))
    db.session.add(unmatched)
    for _ in range(rng.randint(0, 4)):
        db.session.add(_touch(rng, rng.choice(accounts), _at(rng, rng.choice([0.5, 150]))))
    pending = _touch(rng, rng.choice(accounts), None, status="scheduled")
    db.session.add(pending)
    for _ in range(rng.randint(0, 2)):
        db.session.add(Opportunity(account_id=rng.choice(accounts).id, name="new", amount=Decimal(rng.randint(1, 90) * 100),
                                   created_at=_at(rng, rng.choice([0.5, 100]))))
    db.session.add(StageChange(account_id=rng.choice(accounts).id, from_stage="target", to_stage="engaged",
                               changed_at=_at(rng, 30), source="test"))
    db.session.add(Cost(channel="email", amount=Decimal("12.34"), date_from=(NOW - timedelta(days=10)).date(),
                        date_to=NOW.date()))
    db.session.commit()
    # changes to rows already there
    c = rng.choice(contacts)
    unmatched.contact_id, unmatched.account_id = c.id, c.account_id  # matched late
    pending.status, pending.sent_at = "sent", _at(rng, 60)  # sent now, dated in the past
    opps = list(db.session.execute(select(Opportunity)).scalars())
    if opps:
        o = rng.choice(opps)
        o.closed_at, o.won = NOW, rng.random() < .5
        rng.choice(opps).account_id = rng.choice(accounts).id
        if rng.random() < .5:
            db.session.delete(rng.choice(opps))
    db.session.commit()


def assert_days_add_up(model: str, groups: tuple[str, ...] = kpi_days.GROUPS) -> None:
    for group_by in groups:
        live = kpis.compute(group_by, PERIOD, now=NOW, model=model)
        by_day = kpis.compute(group_by, PERIOD, now=NOW, model=model,
                              attribution_rows=kpi_days.period_rows(group_by, model, PERIOD))
        assert by_day == live, (group_by, model)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@settings(max_examples=10, deadline=None, phases=NO_SHRINKING, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), model=st.sampled_from(MODELS))
def test_the_days_kept_add_up_to_the_live_answer_after_random_changes(app, seed, model):
    random_world(seed)
    settings_service.update({"attribution": {"window_days": 60, "model": model}})
    kpi_days.refresh(NOW, FIRST, kpi_days.GROUPS, model)
    assert_days_add_up(model)
    rng = random.Random(seed)
    for _ in range(3):
        random_changes(rng)
        kpi_days.refresh(NOW, FIRST, kpi_days.GROUPS, model)
        assert_days_add_up(model)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@settings(max_examples=4, deadline=None, phases=NO_SHRINKING, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6))
def test_the_default_view_served_equals_a_live_computation(app, seed):
    """What the dashboard serves after the workers' refresh (put together from days) is
    what a live computation gives, after new rows too."""
    random_world(seed)
    settings_service.update({"attribution": {"window_days": 60, "model": "linear"}})
    rng = random.Random(seed)
    for _ in range(2):
        db.session.execute(delete(rollups.KpiRollup).where(rollups.KpiRollup.key == "refresh"))
        assert rollups.refresh(NOW) == 2
        for group_by in rollups.DEFAULT_GROUPS:
            served = rollups.kpis(group_by, PERIOD, now=NOW)
            assert {k: v for k, v in served.items() if k != "computed_at"} == kpis.compute(group_by, PERIOD, now=NOW)
        random_changes(rng)


# -- only the dirty days ---------------------------------------------------------------


def _day(days_ago: int) -> date:
    return (NOW - timedelta(days=days_ago)).date()


@pytest.fixture
def two_accounts(app, monkeypatch):
    """Accounts A and B, one playbook; at A: touches 50 and 40 days ago, a lead 30 days
    ago, an opportunity 20 days ago. A refresh has run (every day computed)."""
    monkeypatch.setattr(kpi_days, "OVERLAP", timedelta(0))  # the test's rows are all from this minute
    random_world(0)  # a playbook, enrollments
    db.session.execute(delete(Touch))
    db.session.execute(delete(Event))
    db.session.execute(delete(Opportunity))
    accounts = list(db.session.execute(select(Account).order_by(Account.id)).scalars())[:2]
    a, b = accounts
    ca, cb = Contact(account_id=a.id, email="ca@a.example"), Contact(account_id=b.id, email="cb@b.example")
    db.session.add_all([ca, cb])
    db.session.flush()
    rng = random.Random(1)
    db.session.add_all([_touch(rng, a, NOW - timedelta(days=50)), _touch(rng, a, NOW - timedelta(days=40)),
                        Event(type="form_fill", contact_id=ca.id, account_id=a.id, occurred_at=NOW - timedelta(days=30)),
                        Opportunity(account_id=a.id, name="o", amount=Decimal(1000),
                                    created_at=NOW - timedelta(days=20))])
    db.session.commit()
    settings_service.update({"attribution": {"window_days": 60, "model": "linear"}})
    first = kpi_days.refresh(NOW, FIRST, ("channel",), "linear")
    assert first == {"channel": [FIRST + timedelta(days=i) for i in range(90)]}
    return {"a": a, "b": b, "ca": ca, "cb": cb, "rng": rng}


def _refresh() -> list[date]:
    return kpi_days.refresh(NOW, FIRST, ("channel",), "linear")["channel"]


def test_a_refresh_recomputes_only_the_days_new_rows_reach(two_accounts):
    w = two_accounts
    assert _refresh() == []  # nothing new
    db.session.add(Event(type="form_fill", contact_id=w["cb"].id, account_id=w["b"].id, occurred_at=NOW))
    db.session.add(Event(type="web_visit", contact_id=w["ca"].id, account_id=w["a"].id, occurred_at=NOW))
    db.session.commit()
    assert _refresh() == [_day(0)]  # a lead today at B: today only
    # a touch backfilled 35 days ago at A: the lead (30 days ago) and opportunity (20) after it
    db.session.add(_touch(w["rng"], w["a"], NOW - timedelta(days=35)))
    db.session.commit()
    assert _refresh() == [_day(30), _day(20)]
    # an opportunity today at A: today, and the lead within the window before it (its to_opp)
    db.session.add(Opportunity(account_id=w["a"].id, name="p", amount=Decimal(5), created_at=NOW))
    db.session.commit()
    assert _refresh() == [_day(30), _day(0)]
    # the opportunity of 20 days ago closes as won: its day only (the lead's outcome stands)
    opp = db.session.execute(select(Opportunity).where(Opportunity.name == "o")).scalar_one()
    opp.closed_at, opp.won = NOW, True
    db.session.commit()
    assert _refresh() == [_day(20)]
    # ... and moves to B: its day, and the lead at A before it (now without an opportunity)
    opp.account_id = w["b"].id
    db.session.commit()
    assert _refresh() == [_day(30), _day(20)]
    assert_days_add_up("linear", ("channel",))


def test_a_lead_event_matched_to_its_contact_late_dirties_its_day(two_accounts):
    w = two_accounts
    late = Event(type="meeting", occurred_at=NOW - timedelta(days=10))
    db.session.add(late)
    db.session.commit()
    assert _refresh() == []  # no account yet: no lead
    late.contact_id, late.account_id = w["cb"].id, w["b"].id
    db.session.commit()
    assert _refresh() == [_day(10)]


def test_a_change_of_the_weighing_settings_recomputes_every_day(two_accounts):
    settings_service.update({"attribution": {"window_days": 30}})
    assert len(_refresh()) == 90
    assert db.session.execute(select(KpiDayPart.day).where(KpiDayPart.day < FIRST)).first() is None


def test_days_before_the_period_are_dropped(two_accounts):
    later = NOW + timedelta(days=2)
    assert kpi_days.refresh(later, FIRST + timedelta(days=2), ("channel",), "linear")["channel"] == [
        _day(-1), _day(-2)]
    assert min(db.session.execute(select(KpiDayPart.day)).scalars()) == FIRST + timedelta(days=2)


def test_days_are_utc_days():
    assert kpi_days.day_of(datetime(2026, 9, 30, 23, 30, tzinfo=UTC)) == date(2026, 9, 30)
