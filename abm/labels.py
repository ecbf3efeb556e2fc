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
