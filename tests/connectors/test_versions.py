"""The versions table (connectors/versions.py) against the providers' own SDKs and dates."""

from __future__ import annotations

import importlib.util
import pkgutil
from datetime import date

import google.ads.googleads
from facebook_business.apiconfig import ads_api_config

from connectors import registry, versions
from connectors.versions import check

TODAY = date(2026, 12, 3)


def test_every_default_is_served_today_and_beyond_the_warning_window():
    for type_name, table in versions.VERSIONS.items():
        cls = registry.get(type_name)
        assert cls.settings_schema["properties"][table.setting]["default"] == table.default
        assert check(type_name, {}, TODAY).level == "ok", type_name


def test_google_ads_default_is_one_the_official_client_ships_and_every_shipped_one_is_listed():
    """google-ads 34.0.0 carries one package per served API version (v23 ... v26)."""
    shipped = {m.name for m in pkgutil.iter_modules(google.ads.googleads.__path__) if m.name.startswith("v")}
    assert versions.default_version("google_ads") in shipped
    assert importlib.util.find_spec(f"google.ads.googleads.{versions.default_version('google_ads')}.services")
    for version in shipped:
        assert version in versions.VERSIONS["google_ads"].sunsets
        assert check("google_ads", {"api_version": version}, TODAY).level == "ok"
    assert check("google_ads", {"api_version": "v20"}, TODAY).level == "fail"  # sunset 2026-06-10


def test_meta_default_is_at_least_the_official_sdks():
    sdk = ads_api_config["API_VERSION"]  # "v26.0" in facebook-business 26.0.3
    assert float(versions.default_version("meta")[1:]) >= float(sdk[1:])
    assert check("meta", {"api_version": sdk}, TODAY).level == "ok"
    assert check("meta", {"api_version": "v21.0"}, TODAY).level == "fail"  # older than every listed one


def test_warn_sixty_days_ahead_and_fail_from_the_sunset_day():
    sunset = versions.VERSIONS["meta"].sunsets["v25.0"]  # 2027-02-23
    assert check("meta", {"api_version": "v25.0"}, date(2026, 12, 24)).level == "ok"   # 61 days before
    assert check("meta", {"api_version": "v25.0"}, date(2026, 12, 25)).level == "warn"  # 60 days before
    assert check("meta", {"api_version": "v25.0"}, sunset).level == "fail"
    assert check("linkedin", {"linkedin_version": "202511"}, TODAY).level == "fail"  # sunset 2026-11-16
    assert check("linkedin", {"linkedin_version": "202601"}, TODAY).level == "warn"  # sunsets 2027-01-15
    assert check("linkedin", {"linkedin_version": "202605"}, TODAY).level == "ok"    # a year on: 2027-05-15
