"""SMTP against a real local SMTP server: STARTTLS, implicit TLS, AUTH, refusals."""

from __future__ import annotations

import base64
import socket
from urllib.parse import quote

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.base import PermanentError, RetryableError
from connectors.email_message import add_tracking, build_email, html_to_text
from connectors.smtp import SmtpConnector
from tests.connectors.fakes.smtp_server import (
    free_port,
    self_signed_certificate,
    silent_server,
    smtp_server,
)
from tests.connectors.fakes.touches import alert_touch, email_touch

TRACKING = {"open_url": "https://abm.example/t/o/OPEN.gif",
            "click_url_template": "https://abm.example/t/c/CLICK?u={url}"}


@pytest.fixture(scope="module")
def cert():
    return self_signed_certificate()


@pytest.fixture
def tls_server(cert, tmp_path):
    with smtp_server(tls_context=cert.server_context(tmp_path), users={"mailer": "s3cret"}) as server:
        yield server


def settings(server, cert=None, **extra):
    base = {"host": server.host, "port": server.port, "security": "none", "from_email": "news@vendor.example",
            "from_name": "Vendor News", "timeout": 5}
    if cert is not None:
        base.update(security="starttls", ca_certificate=cert.cert_pem, username="mailer", password="s3cret")
    base.update(extra)
    return base


def test_starttls_auth_and_every_header_and_both_parts(tls_server, cert):
    conn = SmtpConnector("mail", settings(tls_server, cert, reply_to="sales@vendor.example",
                                          unsubscribe_mailbox="unsub@vendor.example"))
    touches = [email_touch("jane@acme.example", tracking=TRACKING), email_touch("joe@acme.example")]
    results = conn.send(touches)

    assert [r.ok for r in results] == [True, True]
    assert tls_server.logins == ["mailer"]
    assert [m.rcpt_tos for m in tls_server.messages] == [["jane@acme.example"], ["joe@acme.example"]]
    received = tls_server.messages[0]
    assert received.mail_from == "news@vendor.example"
    msg = received.message
    assert msg["Message-ID"] == results[0].provider_id and msg["Message-ID"].endswith("@vendor.example>")
    assert msg["Date"]
    assert msg["From"] == "Vendor News <news@vendor.example>"
    assert msg["To"] == "Jane Doe <jane@acme.example>"
    assert msg["Subject"] == "Hello from us"
    assert msg["Reply-To"] == "sales@vendor.example"
    assert msg["List-Unsubscribe"] == \
        "<https://abm.example/u/TOKEN>, <mailto:unsub@vendor.example?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]

    text = msg.get_body(("plain",)).get_content()
    assert "Hi Jane," in text and "our guide (https://vendor.example/guide?a=1&b=2)" in text
    html = msg.get_body(("html",)).get_content()
    original = quote("https://vendor.example/guide?a=1&b=2", safe="")
    assert f'href="https://abm.example/t/c/CLICK?u={original}"' in html
    assert 'href="https://abm.example/u/TOKEN"' in html, "the unsubscribe link is never rewritten"
    assert html.index('src="https://abm.example/t/o/OPEN.gif"') < html.index("</body>")

    untracked = tls_server.messages[1].message.get_body(("html",)).get_content()
    assert "abm.example/t/" not in untracked


def test_tracking_setting_off_ignores_the_tracking_urls(tls_server, cert):
    conn = SmtpConnector("mail", settings(tls_server, cert, tracking=False))
    conn.send([email_touch(tracking=TRACKING)])
    assert "abm.example/t/" not in tls_server.messages[0].message.get_body(("html",)).get_content()


def test_given_text_part_is_used_as_is(tls_server, cert):
    SmtpConnector("mail", settings(tls_server, cert)).send([email_touch(text="Plain words only.\n")])
    assert tls_server.messages[0].message.get_body(("plain",)).get_content() == "Plain words only.\n"


def test_refused_recipients_fail_alone_4xx_retryable_5xx_permanent(tls_server, cert):
    tls_server.refuse_rcpt = {"gone@acme.example": "550 5.1.1 no such user",
                              "full@acme.example": "452 4.2.2 mailbox full"}
    touches = [email_touch("gone@acme.example"), email_touch("ok@acme.example"), email_touch("full@acme.example")]
    results = SmtpConnector("mail", settings(tls_server, cert)).send(touches)

    assert [r.ok for r in results] == [False, True, False]
    assert results[0].permanent and "550 5.1.1 no such user" in results[0].error
    assert "gone@acme.example" in results[0].error
    assert not results[2].permanent and "452" in results[2].error
    assert [m.rcpt_tos for m in tls_server.messages] == [["ok@acme.example"]]


def test_message_refused_after_data_fails_that_touch(tls_server, cert):
    tls_server.refuse_data = {"SPAMMY": "554 5.7.1 looks like spam"}
    results = SmtpConnector("mail", settings(tls_server, cert)).send(
        [email_touch(subject="SPAMMY offer"), email_touch()])
    assert [r.ok for r in results] == [False, True]
    assert results[0].permanent and "554 5.7.1" in results[0].error


def test_sender_refused_before_anything_went_out_fails_the_batch(tls_server, cert):
    tls_server.refuse_mail = "553 5.7.1 sender not allowed"
    with pytest.raises(PermanentError, match="refused the sender news@vendor.example.*check from_email"):
        SmtpConnector("mail", settings(tls_server, cert)).send([email_touch(), email_touch()])


def test_sender_deferred_mid_batch_keeps_what_went_out(tls_server, cert):
    tls_server.refuse_mail, tls_server.refuse_mail_after = "451 4.3.0 try again later", 1
    results = SmtpConnector("mail", settings(tls_server, cert)).send([email_touch(), email_touch(), email_touch()])
    assert [(r.ok, r.permanent) for r in results] == [(True, True), (False, False), (False, False)]
    assert "451 4.3.0" in results[1].error
    assert len(tls_server.messages) == 1


def test_wrong_password_is_permanent_with_a_plain_message(tls_server, cert):
    conn = SmtpConnector("mail", settings(tls_server, cert, password="nope"))
    with pytest.raises(PermanentError) as err:
        conn.send([email_touch()])
    assert "refused the username or password" in str(err.value)
    assert "nope" not in str(err.value)
    assert tls_server.messages == []


def test_untrusted_certificate_is_permanent(tls_server, cert):
    conn = SmtpConnector("mail", settings(tls_server, cert, ca_certificate=None))
    conn.settings.pop("ca_certificate")
    with pytest.raises(PermanentError, match="certificate is not trusted"):
        conn.test()


def test_implicit_tls(cert, tmp_path):
    with smtp_server(tls_context=cert.server_context(tmp_path), implicit_tls=True) as server:
        conn = SmtpConnector("mail", settings(server, security="tls", ca_certificate=cert.cert_pem))
        assert "tls" in conn.test()
        [result] = conn.send([email_touch()])
    assert result.ok and len(server.messages) == 1


def test_plain_server_without_starttls_is_a_clear_permanent_error():
    with smtp_server() as server:
        conn = SmtpConnector("mail", settings(server, security="starttls"))
        with pytest.raises(PermanentError, match="does not offer STARTTLS"):
            conn.test()


def test_test_connects_and_logs_in(tls_server, cert):
    message = SmtpConnector("mail", settings(tls_server, cert)).test()
    assert "logged in" in message and tls_server.logins == ["mailer"]


def test_alert_touches_go_out_as_plain_text(tls_server, cert):
    [result] = SmtpConnector("mail", settings(tls_server, cert)).send([alert_touch("Acme is hot")])
    assert result.ok
    msg = tls_server.messages[0].message
    assert msg["To"] == "ae@seller.example" and msg.get_content().strip() == "Acme is hot"


def test_bad_touch_fails_alone_without_reaching_the_server(tls_server, cert):
    results = SmtpConnector("mail", settings(tls_server, cert)).send(
        [email_touch("not-an-address"), email_touch(unsubscribe_url=None), email_touch()])
    assert [r.ok for r in results] == [False, False, True]
    assert "not an email address" in results[0].error and "unsubscribe" in results[1].error
    assert len(tls_server.messages) == 1


def test_connection_refused_is_retryable():
    conn = SmtpConnector("mail", {"host": "127.0.0.1", "port": free_port(), "security": "none",
                                  "from_email": "a@b.example", "timeout": 2})
    with pytest.raises(RetryableError, match="could not connect"):
        conn.send([email_touch()])


def test_silent_server_times_out_as_retryable():
    with silent_server() as port:
        conn = SmtpConnector("mail", {"host": "127.0.0.1", "port": port, "security": "none",
                                      "from_email": "a@b.example", "timeout": 0.3})
        with pytest.raises(RetryableError, match="timed out|closed"):
            conn.test()


def test_unknown_host_is_permanent(monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    conn = SmtpConnector("mail", {"host": "smtp.nowhere.invalid", "port": 25, "security": "none",
                                  "from_email": "a@b.example"})
    with pytest.raises(PermanentError, match="not known"):
        conn.test()


# -- the message builder's edges ------------------------------------------------------------

def test_tracking_rewrites_every_http_link_but_not_mailto_or_unsubscribe():
    html = ("<p><A HREF='https://a.example/x?q=1&amp;r=2'>A</A> <a class=\"b\" href=\"http://b.example\">B</a> "
            '<a href="mailto:hi@vendor.example">mail</a> <a href="https://abm.example/u/T">unsub</a></p>')
    out = add_tracking(html, "https://t.example/o.gif", "https://t.example/c?u={url}",
                       keep=("https://abm.example/u/T",))
    assert "HREF='https://t.example/c?u=https%3A%2F%2Fa.example%2Fx%3Fq%3D1%26r%3D2'" in out
    assert 'href="https://t.example/c?u=http%3A%2F%2Fb.example"' in out
    assert 'href="mailto:hi@vendor.example"' in out and 'href="https://abm.example/u/T"' in out
    assert out.endswith('style="display:block;border:0;width:1px;height:1px" />')


def test_text_part_skips_styles_and_keeps_paragraphs_and_list_items():
    html = ("<html><head><style>p{color:red}</style><title>T</title></head><body><h1>News</h1>"
            "<p>First   line</p><ul><li>one</li><li>two</li></ul><script>x()</script>"
            '<p><a href="https://v.example">https://v.example</a></p></body></html>')
    assert html_to_text(html) == "News\n\nFirst line\n\n- one\n- two\n\nhttps://v.example\n"


def test_message_id_is_stable_per_touch_key():
    touch = email_touch()
    first = build_email(touch, from_email="n@vendor.example")
    again = build_email(touch, from_email="n@vendor.example")
    other = build_email(email_touch(), from_email="n@vendor.example")
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]


# -- on the wire: 8BITMIME, 7-bit, List-Id, One-Click, DKIM (references: aiosmtpd, dkimpy) ------

UTF8_HTML = "<p>Grüße aus Köln, Jürgen</p><p><a href=\"https://abm.example/u/TOKEN\">Abmelden</a></p>"


def test_8bit_bodies_go_with_body_8bitmime_when_the_server_offers_it():
    with smtp_server() as server:
        assert SmtpConnector("mail", settings(server)).send([email_touch(html=UTF8_HTML)])[0].ok
    received = server.messages[0]
    assert "BODY=8BITMIME" in [o.upper() for o in received.mail_options]
    assert "Grüße aus Köln".encode() in received.raw
    assert "Grüße aus Köln" in received.message.get_body(("plain",)).get_content()


def test_a_server_without_8bitmime_gets_a_7bit_message_that_reads_the_same():
    with smtp_server(offer_8bitmime=False) as server:
        results = SmtpConnector("mail", settings(server)).send([email_touch(html=UTF8_HTML, subject="Grüße")])
    assert results[0].ok, results[0].error
    received = server.messages[0]
    assert not any(o.upper().startswith("BODY=") for o in received.mail_options) and max(received.raw) < 128
    assert received.message["Subject"] == "Grüße"
    assert "Grüße aus Köln" in received.message.get_body(("plain",)).get_content()
    assert "Grüße aus Köln" in received.message.get_body(("html",)).get_content()


def test_list_id_always_and_one_click_only_beside_an_https_link():
    with smtp_server() as server:
        conn = SmtpConnector("mail", settings(server))
        conn.send([email_touch(), email_touch(unsubscribe_url="http://abm.example/u/TOKEN")])
    https, http = (m.message for m in server.messages)
    assert https["List-Id"] == '"Tier 1" <tier1.abm.vendor.example>'
    assert https["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert http["List-Unsubscribe"] == "<http://abm.example/u/TOKEN>" and http["List-Unsubscribe-Post"] is None


def _rsa_key() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def test_messages_are_dkim_signed_and_dkimpy_verifies_them():
    pem, record = _rsa_key()
    published = {b"abm2026._domainkey.vendor.example.": record}

    def dns(name, timeout=5):
        return published.get(name)

    with smtp_server() as server:
        conn = SmtpConnector("mail", settings(server, dkim_private_key=pem, dkim_selector="abm2026"))
        assert all(r.ok for r in conn.send([email_touch(html=UTF8_HTML), email_touch()]))
    for received in server.messages:
        assert received.raw.startswith(b"DKIM-Signature:")
        assert dkim.verify(received.raw, dnsfunc=dns)
        signature = received.message["DKIM-Signature"]
        assert "d=vendor.example" in signature and "s=abm2026" in signature
        for header in ("from", "subject", "list-unsubscribe", "list-id"):
            assert header in signature.split("h=")[1].split(";")[0].lower()
    tampered = server.messages[0].raw.replace(b"Hello from us", b"Hello from them")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_a_dkim_key_that_is_not_one_is_a_permanent_error_naming_the_setting():
    bad = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    with smtp_server() as server:
        with pytest.raises(PermanentError, match="dkim_private_key"):
            SmtpConnector("mail", settings(server, dkim_private_key=bad, dkim_selector="s")).send([email_touch()])
    assert server.messages == []
