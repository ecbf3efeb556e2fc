"""Building the MIME messages that ``smtp`` sends and ``outbox`` writes as ``.eml`` files.

One builder, so that what the demo shows is byte for byte what SMTP would send.

An email touch's payload (see :class:`connectors.base.Touch`) gives ``subject``,
``html``, ``text`` (optional: derived from the HTML when missing), ``from``
(optional: ``"Name <addr>"`` or ``{"email", "name"}``; the connector's ``from_email``
otherwise), ``to`` (optional: the contact's email otherwise), ``unsubscribe_url``,
``headers`` (extra headers), ``inline_images`` (pictures the HTML shows by Content-ID,
each ``{"cid", "content_type", "filename", "data_base64"}``: the HTML part becomes
``multipart/related`` with them, and an image its HTML does not reference as
``cid:...`` is refused) and, when the engine wants engagement tracked,
``tracking``::

    "tracking": {"open_url": "https://abm.example/t/o/TOKEN.gif",
                 "click_url_template": "https://abm.example/t/c/TOKEN?u={url}"}

With tracking on (``track=True``, the connectors' ``tracking`` setting), the HTML part
gets a 1x1 pixel whose ``src`` is ``open_url`` (before ``</body>`` when there is one,
else at the end), and the ``href`` of every ``http(s)`` link becomes
``click_url_template.format(url=quote(original, safe=""))``. The unsubscribe link
itself is left as it is, so that unsubscribing never depends on the tracker. The
engine produces and signs both URLs; nothing here knows a secret. The text part keeps
the original links.

Headers of every message: ``Message-ID`` (derived from the touch key, so a resent
touch keeps its id), ``Date``, ``From``, ``To``, ``Subject``, ``Reply-To`` when set,
``List-Unsubscribe: <URL>`` (plus ``<mailto:MAILBOX?subject=unsubscribe>`` when a
mailbox is configured), ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
(RFC 8058), and ``X-ABM-Touch`` (the touch key). The body is multipart/alternative:
text/plain first, then text/html (inside a multipart/related with its inline images,
RFC 2387, when it has some).

An email without an unsubscribe URL is refused (:class:`MessageError`): the product
only sends marketing email that can be unsubscribed from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html as html_lib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from io import BytesIO
from typing import Any
from urllib.parse import quote

from connectors.base import Touch
from connectors.email_text import html_to_text, list_unsubscribe_headers, one_click_allowed

#: Headers the builder owns; a payload's ``headers`` cannot replace them.
PROTECTED_HEADERS = {"message-id", "date", "from", "to", "subject", "mime-version", "content-type",
                     "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post", "list-id",
                     "dkim-signature"}


class MessageError(ValueError):
    """This touch cannot become an email (no recipient, no unsubscribe URL, bad address)."""


# -- tracking ------------------------------------------------------------------------

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']*)\2""", re.IGNORECASE)


def tracked_links(html: str) -> list[str]:
    """The http(s) links of an email's HTML that :func:`add_tracking` rewrites, sorted, each once."""
    return sorted({html_lib.unescape(m.group(3)) for m in _HREF.finditer(html or "")})


def add_tracking(html: str, open_url: str | None, click_url_template: str | None,
                 keep: tuple[str, ...] = ()) -> str:
    """Rewrite http(s) links through ``click_url_template`` and add the ``open_url`` pixel."""
    if click_url_template:
        def rewrite(match: re.Match[str]) -> str:
            original = html_lib.unescape(match.group(3))
            if original in keep:
                return match.group(0)
            tracked = click_url_template.format(url=quote(original, safe=""))
            return f"{match.group(1)}{match.group(2)}{html_lib.escape(tracked)}{match.group(2)}"

        html = _HREF.sub(rewrite, html)
    if open_url:
        pixel = (f'<img src="{html_lib.escape(open_url)}" width="1" height="1" alt="" '
                 'style="display:block;border:0;width:1px;height:1px" />')
        at = html.lower().rfind("</body>")
        html = html[:at] + pixel + html[at:] if at >= 0 else html + pixel
    return html


# -- addresses -----------------------------------------------------------------------

def make_address(email: str, name: str | None = None) -> Address:
    """An :class:`Address` for ``email``; :class:`MessageError` when it is not one."""
    email = (email or "").strip()
    if email.count("@") != 1 or not all(email.split("@")) or any(c.isspace() for c in email):
        raise MessageError(f"{email!r} is not an email address")
    local, domain = email.split("@")
    try:
        return Address(display_name=(name or "").strip(), username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise MessageError(f"{email!r} is not an email address ({exc})") from None


def _parse_from(value: Any) -> tuple[str, str | None] | None:
    if not value:
        return None
    if isinstance(value, Mapping):
        return str(value.get("email", "")), value.get("name")
    name, addr = parseaddr(str(value))
    return addr, name or None


def recipient_of(touch: Touch) -> tuple[str, str | None]:
    """(email, display name) of the person an email or alert touch goes to."""
    contact = touch.contact or {}
    to = touch.payload.get("to")
    if isinstance(to, str) and "@" in to:
        name, addr = parseaddr(to)
        return addr, name or None
    email = contact.get("email")
    if not email:
        raise MessageError(f"touch {touch.key}: no recipient (the contact has no email and the step no 'to')")
    name = contact.get("name") or " ".join(
        p for p in (contact.get("first_name"), contact.get("last_name")) if p
    )
    return str(email), name or None


def message_id_for(touch: Touch, domain: str) -> str:
    digest = hashlib.sha256(touch.key.encode("utf-8")).hexdigest()[:32]
    return f"<abm.{digest}@{domain}>"


# -- the builders --------------------------------------------------------------------

@dataclass
class Draft:
    """What an email is made of, before it is rendered: its headers in order (values as
    ``EmailMessage`` takes them: strings or :class:`Address`), its text and HTML bodies,
    its inline images. :func:`to_message` renders it with the ``email`` package;
    :mod:`connectors.email_wire` writes the same bytes faster for the common case."""

    headers: list[tuple[str, Any]]
    text: str
    html: str = ""
    images: tuple = ()
    key: str = ""

    @property
    def recipient(self) -> str:
        return next(v.addr_spec for k, v in self.headers if k == "To")

    @property
    def message_id(self) -> str:
        return next(v for k, v in self.headers if k == "Message-ID")


def _base_headers(touch: Touch, sender: Address, to: Address, subject: str, reply_to: str | None) -> list:
    headers = [("Message-ID", message_id_for(touch, sender.domain)),
               ("Date", formatdate(localtime=False, usegmt=True)), ("From", sender), ("To", to),
               ("Subject", subject)]
    if reply_to:
        headers.append(("Reply-To", make_address(reply_to)))
    headers.append(("X-ABM-Touch", touch.key))
    return headers


def to_message(draft: Draft) -> EmailMessage:
    """The ``EmailMessage`` of ``draft``: text/plain, or multipart/alternative with the HTML
    part (multipart/related with its inline images)."""
    msg = EmailMessage()
    for name, value in draft.headers:
        msg[name] = value
    msg.set_content(draft.text)
    if draft.html:
        msg.add_alternative(draft.html, subtype="html")
        add_inline_images(msg, draft.html, draft.images, draft.key)
    return msg


def unsubscribe_headers_of(touch: Touch, mailbox: str | None = None) -> dict[str, str]:
    """The touch's ``List-Unsubscribe`` headers (:func:`connectors.email_text.list_unsubscribe_headers`),
    from its ``unsubscribe_url``, else from a ``List-Unsubscribe`` its payload's headers carry.
    :class:`MessageError` when it has neither: the product sends no email that cannot be
    unsubscribed from."""
    url = touch.payload.get("unsubscribe_url")
    if url:
        return list_unsubscribe_headers(str(url), mailbox)
    given = next((str(v) for k, v in (touch.payload.get("headers") or {}).items()
                  if str(k).lower() == "list-unsubscribe"), None)
    if not given:
        raise MessageError(f"touch {touch.key}: the email has no unsubscribe URL; it is not sent")
    headers = {"List-Unsubscribe": given}
    if one_click_allowed(given):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def list_id(touch: Touch, domain: str) -> str:
    """RFC 2919 ``List-Id``: the playbook's name and a list id under the sender's domain
    (``Tier 1 <tier1.abm.vendor.example>``), so that receivers group and filter the
    messages of one playbook, and show its unsubscribe link."""
    key = re.sub(r"[^a-z0-9-]+", "-", str(touch.playbook.get("key") or "all").lower()).strip("-") or "all"
    name = str(touch.playbook.get("name") or key).replace('"', "'").replace("\r", " ").replace("\n", " ")
    return f'"{name}" <{key}.abm.{domain.lower()}>'


def build_email(
    touch: Touch,
    *,
    from_email: str,
    from_name: str | None = None,
    reply_to: str | None = None,
    unsubscribe_mailbox: str | None = None,
    track: bool = True,
) -> EmailMessage:
    """The full MIME message for an email touch (see the module docstring)."""
    return to_message(email_draft(touch, from_email=from_email, from_name=from_name, reply_to=reply_to,
                                  unsubscribe_mailbox=unsubscribe_mailbox, track=track))


def email_draft(
    touch: Touch,
    *,
    from_email: str,
    from_name: str | None = None,
    reply_to: str | None = None,
    unsubscribe_mailbox: str | None = None,
    track: bool = True,
) -> Draft:
    """The :class:`Draft` of an email touch: its headers, bodies and images."""
    payload = touch.payload
    sender_email, sender_name = _parse_from(payload.get("from")) or (from_email, from_name)
    sender = make_address(sender_email, sender_name or from_name)
    to = make_address(*recipient_of(touch))
    subject = str(payload.get("subject") or "").strip()
    if not subject:
        raise MessageError(f"touch {touch.key}: the email has no subject")
    html = str(payload.get("html") or "")
    text = payload.get("text") or (html_to_text(html) if html else "")
    if not html and not text:
        raise MessageError(f"touch {touch.key}: the email has no body")

    extra = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
    unsubscribe_url = payload.get("unsubscribe_url")
    unsubscribe = unsubscribe_headers_of(touch, unsubscribe_mailbox)

    headers = _base_headers(touch, sender, to, subject, reply_to)
    headers.extend(unsubscribe.items())
    headers.append(("List-Id", list_id(touch, sender.domain)))
    headers.extend((name, value) for name, value in extra.items()
                   if name.lower() not in PROTECTED_HEADERS and name.lower() != "reply-to")

    tracking = payload.get("tracking") or {}
    if track and html and tracking:
        keep = (unsubscribe_url,) if unsubscribe_url else ()
        html = add_tracking(html, tracking.get("open_url"), tracking.get("click_url_template"), keep)
    return Draft(headers, text, html, tuple(payload.get("inline_images") or ()), touch.key)


def add_inline_images(msg: EmailMessage, html: str, images, key: str) -> None:
    """Attach ``images`` to the HTML part of ``msg`` as inline parts, each with its
    Content-ID (the HTML part becomes multipart/related); :class:`MessageError` for an
    image that is not base64, not an image, or not referenced by the HTML."""
    if not images:
        return
    html_part = msg.get_body(("html",))
    for image in images:
        cid = str(image.get("cid") or "")
        maintype, _, subtype = str(image.get("content_type") or "").partition("/")
        if maintype != "image" or not subtype or not cid or f"cid:{cid}" not in html:
            raise MessageError(f"touch {key}: inline image {cid!r} is no image its HTML shows (src=\"cid:...\")")
        try:
            data = base64.b64decode(str(image.get("data_base64") or ""), validate=True)
        except binascii.Error:
            raise MessageError(f"touch {key}: inline image {cid!r} is not base64") from None
        html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>", disposition="inline",
                              filename=str(image.get("filename") or f"{subtype}.{subtype}"))


def build_alert(touch: Touch, *, from_email: str, from_name: str | None = None) -> EmailMessage:
    """A plain-text email for an alert touch (``to``, ``message``) sent to a salesperson."""
    return to_message(alert_draft(touch, from_email=from_email, from_name=from_name))


def alert_draft(touch: Touch, *, from_email: str, from_name: str | None = None) -> Draft:
    """The :class:`Draft` of an alert touch: plain text."""
    message = str(touch.payload.get("message") or "").strip()
    if not message:
        raise MessageError(f"touch {touch.key}: the alert has no message")
    account = touch.account or {}
    label = account.get("name") or account.get("domain") or "an account"
    first_line = message.splitlines()[0]
    subject = f"[ABM] {label}: {first_line[:80]}"
    headers = _base_headers(touch, make_address(from_email, from_name), make_address(*recipient_of(touch)),
                            subject, None)
    return Draft(headers, message + "\n", key=touch.key)


def draft_for_touch(touch: Touch, **settings: Any) -> Draft:
    """``email_draft`` for email touches, ``alert_draft`` for alert touches."""
    if touch.kind == "alert" or touch.channel == "alert":
        return alert_draft(touch, from_email=settings["from_email"], from_name=settings.get("from_name"))
    return email_draft(touch, **settings)


def build_for_touch(touch: Touch, **settings: Any) -> EmailMessage:
    """``build_email`` for email touches, ``build_alert`` for alert touches."""
    return to_message(draft_for_touch(touch, **settings))


# -- on the wire ---------------------------------------------------------------------

def has_8bit(message: EmailMessage) -> bool:
    """True when a part of ``message`` goes out as raw 8-bit text (non-ASCII, short lines)."""
    return any(str(part.get("Content-Transfer-Encoding", "")).lower() == "8bit" for part in message.walk())


def seven_bit(message: EmailMessage) -> EmailMessage:
    """``message`` with its 8-bit parts re-encoded quoted-printable, for a server without 8BITMIME."""
    for part in message.walk():
        if not part.is_multipart() and str(part.get("Content-Transfer-Encoding", "")).lower() == "8bit":
            part.set_content(part.get_content(), subtype=part.get_content_subtype(), cte="quoted-printable")
    return message


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as SMTP carries it: CRLF line ends, headers folded, non-ASCII headers RFC 2047-encoded."""
    out = BytesIO()
    BytesGenerator(out, policy=message.policy.clone(linesep="\r\n")).flatten(message)
    return out.getvalue()
