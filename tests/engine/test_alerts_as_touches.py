"""Sales alerts go out as touches: the claim, the retry that obeys the provider's
Retry-After, the rate limit and the recovery of playbook steps (Slack, a real local
server speaking its incoming-webhook protocol)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Alert, Touch
from abm.services import alerts, connectors
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
