"""Connector targets: no loopback, private, link-local or metadata addresses (when saved
and when called), no stored secret sent to a new host, no remote body echoed back."""

from __future__ import annotations

import socket

import pytest

from connectors.http import HttpClient, UnsafeTarget, check_url, excerpt, unsafe_reason
from connectors.slack import SlackConnector
from tests.connectors.fakes.generic import generic_app
from tests.connectors.harness import serve

SECRET = "whsec-0123456789-abcdef-SECRET"


@pytest.fixture
def guarded(monkeypatch):
    """As in production: private URLs not allowed."""
    monkeypatch.delenv("ABM_ALLOW_PRIVATE_URLS", raising=False)


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.8", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"), ("0.0.0.0", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("100.100.100.200", "not a public"),
    ("224.0.0.1", "multicast"),
])
def test_non_public_addresses_are_named(address, reason):
    assert reason in unsafe_reason(address)


def test_public_addresses_pass():
    assert unsafe_reason("93.184.216.34") is None and unsafe_reason("2606:4700::6810:85e5") is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/", "http://[::1]:9/",
                                 "http://169.254.169.254/latest/meta-data/", "https://10.1.2.3/api"])
def test_check_url_refuses_internal_hosts(guarded, url):
    with pytest.raises(UnsafeTarget, match="connectors may call public addresses only"):
        check_url(url)


def test_check_url_allows_everything_when_the_environment_says_so(monkeypatch):
    monkeypatch.setenv("ABM_ALLOW_PRIVATE_URLS", "1")
    check_url("http://127.0.0.1:8080/hook")


def test_the_address_actually_reached_is_checked_at_request_time(guarded, monkeypatch):
    """A name that looked public when saved but resolves to loopback when called (DNS
    rebinding) reaches nothing: the connection is refused before a byte is sent."""
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        return real("127.0.0.1" if host == "rebind.example" else host, *args, **kwargs)

    with serve(generic_app(body='{"internal": "secret"}')) as server:
        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        port = server.base_url.rsplit(":", 1)[1]
        client = HttpClient("Test", f"http://rebind.example:{port}")
        with pytest.raises(UnsafeTarget, match="rebind.example is a loopback address"):
            client.get("/latest/meta-data")
        assert server.requests == []


def test_an_error_carries_a_short_cleaned_excerpt_of_the_remote_answer():
    internal = "root:x:0:0\n" + "\x1b[31m" + "internal-admin-page " * 200
    with serve(generic_app(status=400, body=internal, content_type="text/plain")) as server:
        conn = SlackConnector("sales", {"webhook_url": "https://hooks.slack.com/services/T0/B0/X",
                                        "base_url": server.base_url, "timeout": 2})
        with pytest.raises(Exception) as caught:
            conn.test()
    message = str(caught.value)
    assert len(message) < 200 and "\n" not in message and "\x1b" not in message
    assert excerpt("a\n\tb\x00c" + "d" * 500, 20) == "a b c" + "d" * 14 + "…"


# -- at save time, through the API ---------------------------------------------------

def _webhook(url: str, **settings):
    return {"type": "webhook", "name": "crm-hook", "settings": {"url": url, "secret": SECRET, **settings}}


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000/hook", "http://169.254.169.254/latest/meta-data/"])
def test_a_connector_pointing_at_an_internal_address_is_refused(api, guarded, url):
    answer = api("admin").post("/api/v1/connectors", json=_webhook(url))
    assert answer.status_code == 422
    [detail] = answer.get_json()["error"]["details"]
    assert detail["path"] == "settings.url" and "public addresses only" in detail["message"]


def test_a_new_host_needs_the_secret_again(api):
    admin = api("admin")
    assert admin.post("/api/v1/connectors", json=_webhook("https://hooks.example.com/abm")).status_code == 201
    same_host = admin.patch("/api/v1/connectors/crm-hook", json={"settings": {"url": "https://hooks.example.com/v2"}})
    assert same_host.status_code == 200
    moved = admin.patch("/api/v1/connectors/crm-hook", json={"settings": {"url": "https://attacker.example/x"}})
    assert moved.status_code == 422
    assert moved.get_json()["error"]["details"] == [{
        "path": "settings.secret",
        "message": "enter it again: the connector now calls https://attacker.example, and a stored secret is "
                   "never sent to a new host"}]
    shown = admin.get("/api/v1/connectors/crm-hook").get_json()
    assert shown["settings"]["url"] == "https://hooks.example.com/v2"
    masked = admin.patch("/api/v1/connectors/crm-hook", json={"settings": {**shown["settings"],
                                                                            "url": "https://attacker.example/x"}})
    assert masked.status_code == 422  # the mask posted back is not the secret typed again
    typed = admin.patch("/api/v1/connectors/crm-hook",
                        json={"settings": {"url": "https://attacker.example/x", "secret": "a-new-secret-1234"}})
    assert typed.status_code == 200
