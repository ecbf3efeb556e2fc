"""Reading one cell: header names, domains and emails, amounts, tiers, tags, column widths."""

from __future__ import annotations

import functools
import hashlib
import re
from decimal import Decimal, InvalidOperation

from abm.normalize import normalize_domain, normalize_email

MAX_INT = 2_147_483_647
MAX_REVENUE = Decimal("9999999999999999")
CENT = Decimal("0.01")
#: Column widths of the models: a longer cell is an error on that column, not a failed batch.
LIMITS = {"name": 300, "industry": 100, "country": 100, "notes": 100_000, "first_name": 100,
          "last_name": 100, "title": 200, "phone": 50, "email": 320}


def header_key(text: str) -> str:
    """``"Country/Region"`` -> ``"countryregion"``: how headers and aliases are compared."""
    return re.sub(r"[^0-9a-z]", "", (text or "").casefold())


def attribute_key(text: str) -> str:
    """``"Lead Source (HubSpot)"`` -> ``"lead_source_hubspot"``: the attribute an unknown column becomes."""
    return re.sub(r"[\W_]+", "_", (text or "").casefold()).strip("_")


# The common case of a domain, without IDNA: ASCII labels, none starting or ending with a hyphen
# or having one in its third and fourth places (xn--), a last label not all digits.
_PLAIN_LABEL = r"(?!-)(?!..--)[a-z0-9-]{1,63}(?<!-)"
_PLAIN_HOST = rf"(?:{_PLAIN_LABEL}\.)+(?![0-9]+\Z){_PLAIN_LABEL}"
_PLAIN_DOMAIN = re.compile(rf"(?:www\.)?({_PLAIN_HOST})")
_PLAIN_EMAIL = re.compile(rf"[^@\s:]+@(?!www\.){_PLAIN_HOST}")  # in its normal form already


@functools.lru_cache(maxsize=65536)  # a file's contacts share their companies' domains
def _plain_domain(text: str) -> str | None:
    """The common case, without IDNA: ``acme.com`` or ``www.acme.com`` in lower case."""
    m = _PLAIN_DOMAIN.fullmatch(text)
    if m is None or (text.startswith("www.") and m.group(1) == text):
        return None
    return m.group(1)


def domain_of(value: str) -> str:
    """:func:`abm.normalize.normalize_domain`, fast for the plain ASCII names most cells hold."""
    return _plain_domain(value.strip().lower()) or normalize_domain(value)


def email_of(value: str) -> str:
    """:func:`abm.normalize.normalize_email`, fast for plain ASCII addresses."""
    text = value.strip().lower()
    return text if _PLAIN_EMAIL.fullmatch(text) else normalize_email(value)


def email_hash(email: str) -> str:
    """The suppression list's form of an email: SHA-256 of the normalised address."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


_SUFFIX = {"k": Decimal(1_000), "thousand": Decimal(1_000), "m": Decimal(1_000_000), "mm": Decimal(1_000_000),
           "mn": Decimal(1_000_000), "million": Decimal(1_000_000), "b": Decimal(1_000_000_000),
           "bn": Decimal(1_000_000_000), "billion": Decimal(1_000_000_000)}
_AMOUNT = re.compile(r"^([0-9][0-9.,' ]*)\s*([a-z]*)$")


def parse_amount(text: str) -> Decimal:
    """``"1,200"``, ``"$5M"``, ``"€2,5 Mio"``-free forms, ``"10,001+"``, ``"51-200"`` (lower bound).

    Thousands separators (``,`` ``.`` ``'`` space) and a decimal comma are understood; a
    currency symbol or ISO code is ignored. Raises ValueError with a message.
    """
    raw = text.strip()
    if raw.isascii() and raw.isdigit():
        return Decimal(raw)  # the common case, without the regular expressions below
    t = raw.casefold()
    t = re.sub(r"^(usd|eur|gbp|chf|cad|aud|jpy)\s*|\s*(usd|eur|gbp|chf|cad|aud|jpy)$", "", t)
    t = t.replace("$", "").replace("€", "").replace("£", "").replace("¥", "").strip()
    if t.startswith("-"):
        raise ValueError(f"{raw!r} is negative")
    t = re.split(r"\s*(?:-|–|to)\s*(?=\d)", t, maxsplit=1)[0].rstrip("+").strip()
    m = _AMOUNT.match(t)
    if not m or (m.group(2) and m.group(2) not in _SUFFIX):
        raise ValueError(f"{raw!r} is not a number (write it like 1200, 1,200 or 5M)")
    digits = m.group(1).replace("'", "").replace(" ", "")
    if "," in digits and "." in digits:
        decimal_sep = "," if digits.rfind(",") > digits.rfind(".") else "."
    elif "," in digits:
        decimal_sep = "." if re.fullmatch(r"\d{1,3}(,\d{3})+", digits) else ","
    elif digits.count(".") > 1 or re.fullmatch(r"\d{1,3}(\.\d{3})+", digits) and not m.group(2):
        decimal_sep = ","
    else:
        decimal_sep = "."
    thousands = "," if decimal_sep == "." else "."
    digits = digits.replace(thousands, "").replace(decimal_sep, ".")
    try:
        value = Decimal(digits)
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a number (write it like 1200, 1,200 or 5M)") from None
    return value * _SUFFIX.get(m.group(2), Decimal(1))


def parse_tier(text: str) -> int:
    m = re.fullmatch(r"(?:tier|t)?[\s_-]*(\d+)(?:\.0+)?", text.strip().casefold())
    if not m or not 1 <= int(m.group(1)) <= 9:
        raise ValueError(f"{text.strip()!r} is not a tier (a whole number from 1 to 9, such as 1 or 'Tier 1')")
    return int(m.group(1))


def split_tags(text: str) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in re.split(r"[;|,]", text) if t.strip()))

