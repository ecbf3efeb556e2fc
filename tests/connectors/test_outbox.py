"""The outbox writes each email as a complete .eml file, named by touch key."""

from __future__ import annotations

import email
from email import policy

import pytest

from connectors.base import ConnectorContext, PermanentError
from connectors.outbox import OutboxConnector, eml_name
from tests.connectors.fakes.touches import alert_touch, email_touch


def read_eml(path):
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def test_each_email_becomes_a_full_mime_file_named_by_touch_key(tmp_path):
    conn = OutboxConnector("demo", {"from_email": "news@vendor.example", "from_name": "Vendor"},
                           ConnectorContext(outbox_dir=str(tmp_path)))
    touches = [email_touch("a@acme.example"), email_touch("b@acme.example")]
    results = conn.send(touches)

    assert [r.ok for r in results] == [True, True]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(eml_name(t.key) for t in touches)
    msg = read_eml(tmp_path / eml_name(touches[1].key))
    assert msg["To"] == "Jane Doe <b@acme.example>"
    assert msg["From"] == "Vendor <news@vendor.example>"
    assert msg["List-Unsubscribe"] == "<https://abm.example/u/TOKEN>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Message-ID"] == results[1].provider_id
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    assert "our guide (https://vendor.example/guide?a=1&b=2)" in text


def test_sending_a_touch_twice_keeps_one_file(tmp_path):
    conn = OutboxConnector("demo", {"directory": str(tmp_path / "out")})
    touch = email_touch()
    conn.send([touch])
    conn.send([touch])
    assert [p.name for p in (tmp_path / "out").iterdir()] == [eml_name(touch.key)]


def test_alerts_are_written_as_plain_emails(tmp_path):
    conn = OutboxConnector("demo", {"directory": str(tmp_path)})
    touch = alert_touch("Acme is hot")
    [result] = conn.send([touch])
    assert result.ok
    msg = read_eml(tmp_path / eml_name(touch.key))
    assert msg["To"] == "ae@seller.example"
    assert "Acme Corp" in msg["Subject"]
    assert msg.get_content().strip() == "Acme is hot"


def test_an_email_without_unsubscribe_url_fails_alone(tmp_path):
    conn = OutboxConnector("demo", {"directory": str(tmp_path)})
    good, bad = email_touch(), email_touch(unsubscribe_url=None)
    results = conn.send([bad, good])
    assert not results[0].ok and results[0].permanent and "unsubscribe" in results[0].error
    assert results[1].ok
    assert [p.name for p in tmp_path.iterdir()] == [eml_name(good.key)]


def test_key_is_made_safe_for_a_file_name():
    assert eml_name("12:step-1:34") == "12_step-1_34.eml"
    assert "/" not in eml_name("../../etc/passwd")


def test_test_checks_the_directory_is_writable(tmp_path):
    assert str(tmp_path) in OutboxConnector("demo", {"directory": str(tmp_path)}).test()
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    with pytest.raises(PermanentError, match="not writable"):
        OutboxConnector("demo", {"directory": str(a_file / "sub")}).test()


def test_no_directory_at_all_is_a_clear_error():
    with pytest.raises(PermanentError, match="set 'directory'"):
        OutboxConnector("demo", {}).test()
