"""Slack incoming webhooks against a fake endpoint on a real local server."""

from __future__ import annotations

import json
import time

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block

from connectors.base import PermanentError, RetryableError
from connectors.slack import SlackConnector
from tests.connectors.fakes.generic import generic_app
from tests.connectors.fakes.slack import slack_api_app, slack_app
from tests.connectors.fakes.touches import alert_touch
from tests.connectors.harness import serve

WEBHOOK = "https://hooks.slack.com/services/T000/B000/GOODTOKEN"


@pytest.fixture
def fake():
    with serve(slack_app()) as server:
        yield server


def connector(server, webhook=WEBHOOK, **extra):
    conn = SlackConnector("sales", {"webhook_url": webhook, "base_url": server.base_url, "timeout": 2, **extra})
    conn.min_interval = 0.05
    return conn


def test_posts_text_and_blocks_to_the_webhook_path(fake):
    touch = alert_touch("*Acme Corp* is hot: 3 clicks today")
    [result] = connector(fake).send([touch])
    assert result.ok
    [req] = fake.requests
    assert req.path == "/services/T000/B000/GOODTOKEN"
    assert req.headers["User-Agent"].startswith("abm-orchestrator/")
    body = json.loads(req.body)
    assert body["text"] == "*Acme Corp* is hot: 3 clicks today"
    assert body["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}
    context = body["blocks"][1]["elements"][0]["text"]
    assert "*Acme Corp*" in context and "acme.example" in context and "ae@seller.example" in context


def test_a_batch_is_paced(fake):
    conn = connector(fake)
    conn.min_interval = 0.3
    started = time.monotonic()
    results = conn.send([alert_touch("one"), alert_touch("two"), alert_touch("three")])
    assert all(r.ok for r in results)
    assert time.monotonic() - started >= 0.6
    assert [p["text"] for p in fake.app.config["POSTED"]] == ["one", "two", "three"]


def test_a_long_message_still_fits_slacks_section_limit(fake):
    [result] = connector(fake).send([alert_touch("x" * 5000)])
    assert result.ok
    assert len(fake.app.config["POSTED"][0]["blocks"][0]["text"]["text"]) == 3000


def test_invalid_payload_fails_that_alert_only():
    def refuse_second():
        app = generic_app(200, "ok", content_type="text/plain")
        app.config["SCRIPT"] = [(200, "ok", {}), (400, "invalid_payload", {}), (200, "ok", {})]
        return app

    with serve(refuse_second()) as server:
        results = connector(server).send([alert_touch("a"), alert_touch("b"), alert_touch("c")])
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].permanent and "invalid_payload" in results[1].error


def test_an_alert_without_message_fails_alone(fake):
    results = connector(fake).send([alert_touch("  "), alert_touch("real")])
    assert [r.ok for r in results] == [False, True]
    assert len(fake.app.config["POSTED"]) == 1


@pytest.mark.parametrize("state, code", [("missing", "channel_not_found"), ("archived", "channel_is_archived"),
                                         ("prohibited", "action_prohibited")])
def test_channel_errors_are_permanent(fake, state, code):
    fake.app.config["CHANNEL"] = state
    with pytest.raises(PermanentError, match=code):
        connector(fake).send([alert_touch()])


def test_revoked_url_is_permanent_and_the_url_never_shows(fake):
    bad = "https://hooks.slack.com/services/T000/B000/REVOKEDTOKEN"
    with pytest.raises(PermanentError) as err:
        connector(fake, webhook=bad).send([alert_touch()])
    assert "invalid_token" in str(err.value) and "REVOKEDTOKEN" not in str(err.value)


def test_429_honours_retry_after(fake):
    fake.app.config["RATE_LIMITED"] = "30"
    with pytest.raises(RetryableError) as err:
        connector(fake).send([alert_touch()])
    assert err.value.retry_after == 30


def test_429_without_retry_after(fake):
    fake.app.config["RATE_LIMITED"] = ""
    with pytest.raises(RetryableError) as err:
        connector(fake).send([alert_touch()])
    assert err.value.retry_after is None


def test_rate_limited_mid_batch_keeps_what_went_out():
    app = generic_app(200, "ok", content_type="text/plain")
    app.config["SCRIPT"] = [(200, "ok", {}), (429, "rate_limited", {"Retry-After": "1"})]
    with serve(app) as server:
        results = connector(server).send([alert_touch("a"), alert_touch("b"), alert_touch("c")])
    assert [r.ok for r in results] == [True, False, False]
    assert not results[1].permanent and not results[2].permanent


def test_5xx_and_timeouts_are_retryable():
    with serve(generic_app(500, "internal_error", content_type="text/plain")) as server, \
            pytest.raises(RetryableError, match="HTTP 500"):
        connector(server).send([alert_touch()])
    with serve(generic_app(200, "ok", delay=1.0, content_type="text/plain")) as server, \
            pytest.raises(RetryableError, match="timed out"):
        connector(server, timeout=0.2).send([alert_touch()])


def test_test_posts_a_test_message(fake):
    assert "posted" in connector(fake).test()
    assert "ABM connector test" in fake.app.config["POSTED"][0]["text"]


def test_default_base_url_uses_the_webhook_url_as_is():
    conn = SlackConnector("s", {"webhook_url": WEBHOOK})
    assert conn.target() == WEBHOOK
    assert SlackConnector("s", {"webhook_url": WEBHOOK, "base_url": "http://127.0.0.1:9"}).target() == \
        "http://127.0.0.1:9/services/T000/B000/GOODTOKEN"


# -- escaping (Slack's "Formatting text for app surfaces": escape &, < and >) --------------------

def test_an_alert_with_slack_control_characters_shows_them_instead_of_pinging(fake):
    touch = alert_touch(message="Q&A <!channel> read <https://evil.example|this> & > 3", to="ae@vendor.com")
    assert connector(fake).send([touch])[0].ok
    posted = fake.app.config["POSTED"][0]
    assert posted["text"] == "Q&amp;A &lt;!channel&gt; read &lt;https://evil.example|this&gt; &amp; &gt; 3"
    assert "<" not in posted["blocks"][0]["text"]["text"] and "<!channel>" not in json.dumps(posted)


# -- bot token: the owner mentioned, or sent a direct message (reference: slack_sdk) --------------

BOT = "xoxb-good"


@pytest.fixture
def slack_api():
    with serve(slack_api_app(token=BOT)) as server:
        yield server


def bot(server, **extra):
    conn = SlackConnector("sales", {"bot_token": BOT, "api_url": server.base_url + "/api", "timeout": 2,
                                    "channel": "C0ALERTS", **extra})
    conn.min_interval = 0.01
    return conn


def test_with_a_bot_token_the_owner_is_mentioned_in_the_channel(slack_api):
    results = bot(slack_api).send([alert_touch(message="Acme is hot", to="AE@vendor.com"),
                                   alert_touch(message="Beta too", to="nobody@vendor.com")])
    assert [r.ok for r in results] == [True, True]
    first, second = slack_api.app.config["POSTED"]
    assert first["channel"] == "C0ALERTS" and first["text"].startswith("<@U0AE> ")
    assert "for <@U0AE>" in first["blocks"][1]["elements"][0]["text"]
    assert "nobody@vendor.com" in second["blocks"][1]["elements"][0]["text"] and "<@" not in second["text"]
    for block in first["blocks"]:
        Block.parse(block).validate_json()  # Block Kit as the official SDK models it
    lookups = [r for r in slack_api.requests if r.path == "/api/users.lookupByEmail"]
    assert [r.body for r in lookups] == [b"email=ae%40vendor.com", b"email=nobody%40vendor.com"]
    assert all(r.headers["Authorization"] == f"Bearer {BOT}" for r in slack_api.requests)


def test_with_a_bot_token_the_owner_can_get_a_direct_message(slack_api):
    results = bot(slack_api, deliver_to="direct_message").send(
        [alert_touch(message="Acme is hot", to="ae@vendor.com"),
         alert_touch(message="Beta too", to="nobody@vendor.com")])
    assert [r.ok for r in results] == [True, True]
    direct, fallback = slack_api.app.config["POSTED"]
    assert direct["channel"] == "DU0AE" and not direct["text"].startswith("<@")
    assert fallback["channel"] == "C0ALERTS", "an owner Slack does not know: the channel"


def test_our_bot_requests_are_the_ones_slack_sdk_makes(slack_api):
    """The official client, pointed at the same fake, makes the same calls with the same fields."""
    bot(slack_api).send([alert_touch(message="Acme is hot", to="ae@vendor.com")])
    ours = [r for r in slack_api.requests]
    sdk = WebClient(token=BOT, base_url=slack_api.base_url + "/api/")
    user = sdk.users_lookupByEmail(email="ae@vendor.com")["user"]["id"]
    posted = slack_api.app.config["POSTED"][0]
    sdk.chat_postMessage(channel="C0ALERTS", text=posted["text"], blocks=posted["blocks"])
    theirs = slack_api.requests[len(ours):]
    assert [(r.method, r.path) for r in ours] == [(r.method, r.path) for r in theirs]
    assert user == "U0AE" and json.loads(ours[-1].body) == json.loads(theirs[-1].body)


def test_a_bad_bot_token_fails_the_batch_without_showing_it(slack_api):
    conn = bot(slack_api, bot_token="xoxb-wrong-secret")
    with pytest.raises(PermanentError) as caught:
        conn.send([alert_touch(message="hi", to="ae@vendor.com")])
    assert "invalid_auth" in str(caught.value) and "xoxb-wrong-secret" not in str(caught.value)
    with pytest.raises(PermanentError):
        conn.test()
    assert "abm-bot" in bot(slack_api).test()
