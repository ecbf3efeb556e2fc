"""The API versions each provider serves, with their sunset dates: one table for every check.

Each versioned connector keeps its version as a setting (``api_version`` or
``linkedin_version``) whose default is the newest version below. :func:`check` says,
for a connector's settings and a day, whether that version is fine, sunsets within
:data:`WARN_DAYS` days (a warning), or has sunset (a failure: the provider answers
every call with an error). ``abm connectors test``, the connector page and
``abm doctor`` all call it.

Sources, as published on 2026-12-03 (update the table when a provider announces a
version or a date):

- Google Ads API: Google's "Deprecation and sunset" timetable
  (developers.google.com/google-ads/api/docs/sunset-dates) and the sunset reminders
  on the Ads developer blog (v20: 2026-06-10, v21: 2026-08-05, v22: 2026-10-07);
  v23 released in January 2026, v24 2026-04-22, v25 2026-07-22, v26 2026-10-14
  (release notes). Major versions live about 12 months, so v23 to v26 carry that
  estimate until Google announces their dates; the official client ``google-ads``
  34.0.0 ships exactly v23 to v26.
- Meta Marketing API: "Marketing API version history"
  (developers.facebook.com/documentation/ads-commerce/marketing-api/marketing-api-changelog/versions):
  v24.0 expired 2026-11-10, v25.0 expires 2027-02-23, v26.0 (2026-07-29) and v27.0
  (2026-11-04) have no date yet. Older versions than listed have expired.
- LinkedIn Marketing API (``Linkedin-Version``, YYYYMM): "Marketing API versioning"
  and "API Migration Status" (learn.microsoft.com/linkedin/marketing/versioning,
  .../integrations/migrations): each version is served at least one year; 202510
  sunset 2026-10-15, 202511 sunsets 2026-11-16, 202601 2027-01-15, 202602
  2027-02-15, 202603 2027-03-16; the newest published is 202607 (July 2026).
  Versions not listed sunset a year after their month, mid-month.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

#: Warn this many days before a sunset.
WARN_DAYS = 60


@dataclass(frozen=True)
class Versioned:
    """One provider's versions: the setting that holds it, the default, the sunsets."""

    provider: str
    setting: str
    default: str
    sunsets: Mapping[str, date | None]  # None: announced by nobody yet


VERSIONS: dict[str, Versioned] = {
    "google_ads": Versioned("Google Ads API", "api_version", "v26", {
        "v20": date(2026, 6, 10), "v21": date(2026, 8, 5), "v22": date(2026, 10, 7),
        # Not announced yet: about 12 months after release, Google's stated lifespan.
        "v23": date(2027, 2, 10), "v24": date(2027, 4, 21), "v25": date(2027, 7, 21), "v26": date(2027, 10, 13),
    }),
    "meta": Versioned("Meta Marketing API", "api_version", "v27.0", {
        "v22.0": date(2026, 2, 19), "v23.0": date(2026, 6, 9), "v24.0": date(2026, 11, 10),
        "v25.0": date(2027, 2, 23), "v26.0": None, "v27.0": None,
    }),
    "linkedin": Versioned("LinkedIn Marketing API", "linkedin_version", "202607", {
        "202510": date(2026, 10, 15), "202511": date(2026, 11, 16), "202601": date(2027, 1, 15),
        "202602": date(2027, 2, 15), "202603": date(2027, 3, 16),
    }),
}


@dataclass(frozen=True)
class VersionCheck:
    level: str  # "ok", "warn" or "fail"
    message: str

    @property
    def ok(self) -> bool:
        return self.level != "fail"


def default_version(type_name: str) -> str:
    return VERSIONS[type_name].default


def sunset_of(type_name: str, version: str) -> date | None:
    """The day ``version`` stops being served (a LinkedIn YYYYMM not listed: a year on, mid-month)."""
    table = VERSIONS[type_name]
    if version in table.sunsets:
        return table.sunsets[version]
    if type_name == "linkedin" and re.fullmatch(r"20\d{2}(0[1-9]|1[0-2])", version):
        return date(int(version[:4]) + 1, int(version[4:]), 15)
    known = [v for v in table.sunsets if _number(v) is not None]
    if _number(version) is not None and known and _number(version) < min(_number(v) for v in known):
        return min(d for d in table.sunsets.values() if d)  # older than anything listed: gone
    return None


def _number(version: str) -> float | None:
    match = re.fullmatch(r"v?(\d+(?:\.\d+)?)", version)
    return float(match.group(1)) if match else None


def check(type_name: str, settings: Mapping[str, Any], today: date | None = None) -> VersionCheck | None:
    """The state of the API version ``settings`` select; None for unversioned connector types."""
    table = VERSIONS.get(type_name)
    if table is None:
        return None
    version = str(settings.get(table.setting) or table.default)
    today = today or date.today()
    sunset = sunset_of(type_name, version)
    if sunset is None:
        return VersionCheck("ok", f"{table.provider} {version}: no sunset announced")
    if sunset <= today:
        return VersionCheck("fail", f"{table.provider} {version} was sunset on {sunset.isoformat()}: every call "
                                    f"fails; set {table.setting} to {table.default}")
    if sunset - today <= timedelta(days=WARN_DAYS):
        days = (sunset - today).days
        return VersionCheck("warn", f"{table.provider} {version} sunsets on {sunset.isoformat()} (in {days} days); "
                                    f"set {table.setting} to {table.default}")
    return VersionCheck("ok", f"{table.provider} {version} is served until {sunset.isoformat()}")
