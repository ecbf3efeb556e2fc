"""The SMTP connector writes an email's bytes itself (``connectors.email_wire``): they must
be the bytes the ``email`` package writes for the same message, whatever the headers and
bodies hold (non-ASCII names and subjects, long values, quoting, long and 8-bit body
lines, inline images), but for the random MIME boundary."""

from __future__ import annotations

import base64
import re
from email import message_from_bytes, policy

import pytest

from connectors import email_message
from connectors.base import Touch
from connectors.email_message import build_for_touch, wire_bytes
from connectors.email_wire import seven_bit_bytes, wire_for_touch

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()

BASE = {"subject": "Account 1: a note", "html": "<p>Hi Pat, a short note for <a href='https://vendor.example/x'>you</a>.</p>",
        "unsubscribe_url": "https://abm.example.com/u/abc.def",
        "tracking": {"open_url": "https://abm.example.com/t/o/x.gif",
                     "click_url_template": "https://abm.example.com/t/c/x?u={url}"}}

PAYLOADS = [
    {},
    {"html": "", "text": "héllo\nwörld"},
    {"html": "<p>" + "plain words " * 40 + "</p>"},
    {"html": "<p>" + "é" * 300 + "</p>"},
    {"html": "<p>" + "é" * 30 + "</p>"},
    {"text": "", "html": "<p></p>"},
    {"subject": "Ünïcode subject"},
    {"subject": "a  double  space"},
    {"subject": "x" * 120},
    {"subject": "=?utf-8?q?x?= looks encoded"},
    {"subject": 'Re: (hello) "quoted" <not> @ all, ok; yes'},
    {"from": "Jane Q. Public <jane@vendor.example>"},
    {"from": {"email": "jane@vendor.example", "name": 'Jane, "JQ" Public'}},
    {"from": "Jäne <jane@vendor.example>"},
    {"headers": {"X-Campaign": "spring 2026", "Cc": "a@b.example", "Sender": "x <y@z.example>", "Keywords": "a, b"}},
    {"unsubscribe_url": "https://abm.example.com/u/" + "t" * 120},
    {"text": "line\r\nwith cr\rand lf\n\n", "html": ""},
    {"text": ("long ascii line " * 20 + "\n") * 15, "html": ""},
    {"text": "From me\n.a dot line\n", "html": ""},
    {"text": "\u2028 separator \x0c form feed", "html": ""},
    {"text": ("ünïcode " * 30 + "\n") * 3, "html": ""},
    {"html": '<p><img src="cid:logo"></p>', "inline_images": [
        {"cid": "logo", "content_type": "image/png", "filename": "logo.png", "data_base64": PIXEL}]},
]

CONTACTS = [
    {"email": "dm@account1.example", "first_name": "Pat"},
    {"email": "dm@account1.example", "first_name": "Pät", "last_name": "O'Neil"},
    {"email": "dm@x.example", "first_name": "Pat (CEO)"},
    {"email": "a.very.long.address.of.someone@a-long-subdomain.account-with-a-long-name.example"},
]

SETTINGS = [
    {"from_email": "bench@vendor.example"},
    {"from_email": "bench@vendor.example", "from_name": "ABM Team", "reply_to": "r@vendor.example",
     "unsubscribe_mailbox": "u@vendor.example", "track": False},
]


@pytest.fixture(autouse=True)
def one_clock(monkeypatch):
    """Both builds of a message read the same Date: built one after the other, they could
    fall on either side of a second (a flaky comparison seen in CI)."""
    monkeypatch.setattr(email_message, "formatdate", lambda **kwargs: "Sat, 05 Dec 2026 08:02:28 +0000")


def _same_boundaries(data: bytes) -> bytes:
    return re.sub(rb"={15}\d+==(\.\d+)?", b"BOUNDARY", data)


def _email(index: int, payload: dict, contact: dict) -> Touch:
    return Touch(id=index, kind="email", channel="email", account={"name": "Acme"}, contact=contact,
                 payload=dict(BASE, **payload), key=f"{index}:hello:1",
                 playbook={"key": "tier-1", "name": 'Tier "1"'})


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_email_bytes_are_the_email_packages(index):
    for contact in CONTACTS:
        for settings in SETTINGS:
            touch = _email(index, PAYLOADS[index], contact)
            wire = wire_for_touch(touch, **settings)
            assert _same_boundaries(wire.data) == _same_boundaries(wire_bytes(build_for_touch(touch, **settings)))
            parsed = message_from_bytes(wire.data, policy=policy.default)
            assert wire.recipient == parsed["To"].addresses[0].addr_spec == contact["email"]
            assert wire.message_id == str(parsed["Message-ID"])


@pytest.mark.parametrize("message", ["Hi\nthere", "Ünïcode alert " * 20, "x" * 200])
def test_alert_bytes_are_the_email_packages(message):
    touch = Touch(id=2, kind="alert", channel="alert", account={"name": "Acme Ünï"}, contact=None,
                  payload={"message": message, "to": "Ann <ae@x.example>"}, key="alert:5", playbook={})
    wire = wire_for_touch(touch, from_email="n@vendor.example")
    assert wire.data == wire_bytes(build_for_touch(touch, from_email="n@vendor.example"))
    assert wire.recipient == "ae@x.example"


def test_eight_bit_bodies_are_flagged_and_can_go_seven_bit():
    touch = _email(1, {"html": "", "text": "héllo"}, CONTACTS[0])
    wire = wire_for_touch(touch, from_email="n@vendor.example")
    assert wire.eight_bit and "héllo".encode() in wire.data
    seven = seven_bit_bytes(wire)
    assert seven.isascii() and b"Content-Transfer-Encoding: quoted-printable" in seven
    assert message_from_bytes(seven, policy=policy.default).get_content().rstrip() == "héllo"
    assert not wire_for_touch(_email(2, {}, CONTACTS[0]), from_email="n@vendor.example").eight_bit
