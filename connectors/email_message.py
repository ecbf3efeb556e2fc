"""Building the MIME messages that ``smtp`` sends and ``outbox`` writes as ``.eml`` files.

One builder, so that what the demo shows is byte for byte what SMTP would send.

An email touch's payload (see :class:`connectors.base.Touch`) gives ``subject``,
``html``, ``text`` (optional: derived from the HTML when missing), ``from``
(optional: ``"Name <addr>"`` or ``{"email", "name"}``; the connector's ``from_email``
otherwise), ``to`` (optional: the contact's email otherwise), ``unsubscribe_url``,
``headers`` (extra headers) and, when the engine wants engagement tracked,
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
text/plain first, then text/html.

An email without an unsubscribe URL is refused (:class:`MessageError`): the product
only sends marketing email that can be unsubscribed from.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

from connectors.base import Touch

#: Headers the builder owns; a payload's ``headers`` cannot replace them.
PROTECTED_HEADERS = {"message-id", "date", "from", "to", "subject", "mime-version", "content-type",
                     "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post"}


class MessageError(ValueError):
    """This touch cannot become an email (no recipient, no unsubscribe URL, bad address)."""


# -- HTML to text --------------------------------------------------------------------

_BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
          "blockquote", "section", "article", "header", "footer", "hr"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._href: list[str | None] = []
        self._link_text: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip += 1
        elif tag == "a":
            self._href.append(dict(attrs).get("href"))
            self._link_text.append([])
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag == "a" and self._href:
            href = self._href.pop()
            text = "".join(self._link_text.pop()).strip()
            if href and href.startswith(("http://", "https://", "mailto:")) and href != text:
                self._emit(f"{text} ({href})" if text else href)
            else:
                self._emit(text)
        elif tag in _BLOCK and tag != "li":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self._emit(re.sub(r"\s+", " ", data))

    def _emit(self, text: str) -> None:
        if self._link_text:
            self._link_text[-1].append(text)
        else:
            self.parts.append(text)


def html_to_text(html: str) -> str:
    """A readable plain-text version of an email's HTML: paragraphs kept, links spelled out."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text + "\n"


# -- tracking ------------------------------------------------------------------------

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']*)\2""", re.IGNORECASE)


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

def _base(touch: Touch, sender: Address, to: Address, subject: str, reply_to: str | None) -> EmailMessage:
    msg = EmailMessage()
    msg["Message-ID"] = message_id_for(touch, sender.domain)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if reply_to:
        msg["Reply-To"] = make_address(reply_to)
    msg["X-ABM-Touch"] = touch.key
    return msg


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
    if unsubscribe_url:
        targets = [f"<{unsubscribe_url}>"]
        if unsubscribe_mailbox:
            targets.append(f"<mailto:{unsubscribe_mailbox}?subject=unsubscribe>")
        list_unsubscribe = ", ".join(targets)
    else:
        list_unsubscribe = next((v for k, v in extra.items() if k.lower() == "list-unsubscribe"), None)
    if not list_unsubscribe:
        raise MessageError(f"touch {touch.key}: the email has no unsubscribe URL; it is not sent")

    msg = _base(touch, sender, to, subject, reply_to)
    msg["List-Unsubscribe"] = list_unsubscribe
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in extra.items():
        if name.lower() not in PROTECTED_HEADERS and name.lower() != "reply-to":
            msg[name] = value

    tracking = payload.get("tracking") or {}
    if track and html and tracking:
        keep = (unsubscribe_url,) if unsubscribe_url else ()
        html = add_tracking(html, tracking.get("open_url"), tracking.get("click_url_template"), keep)

    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def build_alert(touch: Touch, *, from_email: str, from_name: str | None = None) -> EmailMessage:
    """A plain-text email for an alert touch (``to``, ``message``) sent to a salesperson."""
    message = str(touch.payload.get("message") or "").strip()
    if not message:
        raise MessageError(f"touch {touch.key}: the alert has no message")
    account = touch.account or {}
    label = account.get("name") or account.get("domain") or "an account"
    first_line = message.splitlines()[0]
    subject = f"[ABM] {label}: {first_line[:80]}"
    msg = _base(touch, make_address(from_email, from_name), make_address(*recipient_of(touch)), subject, None)
    msg.set_content(message + "\n")
    return msg


def build_for_touch(touch: Touch, **settings: Any) -> EmailMessage:
    """``build_email`` for email touches, ``build_alert`` for alert touches."""
    if touch.kind == "alert" or touch.channel == "alert":
        return build_alert(touch, from_email=settings["from_email"], from_name=settings.get("from_name"))
    return build_email(touch, **settings)
