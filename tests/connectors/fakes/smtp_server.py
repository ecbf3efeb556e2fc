"""A real local SMTP server (aiosmtpd) with STARTTLS or implicit TLS, AUTH and refusals.

``smtp_server(...)`` runs one on a free loopback port for a ``with`` block and yields
a :class:`FakeSmtp` whose ``messages`` are the parsed emails it accepted, with the
envelope each came in.
"""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Certificate:
    cert_pem: str
    key_pem: str

    def server_context(self, tmp_path) -> ssl.SSLContext:
        cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
        cert_file.write_text(self.cert_pem)
        key_file.write_text(self.key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context


def self_signed_certificate() -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "abm test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode(),
    )


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage
    raw: bytes
    mail_options: list[str] = field(default_factory=list)


@dataclass
class FakeSmtp:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    #: address -> SMTP reply to RCPT TO (e.g. "550 5.1.1 no such user")
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    #: substring of the raw message -> reply to DATA
    refuse_data: dict[str, str] = field(default_factory=dict)
    #: reply to MAIL FROM, when set (once ``refuse_mail_after`` messages were accepted)
    refuse_mail: str | None = None
    refuse_mail_after: int = 0
    #: False: the server's EHLO leaves out 8BITMIME (an old relay), and 8-bit data is refused
    offer_8bitmime: bool = True


class _Handler:
    def __init__(self, fake: FakeSmtp):
        self.fake = fake

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not self.fake.offer_8bitmime:
            responses = [r for r in responses if "8BITMIME" not in r.upper()]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not self.fake.offer_8bitmime and any(o.upper().startswith("BODY=8BITMIME") for o in mail_options):
            return "555 5.5.4 BODY=8BITMIME not offered"
        envelope.mail_options.extend(mail_options)
        if self.fake.refuse_mail and len(self.fake.messages) >= self.fake.refuse_mail_after:
            return self.fake.refuse_mail
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.fake.refuse_rcpt:
            return self.fake.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if not self.fake.offer_8bitmime and any(byte > 127 for byte in raw):
            return "554 5.6.1 8-bit data without BODY=8BITMIME"
        for needle, reply in self.fake.refuse_data.items():
            if needle.encode() in raw:
                return reply
        self.fake.messages.append(Received(
            envelope.mail_from, list(envelope.rcpt_tos),
            email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=policy.default), raw,
            list(envelope.mail_options)))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_server(*, tls_context: ssl.SSLContext | None = None, implicit_tls: bool = False,
                users: dict[str, str] | None = None, offer_8bitmime: bool = True) -> Iterator[FakeSmtp]:
    """Run a fake SMTP server. ``users`` turns AUTH on (and requires it)."""
    fake = FakeSmtp("127.0.0.1", free_port(), offer_8bitmime=offer_8bitmime)

    def authenticator(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if users and users.get(user) == password:
                fake.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    kwargs = {}
    if tls_context and not implicit_tls:
        kwargs.update(tls_context=tls_context, require_starttls=True)
    if users is not None:
        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=tls_context is not None)
    controller = Controller(_Handler(fake), hostname=fake.host, port=fake.port,
                            ssl_context=tls_context if implicit_tls else None,
                            server_hostname="mx.test", **kwargs)
    controller.start()
    try:
        yield fake
    finally:
        controller.stop()


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (for timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
