"""The ``smtp`` connector: email over real SMTP (``smtplib``).

One connection per job, kept open between calls: connect (implicit TLS with ``security:
tls``), EHLO, STARTTLS and EHLO again with ``security: starttls``, AUTH when a username
is set, then one ``MAIL FROM``/``RCPT TO``/``DATA`` per touch (one touch a call), then
QUIT when the workers :meth:`~SmtpConnector.close` it. Messages are built
by :mod:`connectors.email_message` (headers, text and HTML parts, unsubscribe
headers, tracking pixel and rewritten links; see its docstring) and written to bytes by
:mod:`connectors.email_wire` (the ``email`` package's bytes, without its cost).

How failures map onto the contract:

- cannot connect, timeout, the server hanging up, a 4xx reply to the connection, to
  STARTTLS or to AUTH, or to ``MAIL FROM``: :class:`RetryableError` for the batch;
- TLS certificate not trusted, STARTTLS or AUTH not offered, the username or password
  refused (535), a 5xx reply to ``MAIL FROM``: :class:`PermanentError` with a message
  that says which setting to fix;
- a recipient refused (``SMTPRecipientsRefused``) or the message refused after
  ``DATA``: a failure of that touch only, retryable for 4xx codes, permanent for 5xx;
- a touch that cannot become an email (no unsubscribe URL, bad address): a permanent
  failure of that touch only.

A batch-wide error after some messages went out does not raise (that would send
them twice): the rest of the batch is returned as failures
(:func:`connectors.base.finish_after_error`).

``ca_certificate`` (PEM) adds a certificate authority to trust, for servers with a
private CA; the system's authorities are always trusted.

On the wire: a message with 8-bit text parts (UTF-8 bodies) is sent with ``MAIL FROM ...
BODY=8BITMIME`` when the server offers 8BITMIME (RFC 6152); otherwise those parts are
re-encoded quoted-printable first, so the message is 7-bit clean. With ``dkim_private_key``
(PEM, RSA or Ed25519, stored encrypted) and ``dkim_selector``, every message is DKIM-signed
(RFC 6376, relaxed/relaxed, SHA-256, by dkimpy) for ``dkim_domain`` (default: the domain of
``from_email``) over its From, To, Subject, Date, Message-ID, List-* and MIME headers; the
public key goes in DNS at ``<selector>._domainkey.<domain>``.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from typing import Any, ClassVar

import dkim

from connectors.base import (
    Connector,
    ConnectorError,
    PermanentError,
    RetryableError,
    Touch,
    TouchResult,
    finish_after_error,
)
from connectors.email_message import MessageError
from connectors.email_wire import Wire, seven_bit_bytes, wire_for_touch

#: Headers a DKIM signature covers (those present in the message).
DKIM_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-unsubscribe",
                b"list-unsubscribe-post", b"list-id", b"mime-version", b"content-type"]


def _reply_text(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"


class SmtpConnector(Connector):
    type = "smtp"
    channels = ("email", "alert")
    #: One message a call: the workers record each message as the server accepts it, so a
    #: crash repeats at most the one in flight. The connection stays open between calls
    #: (until :meth:`close`, at the end of the job).
    max_batch = 1
    #: Messages a second; SMTP has no standard pace: set your relay's (``rate_limit``).
    rate_limit = (1000, 1)
    _smtp: smtplib.SMTP | None = None
    settings_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "SMTP server",
        "properties": {
            "host": {"type": "string", "minLength": 1},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 587},
            "security": {"enum": ["starttls", "tls", "none"], "default": "starttls",
                         "description": "starttls (port 587), tls (implicit TLS, port 465) or none."},
            "username": {"type": "string"},
            "password": {"type": "string", "writeOnly": True},
            "from_email": {"type": "string", "format": "email"},
            "from_name": {"type": "string"},
            "reply_to": {"type": "string", "format": "email"},
            "unsubscribe_mailbox": {"type": "string", "format": "email",
                                    "description": "Adds a mailto: form to List-Unsubscribe."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30},
            "tracking": {"type": "boolean", "default": True,
                         "description": "Add the open pixel and rewrite links when the engine asks."},
            "ca_certificate": {"type": "string",
                               "description": "PEM of an extra certificate authority to trust."},
            "dkim_private_key": {"type": "string", "writeOnly": True, "pattern": "-----BEGIN [A-Z ]*PRIVATE KEY-----",
                                 "description": "PEM private key (RSA or Ed25519) to DKIM-sign every message with."},
            "dkim_selector": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$",
                              "description": "The DKIM selector: the key is published at "
                                             "<selector>._domainkey.<domain>."},
            "dkim_domain": {"type": "string", "pattern": "^[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$",
                            "description": "The signing domain (d=); the domain of from_email by default."},
        },
        "required": ["host", "from_email"],
        "dependentRequired": {"dkim_private_key": ["dkim_selector"], "dkim_selector": ["dkim_private_key"]},
        "additionalProperties": False,
    }

    @property
    def where(self) -> str:
        return f"{self.settings.get('host')}:{self.port}"

    @property
    def port(self) -> int:
        default = 465 if self.settings.get("security") == "tls" else 587
        return int(self.settings.get("port") or default)

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.settings.get("ca_certificate"):
            try:
                context.load_verify_locations(cadata=self.settings["ca_certificate"])
            except ssl.SSLError:
                raise PermanentError(
                    f"SMTP {self.name!r}: ca_certificate is not a valid PEM certificate"
                ) from None
        return context

    # -- connection ----------------------------------------------------------------
    def _open(self) -> smtplib.SMTP:
        """Connect, EHLO, STARTTLS and AUTH as configured; raise the contract's errors."""
        host = self.settings["host"]
        timeout = float(self.settings.get("timeout", 30))
        security = self.settings.get("security", "starttls")
        smtp: smtplib.SMTP | None = None
        try:
            if security == "tls":
                smtp = smtplib.SMTP_SSL(host, self.port, timeout=timeout, context=self._tls_context())
            else:
                smtp = smtplib.SMTP(host, self.port, timeout=timeout)
            smtp.ehlo()
            if security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise PermanentError(
                        f"SMTP server {self.where} does not offer STARTTLS; set security to 'tls' or 'none'"
                    )
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if self.settings.get("username"):
                if not smtp.has_extn("auth"):
                    raise PermanentError(
                        f"SMTP server {self.where} does not offer AUTH"
                        + (" before STARTTLS; set security to 'starttls'" if security == "none" else "")
                    )
                smtp.login(self.settings["username"], self.settings.get("password") or "")
            return smtp
        except Exception as exc:
            if smtp is not None:
                _close(smtp)
            raise self._connection_error(exc) from None

    def _connection_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ConnectorError):
            return exc
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            if 400 <= exc.smtp_code < 500:
                return RetryableError(f"SMTP server {self.where} could not check the login now "
                                      f"({_reply_text(exc.smtp_code, exc.smtp_error)}); retry later")
            return PermanentError(
                f"SMTP server {self.where} refused the username or password "
                f"({_reply_text(exc.smtp_code, exc.smtp_error)}); check username and password"
            )
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentError(
                f"SMTP server {self.where}: its TLS certificate is not trusted ({exc.verify_message}); "
                "check host, or set ca_certificate for a private CA"
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return PermanentError(f"SMTP server {self.where} does not support {exc}; check security")
        if isinstance(exc, smtplib.SMTPResponseException):
            reply = _reply_text(exc.smtp_code, exc.smtp_error)
            if 400 <= exc.smtp_code < 500:
                return RetryableError(f"SMTP server {self.where} is busy ({reply}); retry later")
            return PermanentError(f"SMTP server {self.where} refused the session ({reply})")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return RetryableError(f"SMTP server {self.where} closed the connection; retry later")
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return RetryableError(f"SMTP server {self.where} timed out; retry later")
        if isinstance(exc, ssl.SSLError):
            return PermanentError(f"SMTP server {self.where}: TLS failed ({exc.reason}); check security and port")
        if isinstance(exc, socket.gaierror):
            return PermanentError(f"SMTP host {self.settings.get('host')!r} is not known; check host")
        if isinstance(exc, OSError):
            return RetryableError(f"could not connect to SMTP server {self.where} ({exc.strerror or exc}); retry later")
        return exc

    # -- sending -------------------------------------------------------------------
    def _message_settings(self) -> dict[str, Any]:
        return {
            "from_email": self.settings["from_email"],
            "from_name": self.settings.get("from_name"),
            "reply_to": self.settings.get("reply_to"),
            "unsubscribe_mailbox": self.settings.get("unsubscribe_mailbox"),
            "track": self.settings.get("tracking", True),
        }

    def send(self, batch: list[Touch]) -> list[TouchResult]:
        settings = self._message_settings()
        built: list[tuple[Touch, Wire]] = []
        results: dict[int, TouchResult] = {}
        for touch in batch:
            try:
                built.append((touch, wire_for_touch(touch, **settings)))
            except MessageError as exc:
                results[touch.id] = TouchResult.failure(touch, str(exc))
        if built:
            self._deliver(built, results)
        return [results[t.id] for t in batch]

    def _deliver(self, built: list[tuple[Touch, Wire]], results: dict[int, TouchResult]) -> None:
        if self._smtp is None:
            self._smtp = self._open()
        done: list[TouchResult] = []
        for index, (touch, message) in enumerate(built):
            try:
                result = self._send_one(self._smtp, touch, message)
            except ConnectorError as exc:
                self.close()  # the session may be broken: the next call connects again
                rest = [t for t, _ in built[index:]]
                for r in finish_after_error(done, rest, exc)[len(done):]:
                    results[r.touch_id] = r
                return
            done.append(result)
            results[touch.id] = result

    def close(self) -> None:
        """QUIT the connection kept open between calls."""
        if self._smtp is not None:
            _close(self._smtp)
            self._smtp = None

    def _wire(self, smtp: smtplib.SMTP, message: Wire) -> tuple[bytes, list[str]]:
        """The bytes to send and the MAIL FROM options: 8BITMIME when needed and offered,
        else 7-bit; DKIM-signed when a key is set."""
        options: list[str] = []
        data = message.data
        if message.eight_bit:
            if smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            else:
                data = seven_bit_bytes(message)
        if self.settings.get("dkim_private_key"):
            data = self._dkim_sign(data)
        return data, options

    def _dkim_sign(self, data: bytes) -> bytes:
        domain = self.settings.get("dkim_domain") or str(self.settings["from_email"]).rpartition("@")[2]
        try:
            signature = dkim.sign(data, str(self.settings["dkim_selector"]).encode(), domain.encode(),
                                  str(self.settings["dkim_private_key"]).encode(), include_headers=DKIM_HEADERS)
        except dkim.DKIMException as exc:
            raise PermanentError(f"SMTP {self.name!r}: cannot DKIM-sign with dkim_private_key ({exc}); "
                                 "paste a PEM RSA or Ed25519 private key") from None
        return signature + data

    def _send_one(self, smtp: smtplib.SMTP, touch: Touch, message: Wire) -> TouchResult:
        recipient = message.recipient
        try:
            data, options = self._wire(smtp, message)
            smtp.sendmail(self.settings["from_email"], [recipient], data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients.get(recipient, (550, b"refused"))
            return TouchResult.failure(
                touch, f"the SMTP server refused {recipient} ({_reply_text(code, reply)})", permanent=code >= 500
            )
        except smtplib.SMTPSenderRefused as exc:
            reply = _reply_text(exc.smtp_code, exc.smtp_error)
            if exc.smtp_code < 500:
                raise RetryableError(f"SMTP server {self.where} deferred the sender ({reply}); retry later") from None
            raise PermanentError(
                f"SMTP server {self.where} refused the sender {self.settings['from_email']} ({reply}); check from_email"
            ) from None
        except smtplib.SMTPDataError as exc:
            return TouchResult.failure(
                touch, f"the SMTP server refused the message to {recipient} "
                f"({_reply_text(exc.smtp_code, exc.smtp_error)})", permanent=exc.smtp_code >= 500
            )
        except (smtplib.SMTPException, OSError) as exc:
            raise self._connection_error(exc) from None
        return TouchResult.success(touch, provider_id=message.message_id)

    def test(self) -> str:
        smtp = self._open()
        features = sorted(smtp.esmtp_features)
        _close(smtp)
        security = self.settings.get("security", "starttls")
        auth = "logged in" if self.settings.get("username") else "no login"
        return f"connected to {self.where} ({security}, {auth}; server offers {', '.join(features) or 'nothing'})"


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
