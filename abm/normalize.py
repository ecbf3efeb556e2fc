"""Normalising the keys records are matched on: domains and emails."""

from __future__ import annotations

import re

import idna

#: Mailbox providers: an email at one of these says nothing about the person's company.
FREE_MAIL_DOMAINS = frozenset("""
gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr yahoo.de ymail.com hotmail.com hotmail.co.uk
hotmail.fr outlook.com live.com msn.com aol.com icloud.com me.com mac.com proton.me protonmail.com
gmx.com gmx.de gmx.net web.de mail.com zoho.com yandex.com yandex.ru mail.ru qq.com 163.com 126.com
fastmail.com tutanota.com hey.com orange.fr free.fr laposte.net libero.it t-online.de btinternet.com
comcast.net verizon.net att.net sbcglobal.net
""".split())

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class NormalizeError(ValueError):
    pass


def normalize_domain(value: str | None) -> str:
    """``https://www.Example.COM:443/path`` -> ``example.com``; IDNA names to their ASCII form.

    Raises NormalizeError with a message a person understands.
    """
    raw = (value or "").strip()
    if not raw:
        raise NormalizeError("the domain is empty")
    text = raw.lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    text = text.rsplit("@", 1)[-1]  # user@host forms
    text = text.split(":", 1)[0].strip().rstrip(".")
    if text.startswith("www."):
        text = text[4:]
    if not text:
        raise NormalizeError(f"{raw!r} is not a domain name")
    try:
        text = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise NormalizeError(f"{raw!r} is not a domain name") from None
    labels = text.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise NormalizeError(f"{raw!r} is not a domain name")
    return text


def normalize_email(value: str | None) -> str:
    raw = (value or "").strip()
    if not raw:
        raise NormalizeError("the email is empty")
    text = raw.lower()
    if text.startswith("mailto:"):
        text = text[7:]
    if not _EMAIL.match(text):
        raise NormalizeError(f"{raw!r} is not an email address")
    local, domain = text.rsplit("@", 1)
    return f"{local}@{normalize_domain(domain)}"


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1]


def company_domain_of(email: str) -> str | None:
    """The company domain an email implies, or None for a free-mail address."""
    domain = email_domain(email)
    return None if domain in FREE_MAIL_DOMAINS else domain
