"""Honest heat: an email opened again within the window counts once, passive exposure is
capped per account and period, the breakdown and the level say what drove the score, and
the incremental score still agrees with a full recompute."""

from __future__ import annotations

from datetime import timedelta

import pytest

from abm.db import db, utcnow
from abm.errors import ValidationError
from abm.models import Account, Event
from abm.services import events, scores
from abm.services import settings as settings_service


def _event(etype, now, hours_ago=0.0, **fields):
    return events.stamp({"type": etype, "occurred_at": (now - timedelta(hours=hours_ago)).isoformat(), **fields})


def _acme(world):
    db.session.expire_all()
    return db.session.get(Account, world["acme"].id)


def test_an_email_opened_again_within_the_window_counts_once(app, world):
    now = utcnow()
    touch = world["touch"].id
    events.store([_event("email_open", now, 30, touch_id=touch), _event("email_open", now, 29.5, touch_id=touch)],
                 now=now)
    events.store([_event("email_open", now, 29, touch_id=touch),   # the same email, same contact: once
                  _event("email_open", now, 2, touch_id=touch)],   # 27 hours after the counted one: again
                 now=now)
    stored = db.session.query(Event.factor).filter(Event.type == "email_open").order_by(Event.occurred_at).all()
    assert [f for f, in stored] == [1.0, 0.0, 0.0, 1.0]  # every open is kept; two count
    assert _acme(world).score == pytest.approx(0.5 ** (30 / 24 / 30) + 0.5 ** (2 / 24 / 30), rel=1e-6)

    cfg = dict(settings_service.current()["heat"], open_window_hours=0)
    settings_service.update({"heat": cfg})
    events.store([_event("email_open", now, 1, touch_id=touch)], now=now)  # no window: every open counts
    assert db.session.query(Event).filter(Event.factor == 1.0, Event.type == "email_open").count() == 3


def test_passive_points_are_capped_per_account_and_period(app, world):
    now = utcnow()
    events.store([_event("ad_impression", now, 2, account_domain="acme.com", quantity=120)], now=now)  # 12 points
    events.store([_event("ad_impression", now, 1, account_domain="acme.com", quantity=100),            # 3 of 10 count
                  _event("email_click", now, 1, email="jane@acme.com")], now=now)                      # 3, active
    acme = _acme(world)
    b = scores.breakdown(acme.id, now=now)
    assert b["passive"] == pytest.approx(15, abs=0.05)  # decayed an hour or two; the default cap: 15 points per 30 days
    assert b["active"] == pytest.approx(3, abs=0.01)
    assert (b["engagement"], b["driven_by"]) == ("cold", "passive")
    assert acme.passive_ref / acme.score_ref == pytest.approx(15 / 18, abs=1e-3)
    factors = [f for f, in db.session.query(Event.factor).filter(Event.type == "ad_impression")
               .order_by(Event.occurred_at)]
    assert factors == [1.0, pytest.approx(0.3)]

    events.store([_event("meeting", now, 0.5, email="bob@acme.com")], now=now)  # active engagement is never capped
    b = scores.breakdown(acme.id, now=now)
    assert (b["engagement"], b["driven_by"]) == ("warm", "active") and b["active"] == pytest.approx(28, abs=0.02)

    incremental = _acme(world)
    scores.recompute(now)
    full = _acme(world)
    assert (full.score, full.passive_ref) == (pytest.approx(incremental.score, rel=1e-9),
                                              pytest.approx(incremental.passive_ref, rel=1e-9))


def test_an_admin_lifts_the_cap_and_impressions_count_in_full_from_then(app, world, make_user):
    now = utcnow()
    heat = dict(settings_service.current()["heat"], passive_cap={"points": None, "days": 30})
    settings_service.update({"heat": heat}, make_user("admin").id)
    events.store([_event("ad_impression", now, 1, account_domain="acme.com", quantity=600)], now=now)  # 60
    acme = _acme(world)
    assert acme.engagement == "hot"
    b = scores.breakdown(acme.id, now=now)
    assert b["driven_by"] == "passive" and b["by_type"][0] == {
        "type": "ad_impression", "passive": True, "events": 600, "points": pytest.approx(60, abs=0.1)}


def test_heat_settings_are_checked(app):
    bad = {"passive_types": ["Ad Impression"], "passive_cap": {"points": -1, "days": 0}, "open_window_hours": "x"}
    with pytest.raises(ValidationError) as err:
        settings_service.update({"heat": bad})
    assert {d["path"] for d in err.value.details} == {
        "heat.passive_types[0]", "heat.passive_cap.points", "heat.passive_cap.days", "heat.open_window_hours"}
