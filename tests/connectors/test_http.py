"""The shared HTTP helper maps every way a provider fails onto the contract's two errors."""

from __future__ import annotations

import json
import socket
import time
from email.utils import formatdate

import pytest

from connectors.base import USER_AGENT, PermanentError, RetryableError
from connectors.http import HttpClient, parse_reset, parse_retry_after
from tests.connectors.fakes.generic import generic_app
from tests.connectors.harness import serve


def client(server, **kw):
    return HttpClient("Acme", server.base_url + "/api", **kw)


def test_success_returns_the_response_and_sends_user_agent_and_headers():
    with serve(generic_app(200, '{"id": 5}')) as server:
        response = client(server, headers={"Authorization": "Bearer K"}).post("/things", json={"a": 1})
    assert response.json() == {"id": 5}
    [req] = server.requests
    assert req.path == "/api/things"
    assert req.headers["User-Agent"] == USER_AGENT
    assert req.headers["Authorization"] == "Bearer K"
    assert json.loads(req.body) == {"a": 1}


def test_expect_makes_other_2xx_an_error():
    with serve(generic_app(200)) as server, pytest.raises(PermanentError, match="HTTP 200"):
        client(server).post("/x", expect=(202,))


def test_400_is_permanent_with_the_providers_message():
    body = json.dumps({"errors": [{"field": "from.email", "message": "does not contain a valid address"}]})
    with serve(generic_app(400, body)) as server, pytest.raises(PermanentError) as err:
        client(server).post("/x")
    assert "from.email: does not contain a valid address" in str(err.value)
    assert "HTTP 400" in str(err.value)


@pytest.mark.parametrize("body, expected", [
    ('{"error": {"message": "Invalid OAuth access token", "code": 190}}', "Invalid OAuth access token (190)"),
    ('[{"message": "Session expired", "errorCode": "INVALID_SESSION_ID"}]', "Session expired (INVALID_SESSION_ID)"),
    ('{"message": "bad token", "status": "error"}', "bad token"),
    ("invalid_token", "invalid_token"),
])
def test_401_is_permanent_and_names_the_credentials(body, expected):
    with serve(generic_app(401, body)) as server, pytest.raises(PermanentError) as err:
        client(server).get("/x")
    assert expected in str(err.value)
    assert "credentials" in str(err.value)


def test_429_with_retry_after_seconds():
    with serve(generic_app(429, "slow down", {"Retry-After": "17"})) as server, pytest.raises(RetryableError) as err:
        client(server).get("/x")
    assert err.value.retry_after == 17
    assert "rate limited" in str(err.value)


def test_429_with_retry_after_http_date():
    when = formatdate(time.time() + 120, usegmt=True)
    with serve(generic_app(429, "", {"Retry-After": when})) as server, pytest.raises(RetryableError) as err:
        client(server).get("/x")
    assert 110 <= err.value.retry_after <= 121


def test_429_with_the_callers_epoch_reset_header():
    reset = str(int(time.time()) + 60)
    with serve(generic_app(429, "", {"X-RateLimit-Reset": reset})) as server, \
            pytest.raises(RetryableError) as err:
        client(server, reset_header="X-RateLimit-Reset").get("/x")
    assert 55 <= err.value.retry_after <= 61


def test_429_without_any_backoff_signal_is_retryable_without_a_delay():
    with serve(generic_app(429, "")) as server, pytest.raises(RetryableError) as err:
        client(server, reset_header="X-RateLimit-Reset").get("/x")
    assert err.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable_and_an_html_page_is_not_quoted(status):
    page = "<html><body><h1>Oops</h1>" + "x" * 5000 + "</body></html>"
    with serve(generic_app(status, page, content_type="text/html")) as server, \
            pytest.raises(RetryableError) as err:
        client(server).get("/x")
    assert f"HTTP {status}" in str(err.value)
    assert "<html>" not in str(err.value)


def test_read_timeout_is_retryable():
    with serve(generic_app(200, delay=1.0)) as server, pytest.raises(RetryableError, match="timed out"):
        client(server, timeout=(1, 0.2)).get("/x")


def test_connection_refused_is_retryable_and_hides_path_and_query():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    c = HttpClient("Slack", f"http://127.0.0.1:{port}/services/T0/B0/SECRETPART")
    with pytest.raises(RetryableError) as err:
        c.get("?access_token=TOPSECRET")
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "SECRETPART" not in str(err.value) and "TOPSECRET" not in str(err.value)


def test_secrets_are_redacted_from_provider_messages():
    with serve(generic_app(403, '{"message": "key SG.abc123 lacks scope"}')) as server, \
            pytest.raises(PermanentError) as err:
        client(server, secrets=["SG.abc123"]).get("/x")
    assert "SG.abc123" not in str(err.value) and "***" in str(err.value)


def test_classify_hook_runs_first():
    def meta_throttle(response):
        if response.status_code == 400 and response.json()["error"]["code"] in (4, 17, 613):
            return RetryableError("throttled", retry_after=60)
        return None

    body = '{"error": {"message": "User request limit reached", "code": 17}}'
    with serve(generic_app(400, body)) as server, pytest.raises(RetryableError) as err:
        client(server).get("/x", classify=meta_throttle)
    assert err.value.retry_after == 60


def test_absolute_urls_and_host_joins():
    c = HttpClient("SF", "https://acme.my.salesforce.com/services/data/v60.0")
    assert c.url("query") == "https://acme.my.salesforce.com/services/data/v60.0/query"
    assert c.url("/services/data/v60.0/query/01g-2000", join="host") == \
        "https://acme.my.salesforce.com/services/data/v60.0/query/01g-2000"
    assert c.url("https://other.example/x") == "https://other.example/x"


def test_parsers():
    assert parse_retry_after("3") == 3
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert parse_reset("1000000060", now=1000000000) == 60
    assert parse_reset("30") == 30
    assert parse_reset("soon") is None
