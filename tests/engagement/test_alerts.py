"""Alerts: raised per reason (a warm-to-hot escalation and a second surge are new alerts),
surges seen from the events of the first week without snapshots, what was behind each
alert kept in words, playbook alert steps in the inbox, and the seller's acknowledge,
snooze and not relevant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import select

from abm.db import db, utcnow
from abm.errors import ApiError
from abm.models import Alert, Opportunity
from abm.redis_conn import get_redis
from abm.services import alert_inbox, alerts, events
from tests.engagement.test_scores import _line


def _alerts():
    db.session.expire_all()
    return db.session.execute(select(Alert).order_by(Alert.id)).scalars().all()


def _owned(world, make_user):
    seller = make_user("ae", email="seller@ourco.example")
    world["acme"].owner_id = world["globex"].owner_id = seller.id
    db.session.commit()
    return seller


def test_warm_then_hot_are_two_alerts_and_the_same_level_again_is_none(app, world, make_user):
    seller = _owned(world, make_user)
    now = utcnow()
    events.store([_line("meeting", "jane@acme.com", now=now)], now=now)  # 25: warm
    made = _alerts()
    assert [(a.kind, a.reason, a.user_id) for a in made] == [("level_up", "level:warm", seller.id)]
    assert "Acme is now warm (score 25, up from 0), a surge" == made[0].message  # one alert, not two
    # No alert connector here: the alert stays for the inbox, its delivery failed with the reason.
    assert (made[0].status, made[0].error) == ("failed", "no default alert connector is configured")
    assert Queue("touches", connection=get_redis()).count == 0

    events.store([_line("meeting", "bob@acme.com", now=now), _line("meeting", "bob@acme.com", 0.01, now=now)],
                 now=now)  # 75: hot, the same week
    made = _alerts()
    assert [a.reason for a in made] == ["level:warm", "level:hot"]  # the escalation is a new alert
    assert (made[1].score_before, made[1].score_after) == (pytest.approx(25), pytest.approx(74.99, abs=0.01))

    events.store([_line("meeting", "jane@acme.com", now=now)], now=now)  # 100: still hot, no new surge
    assert len(_alerts()) == 2


def test_a_surge_is_seen_from_the_events_and_a_second_surge_is_a_new_alert(app, world, make_user):
    _owned(world, make_user)
    now = utcnow()
    events.store([_line("meeting", "bob@acme.com", 10, now=now) for _ in range(3)], now=now)  # 59.5: hot
    db.session.query(Alert).delete()
    db.session.commit()
    events.store([_line("meeting", "jane@acme.com", 0.1, now=now) for _ in range(4)], now=now)  # +100
    made = _alerts()
    assert [(a.kind, a.reason) for a in made] == [("surge", "surge")]  # no snapshot anywhere
    assert made[0].message == "Acme is surging: score 159, up from 70 a week ago"
    assert alerts.surges(now) == []  # the hourly sweep finds it covered

    events.store([_line("meeting", "jane@acme.com", now=now)], now=now)  # 184: not twice 159
    assert len(_alerts()) == 1
    events.store([_line("meeting", "jane@acme.com", now=now) for _ in range(6)], now=now)  # 334: twice 159
    made = _alerts()
    assert [a.reason for a in made] == ["surge", "surge"]
    assert made[1].score_before == pytest.approx(70, abs=0.1)

    db.session.query(Alert).delete()
    db.session.commit()
    assert len(alerts.surges(now)) == 1  # the sweep raises what the drain did not (late matches)


def test_an_alert_says_why_and_suggests_a_next_step(app, world, make_user):
    _owned(world, make_user)
    now = utcnow()
    events.store([_line("meeting", "jane@acme.com", 1, now=now),
                  _line("web_visit", "jane@acme.com", url="https://v.example/pricing", now=now),
                  _line("web_visit", "bob@acme.com", url="https://v.example/blog", now=now)], now=now)
    alert = _alerts()[0]
    text = alert_inbox.why(alert)
    assert text.startswith("Score 0 before, 34 then (+34).")
    assert "1 meeting (25 points), 2 website visits (10 points)" in text
    assert "Most of it from Jane (champion), Bob (user)." in text
    assert alert.suggestion == "Call Jane (champion) and qualify an opportunity."

    db.session.add(Opportunity(account_id=world["acme"].id, name="Acme gateway", stage="proposal", amount=50000))
    db.session.commit()
    box = alert_inbox.inbox(None, "new")
    item = box["items"][0]
    assert item["opportunity"]["name"] == "Acme gateway" and item["account"]["stage"] == "aware"


def test_a_playbook_alert_step_to_a_user_lands_in_their_inbox(app, world, make_user):
    seller = _owned(world, make_user)
    row = {"kind": "alert", "status": "queued", "account_id": world["acme"].id,
           "playbook_id": world["playbook"].id, "step_id": "alert-owner",
           "payload": {"to": "Seller@ourco.example", "message": "Acme crossed 40: call them."}}
    outsider = dict(row, payload={"to": "someone@elsewhere.example", "message": "x"})
    ids = alerts.from_playbook_touches([row, outsider, dict(row, kind="email")])
    alert = db.session.get(Alert, ids[0])
    assert len(ids) == 1 and alert.user_id == seller.id and alert.status == "playbook"
    assert alert.message == "The playbook “Intro” flagged Acme (step alert-owner)"
    assert alert.suggestion == "Acme crossed 40: call them."
    assert Queue("default", connection=get_redis()).jobs == []  # the playbook's touch delivers it
    assert alerts.from_playbook_touches([row]) == []  # once per reason and period


def test_acknowledge_snooze_and_not_relevant(app, world, make_user):
    seller = _owned(world, make_user)
    other = make_user("ae", email="other@ourco.example")
    now = utcnow()
    events.store([_line("meeting", "jane@acme.com", now=now)], now=now)
    alert = _alerts()[0]
    assert alert_inbox.count_new(seller.id) == 1

    with pytest.raises(ApiError) as err:
        alert_inbox.act(alert.id, other, "acknowledge")
    assert err.value.status == 403
    for bad in ("yesterday", (now - timedelta(days=1)).date().isoformat(), "2999-01-01"):
        with pytest.raises(ApiError) as err:
            alert_inbox.act(alert.id, seller, "snooze", until=bad)
        assert err.value.status == 422

    later = (now + timedelta(days=3)).date()
    alert_inbox.act(alert.id, seller, "snooze", until=later.isoformat())
    assert alert_inbox.count_new(seller.id) == 0
    assert alert_inbox.inbox([seller.id], "snoozed")["counts"] == {
        "new": 0, "snoozed": 1, "acknowledged": 0, "not_relevant": 0}
    woken = alert_inbox.inbox([seller.id], "new", now=now + timedelta(days=4))
    assert [i["id"] for i in woken["items"]] == [alert.id]  # a snooze that ran out comes back

    alert_inbox.act(alert.id, seller, "not_relevant", feedback="They are a reseller, not a buyer.")
    assert alert_inbox.feedback()[0]["feedback"] == "They are a reseller, not a buyer."
    assert alert_inbox.inbox([seller.id], "not_relevant")["counts"]["not_relevant"] == 1
    alert_inbox.act(alert.id, seller, "reopen")
    alert_inbox.act(alert.id, make_user("manager"), "acknowledge")  # a manager may act for the team
    assert alert_inbox.inbox(None, "acknowledged")["items"][0]["id"] == alert.id
