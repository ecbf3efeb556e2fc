"""An email's bytes on the wire, written directly: what the ``email`` package would write
for the same :class:`~connectors.email_message.Draft`, byte for byte, at a fraction of
its cost.

Why: building an ``EmailMessage`` and flattening it cost about 2.5 ms of CPU per email
(every header is parsed into a tree when set and folded from that tree when written, a
class is made per header, a regular expression compiled per boundary), several times
what sending it over an open SMTP connection costs. Most headers of a marketing email
are short printable ASCII, which both steps leave exactly as they are; so they are
written as they are, and only the others (non-ASCII, long, structured in a way that may
be rewritten) go through the package's own header classes and folding. Bodies are
encoded as ``email.contentmanager`` does (7bit, 8bit or quoted-printable by the same
rules, the same boundary format); a body the package would send as base64, and a draft
with inline images, are rendered by the package itself (:func:`to_message`).
``tests/connectors/test_email_wire.py`` compares both writers on many drafts.
"""

from __future__ import annotations

import random
import re
import sys
from dataclasses import dataclass
from email import headerregistry, policy, quoprimime
from email.headerregistry import Address
from email.utils import format_datetime, parsedate_to_datetime

from connectors.base import Touch
from connectors.email_message import Draft, draft_for_touch, has_8bit, seven_bit, to_message, wire_bytes

#: The policy ``wire_bytes`` writes with (the default policy, CRLF line ends).
WIRE_POLICY = policy.default.clone(linesep="\r\n")
MAX_LINE = WIRE_POLICY.max_line_length
#: Printable ASCII words separated by single spaces: a header value neither parsing nor
#: folding changes, once it fits on one line (and holds no encoded word, ``=?``).
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*\Z")
#: Header classes that keep a plain value as it is.
_VERBATIM = (headerregistry.UnstructuredHeader, headerregistry.UniqueUnstructuredHeader,
             headerregistry.MessageIDHeader)
_ADDRESSES = (headerregistry.AddressHeader, headerregistry.UniqueAddressHeader)
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))


@dataclass(frozen=True)
class Wire:
    """A message ready for ``sendmail``: its bytes, recipient, Message-ID, and whether it
    has 8-bit parts (then it needs 8BITMIME, or :func:`seven_bit_bytes`)."""

    data: bytes
    recipient: str
    message_id: str
    eight_bit: bool
    draft: Draft


def wire_for_touch(touch: Touch, **settings) -> Wire:
    """The wire form of an email or alert touch (``MessageError`` as the builders raise it)."""
    return wire_of(draft_for_touch(touch, **settings))


def wire_of(draft: Draft) -> Wire:
    parts = [] if draft.images else [_text_part(draft.text, "plain")]
    if draft.html and parts:
        parts.append(_text_part(draft.html, "html"))
    if not parts or None in parts:  # inline images, or a base64 body: the package writes it
        message = to_message(draft)
        return Wire(wire_bytes(message), draft.recipient, draft.message_id, has_8bit(message), draft)
    head = b"".join(_header(name, value) for name, value in draft.headers)
    if len(parts) == 1:
        cte, body = parts[0]
        data = head + _part_head("plain", cte) + b"MIME-Version: 1.0\r\n\r\n" + body
    else:
        data = head + b"MIME-Version: 1.0\r\n" + _alternative(parts)
    return Wire(data, draft.recipient, draft.message_id, any(cte == "8bit" for cte, _ in parts), draft)


def seven_bit_bytes(wire: Wire) -> bytes:
    """The message with its 8-bit parts quoted-printable, for a server without 8BITMIME."""
    return wire_bytes(seven_bit(to_message(wire.draft)))


def _header(name: str, value) -> bytes:
    kind = WIRE_POLICY.header_factory.registry.get(name.lower(), headerregistry.UnstructuredHeader)
    text = ""
    if name == "Date" and isinstance(value, str):
        text = format_datetime(parsedate_to_datetime(value))  # what DateHeader writes
    elif (isinstance(value, Address) and issubclass(kind, _ADDRESSES)) or (
            isinstance(value, str) and issubclass(kind, _VERBATIM)):
        text = str(value)
    if text and len(name) + 2 + len(text) <= MAX_LINE and "=?" not in text and _PLAIN.match(text):
        return f"{name}: {text}\r\n".encode("ascii")
    return WIRE_POLICY.header_factory(name, value).fold(policy=WIRE_POLICY).encode("ascii", "surrogateescape")


def _text_part(text: str, subtype: str) -> tuple[str, bytes] | None:
    """(Content-Transfer-Encoding, body on the wire) chosen as ``email.contentmanager``
    chooses them for a text part; None when it would choose base64."""
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) <= MAX_LINE:
        return ("7bit" if all(line.isascii() for line in lines) else "8bit"), b"\r\n".join(lines) + b"\r\n"
    sniff = b"\n".join(lines[:10]) + b"\n"
    sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), MAX_LINE)
    if len(sniff_qp) > (len(sniff) + 2) // 3 * 4 + 1:  # the length of binascii.b2a_base64(sniff)
        return None
    encoded = sniff_qp if len(lines) <= 10 else quoprimime.body_encode(
        (b"\n".join(lines) + b"\n").decode("latin-1"), MAX_LINE)
    return "quoted-printable", "".join(line + "\r\n" for line in encoded.split("\n")[:-1]).encode(
        "ascii") + encoded.rsplit("\n", 1)[-1].encode("ascii")


def _part_head(subtype: str, cte: str) -> bytes:
    return f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'.encode("ascii")


def _alternative(parts: list[tuple[str, bytes]]) -> bytes:
    """The multipart/alternative body (text, then HTML) and its Content-Type, as the
    package's generator writes them."""
    (text_cte, text), (html_cte, html) = parts
    texts = [_part_head("plain", text_cte) + b"\r\n" + text,
             _part_head("html", html_cte) + b"MIME-Version: 1.0\r\n\r\n" + html]
    boundary = _boundary(b"\r\n".join(texts))
    mark = f"--{boundary}".encode("ascii")
    return (f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii")
            + mark + b"\r\n" + texts[0] + b"\r\n" + mark + b"\r\n" + texts[1] + b"\r\n" + mark + b"--\r\n")


def _boundary(text: bytes) -> str:
    """A boundary in the generator's format that does not occur in ``text``."""
    while True:
        boundary = "=" * 15 + str(random.randrange(sys.maxsize)).zfill(_BOUNDARY_DIGITS) + "=="
        if boundary.encode("ascii") not in text:
            return boundary
