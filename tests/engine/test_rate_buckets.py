"""Rate buckets follow what the provider counts: each Slack channel (webhook, bot channel,
bot direct message) and each Meta ad account is paced on its own, so a busy channel
does not slow another (a real local server speaking Slack's Web API, real Redis)."""

from __future__ import annotations

import time

import pytest
from flask import request
from sqlalchemy import select

from abm.db import db
from abm.models import Touch
from abm.redis_conn import get_redis
from abm.services import alerts, connectors
from connectors.base import Touch as ConnectorTouch
from connectors.meta import MetaConnector
from connectors.slack import SlackConnector
from tests.connectors.fakes.slack import slack_api_app
from tests.connectors.harness import serve
from tests.engine.conftest import make_account
from workers import jobs, ratelimit


def _call(to: str = "ae@vendor.com") -> list[ConnectorTouch]:
    return [ConnectorTouch(id=1, kind="alert", channel="alert", account={}, contact=None,
                           payload={"to": to, "message": "hi"}, key="alert:1")]


def test_each_slack_channel_and_each_meta_ad_account_has_its_own_bucket():
    hook = "https://hooks.slack.com/services/T0/B0/"
    webhook = [SlackConnector(n, {"webhook_url": hook + t}) for n, t in (("a", "ONE"), ("b", "ONE"), ("c", "TWO"))]
    assert ratelimit.bucket_key(webhook[0], _call()) == ratelimit.bucket_key(webhook[1], _call())  # one channel
    assert ratelimit.bucket_key(webhook[0], _call()) != ratelimit.bucket_key(webhook[2], _call())
    bot = {"bot_token": "xoxb-1"}
    emea, amer, emea_too = (SlackConnector(n, {**bot, "channel": c})
                            for n, c in (("emea", "C0EMEA"), ("amer", "C0AMER"), ("emea2", "C0EMEA")))
    keys = {ratelimit.bucket_key(c, _call()) for c in (emea, amer)}
    assert len(keys) == 2 and ratelimit.bucket_key(emea_too, _call()) in keys
    assert all("xoxb" not in key and hook not in key for key in keys)  # secrets are named by a digest
    dm = SlackConnector("dm", {**bot, "channel": "C0EMEA", "deliver_to": "direct_message"})
    ana, bob = ratelimit.bucket_key(dm, _call("ana@vendor.com")), ratelimit.bucket_key(dm, _call("bob@vendor.com"))
    assert len({ana, bob, *keys}) == 4 and ratelimit.bucket_key(dm, _call("ANA@vendor.com")) == ana
    dm._users["ana@vendor.com"] = None  # Slack knows no such user: the message goes to the channel
    assert ratelimit.bucket_key(dm, _call("ana@vendor.com")) == ratelimit.bucket_key(emea, _call())
    meta = [MetaConnector(n, {"access_token": "t", "ad_account_id": a})
            for n, a in (("m1", "123"), ("m2", "act_123"), ("m3", "456"))]
    assert ratelimit.bucket_key(meta[0], _call()) == ratelimit.bucket_key(meta[1], _call()) == "abm:bucket:meta:act_123"
    assert ratelimit.bucket_key(meta[2], _call()) == "abm:bucket:meta:act_456"


@pytest.fixture
def slack_api(app):
    fake = slack_api_app("xoxb-good", channels=("C0EMEA", "C0AMER"))
    arrivals: list[tuple[str, float]] = []
    fake.before_request(lambda: arrivals.append(((request.get_json(silent=True) or {}).get("channel"),
                                                 time.monotonic())) if request.path.endswith("chat.postMessage")
                        else None)
    with serve(fake) as server:
        for name, channel in (("slack-emea", "C0EMEA"), ("slack-amer", "C0AMER")):
            connectors.create({"type": "slack", "name": name, "default": ["alert"] if name == "slack-emea" else [],
                               "settings": {"bot_token": "xoxb-good", "channel": channel,
                                            "api_url": server.base_url + "/api", "timeout": 5}})
        yield arrivals


def test_two_slack_channels_do_not_slow_each_other_while_one_is_paced(app, clock, make_user, slack_api):
    get_redis().delete(*(get_redis().keys("abm:bucket:*") or ["-"]))
    owner = make_user("ae", email="ae@vendor.com")
    accounts = [make_account(f"Acme {i}", owner=owner) for i in range(5)]
    alerts.on_scores_changed({a.id: (0.0, 80.0) for a in accounts}, clock())
    ids = list(db.session.execute(select(Touch.id).where(Touch.kind == "alert").order_by(Touch.id)).scalars())
    assert len(ids) == 5

    started = time.monotonic()
    assert jobs.send_touches(ids[:3], "slack-emea")["sent"] == 3  # EMEA at Slack's pace: one a second
    amer_start = time.monotonic()
    assert jobs.send_touches(ids[3:4], "slack-amer")["sent"] == 1  # AMER: its own bucket is full
    amer_took = time.monotonic() - amer_start
    emea_start = time.monotonic()
    assert jobs.send_touches(ids[4:], "slack-emea")["sent"] == 1  # EMEA: still paced
    emea_took = time.monotonic() - emea_start

    emea = [t - started for c, t in slack_api if c == "C0EMEA"]
    amer = [t - started for c, t in slack_api if c == "C0AMER"]
    assert len(emea) == 4 and len(amer) == 1
    gaps = [b - a for a, b in zip(emea, emea[1:], strict=False)]
    assert min(gaps) >= 0.8, gaps  # one a second on EMEA, throughout
    assert amer_took < 0.6, amer_took  # AMER did not wait for EMEA's bucket (a shared one: ~1 s)
    assert emea_took >= 0.5, emea_took  # ...which was still empty
    assert emea[2] < amer[0] < emea[3]
