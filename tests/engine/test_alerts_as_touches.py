"""Sales alerts go out as touches: the claim, the retry that obeys the provider's
Retry-After, the rate limit and the recovery of playbook steps (Slack, a real local
server speaking its incoming-webhook protocol)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Alert, Touch
from abm.services import alert_inbox, alerts, connectors
from abm.services import settings as settings_service
from tests.connectors.fakes.slack import slack_app
from tests.connectors.harness import serve
from tests.engine.conftest import make_account
from workers import dispatcher

TOKEN_PATH = "/services/T000/B000/GOODTOKEN"


@pytest.fixture
def slack(app):
    fake = slack_app(TOKEN_PATH)
    with serve(fake) as server:
        connectors.create({"type": "slack", "name": "sales-slack", "default": ["alert"], "settings": {
            "webhook_url": f"https://hooks.slack.com{TOKEN_PATH}", "base_url": server.base_url, "timeout": 5}})
        yield fake


def _touch_of(alert_id: int) -> Touch:
    db.session.expire_all()
    return db.session.execute(select(Touch).where(Touch.alert_id == alert_id)).scalar_one()


def test_a_level_alert_waits_out_slacks_429_and_then_arrives(app, clock, slack, make_user, worker):
    owner = make_user("ae", email="ae@seller.example")
    account = make_account("Acme", owner=owner)
    [alert_id] = alerts.on_scores_changed({account.id: (0.0, 80.0)}, clock())
    touch = _touch_of(alert_id)
    assert (touch.status, touch.kind, touch.connector) == ("queued", "alert", "sales-slack")

    slack.config["RATE_LIMITED"] = "7"
    worker()
    touch = _touch_of(alert_id)
    assert touch.status == "queued" and touch.not_before == clock() + timedelta(seconds=7)
    assert "429" in touch.error or "rate" in touch.error.lower()
    assert db.session.get(Alert, alert_id).status == "open"  # not a permanent failure

    slack.config["RATE_LIMITED"] = None
    assert dispatcher.dispatch(now=clock() + timedelta(seconds=6.9))["retried"] == 0
    assert dispatcher.dispatch(now=clock() + timedelta(seconds=7))["retried"] == 1
    worker()
    assert _touch_of(alert_id).status == "sent"
    alert = db.session.get(Alert, alert_id)
    assert (alert.status, alert.connector) == ("sent", "sales-slack")
    assert [p["text"] for p in slack.config["POSTED"]] == [alert.message]


def test_an_alert_fails_visibly_after_its_last_attempt(app, clock, slack, make_user, worker):
    app.config["ABM_TOUCH_MAX_ATTEMPTS"] = 2
    account = make_account("Acme", owner=make_user("ae"))
    [alert_id] = alerts.on_scores_changed({account.id: (0.0, 80.0)}, clock())
    slack.config["RATE_LIMITED"] = "1"
    worker()
    clock.advance(timedelta(minutes=10))
    dispatcher.dispatch(now=clock())
    worker()
    alert = db.session.get(Alert, alert_id)
    db.session.refresh(alert)
    assert alert.status == "failed"
    assert alert.error.startswith("gave up after 2 attempts: ") and "429" in alert.error


# -- the rules a playbook's alert step obeys: the send window and a cap ------------------

SATURDAY_3AM = datetime(2026, 6, 6, 3, 0, tzinfo=UTC)
MONDAY_9AM_NEW_YORK = datetime(2026, 6, 8, 13, 0, tzinfo=UTC)


def _inbox(owner, now) -> list[str]:
    return [item["message"] for item in alert_inbox.inbox([owner.id], "new", now=now)["items"]]


def test_a_surge_on_saturday_night_is_in_the_inbox_at_once_and_pings_the_ae_on_monday_morning(
        app, clock, slack, make_user, worker):
    clock.at = SATURDAY_3AM
    owner = make_user("ae", email="ae@seller.example")
    account = make_account("Acme", owner=owner, timezone="America/New_York")
    [alert_id] = alerts.on_scores_changed({account.id: (0.0, 80.0)}, clock())
    assert _inbox(owner, clock()) == [db.session.get(Alert, alert_id).message]  # seen at once in the inbox
    touch = _touch_of(alert_id)
    assert (touch.status, touch.due_at) == ("scheduled", MONDAY_9AM_NEW_YORK)  # the account's 9:00
    worker()
    assert slack.config["POSTED"] == []  # no ping at night, nor on Sunday

    assert dispatcher.dispatch(now=MONDAY_9AM_NEW_YORK - timedelta(minutes=1))["promoted"] == 0
    clock.at = MONDAY_9AM_NEW_YORK
    assert dispatcher.dispatch(now=clock())["promoted"] == 1
    worker()
    alert = db.session.get(Alert, alert_id)
    db.session.refresh(alert)
    assert [p["text"] for p in slack.config["POSTED"]] == [alert.message]
    assert (alert.status, _touch_of(alert_id).status) == ("sent", "sent")


def _intent(account, topics, at):
    return [{"type": "intent", "account_id": account.id, "occurred_at": at,
             "properties": {"topic": topic, "score": 80, "provider": "bombora"}} for topic in topics]


def test_the_ae_gets_at_most_the_alert_cap_per_account_a_day_and_the_rest_the_next_day(
        app, clock, slack, make_user, worker):
    owner = make_user("ae", email="ae@seller.example")
    account = make_account("Acme", owner=owner)
    topics = ["zero trust", "sase", "xdr", "siem"]
    ids = alerts.on_intent(_intent(account, topics, clock()), clock())
    assert len(ids) == 4 and len(_inbox(owner, clock())) == 4  # all four explained in the inbox now
    worker()
    assert len(slack.config["POSTED"]) == 3  # alerts.cap: 3 per account a day
    [later] = [_touch_of(i) for i in ids if _touch_of(i).status == "scheduled"]
    assert later.due_at == clock() + timedelta(days=1)
    assert later.error == "postponed: capped: at most 3 per account within 1d"

    assert dispatcher.dispatch(now=clock() + timedelta(hours=23))["promoted"] == 0
    clock.advance(timedelta(days=1))
    assert dispatcher.dispatch(now=clock())["promoted"] == 1
    worker()
    assert len(slack.config["POSTED"]) == 4
    db.session.expire_all()
    assert {db.session.get(Alert, i).status for i in ids} == {"sent"}


def test_alerts_immediate_sends_at_night_and_a_null_cap_sends_them_all(app, clock, slack, make_user, worker):
    settings_service.update({"alerts": {**settings_service.DEFAULTS["alerts"], "immediate": True, "cap": None}})
    clock.at = SATURDAY_3AM
    owner = make_user("ae", email="ae@seller.example")
    account = make_account("Acme", owner=owner, timezone="America/New_York")
    ids = alerts.on_intent(_intent(account, ["zero trust", "sase", "xdr", "siem"], clock()), clock())
    assert {(_touch_of(i).status, _touch_of(i).due_at) for i in ids} == {("queued", SATURDAY_3AM)}
    worker()
    assert len(slack.config["POSTED"]) == 4
