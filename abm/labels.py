"""Human names for the product's keys: event types (``email_open`` is "Email open").

One home for them, so that the inbox, the score breakdown, the settings and the
connector forms say the same thing.
"""

from __future__ import annotations

#: event type -> (one, many)
EVENT_NAMES: dict[str, tuple[str, str]] = {
    "email_delivered": ("email delivered", "emails delivered"),
    "email_open": ("email open", "email opens"),
    "email_click": ("email click", "email clicks"),
    "email_bounce": ("bounce", "bounces"),
    "email_reply": ("email reply", "email replies"),
    "unsubscribe": ("unsubscribe", "unsubscribes"),
    "spam_report": ("spam report", "spam reports"),
    "web_visit": ("website visit", "website visits"),
    "form_fill": ("form fill", "form fills"),
    "meeting": ("meeting", "meetings"),
    "ad_impression": ("ad impression", "ad impressions"),
    "ad_click": ("ad click", "ad clicks"),
    "content_download": ("content download", "content downloads"),
    "webinar": ("webinar attended", "webinars attended"),
    "intent": ("intent signal", "intent signals"),
}


def event_label(event_type: str) -> str:
    """"Email open" for ``email_open``; an unknown type is written out from its key."""
    one = EVENT_NAMES.get(event_type, (event_type.replace("_", " "),))[0]
    return one[:1].upper() + one[1:]


def event_count(event_type: str, count: int) -> str:
    """"3 email opens", "1 meeting", "1,219 ad impressions"."""
    one, many = EVENT_NAMES.get(event_type, (event_type.replace("_", " "), event_type.replace("_", " ") + "s"))
    return f"{count:,} {one if count == 1 else many}"


#: Words written their own way in labels (the rest: the first capitalised).
WORDS = {"ca": "CA", "url": "URL", "uri": "URI", "api": "API", "id": "ID", "ids": "IDs", "smtp": "SMTP", "tls": "TLS",
         "ip": "IP", "dkim": "DKIM", "http": "HTTP", "https": "HTTPS", "oauth": "OAuth", "crm": "CRM", "pem": "PEM",
         "ssl": "SSL", "sha256": "SHA-256", "json": "JSON", "g2": "G2", "linkedin": "LinkedIn", "hubspot": "HubSpot",
         "sendgrid": "SendGrid", "ipinfo": "IPinfo", "ads": "Ads", "google": "Google", "meta": "Meta",
         "salesforce": "Salesforce", "slack": "Slack"}


def field_label(key: str) -> str:
    """"CA certificate" for ``ca_certificate``, "API base URL" for ``api_base_url``."""
    words = key.replace("-", "_").split("_")
    out = [WORDS.get(w.lower(), w.lower()) for w in words if w]
    if out and out[0] == out[0].lower():
        out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out)


def type_label(type_name: str, title: str | None = None) -> str:
    """A connector type's name as people write it: its schema's title, else "Google Ads" for ``google_ads``."""
    if title:
        return title
    return " ".join(WORDS.get(w, w.capitalize()) for w in type_name.split("_"))


def rate_label(calls: int, seconds: int) -> str:
    """"10 calls per second", "300 calls per minute", "100 calls per 10 seconds"."""
    per = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}.get(seconds, f"{seconds:,} seconds")
    return f"{calls:,} call{'s' if calls != 1 else ''} per {per}"
