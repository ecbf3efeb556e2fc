"""IPinfo: which company an IP address belongs to (``GET /{ip}``, its ``company`` object).

Used for account identification (docs/identification.md) after the admin's own networks
and the ip2asn data: a worker job looks up the addresses of unmatched visits, a few at a
time within the rate limit, and the product caches each answer per address. IPinfo's
documented response carries ``company: {name, domain, type}`` on plans that include
company data; without it, ``org`` ("AS15169 Google LLC") is all there is, and the look-up
yields the name only (no account can be matched by name alone).
"""

from __future__ import annotations

from typing import Any

from connectors.base import Connector, PermanentError
from connectors.http import HttpClient

DEFAULT_BASE_URL = "https://ipinfo.io"


class IpInfoConnector(Connector):
    type = "ipinfo"
    channels = ()
    max_batch = 50
    rate_limit = (10, 1)
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["token"],
        "properties": {
            "token": {"type": "string", "minLength": 1, "writeOnly": True, "title": "Access token"},
            "base_url": {"type": "string", "format": "uri", "default": DEFAULT_BASE_URL, "title": "API base URL"},
            "timeout": {"type": "number", "minimum": 1, "maximum": 60, "default": 10},
        },
    }

    @classmethod
    def example_settings(cls, base_url: str) -> dict[str, Any]:
        return {"token": "example-token-0123456789", "base_url": base_url}

    def client(self) -> HttpClient:
        timeout = float(self.settings.get("timeout", 10))
        return HttpClient("IPinfo", self.settings.get("base_url") or DEFAULT_BASE_URL,
                          headers={"Authorization": f"Bearer {self.settings['token']}"},
                          secrets=[self.settings["token"]], timeout=(min(5.0, timeout), timeout))

    def lookup(self, ips: list[str]) -> dict[str, dict[str, str | None]]:
        """``ip -> {name, domain, type}`` for each address (all None when IPinfo knows no
        company); one ``GET /{ip}`` each, stopping at the first error (raised)."""
        found: dict[str, dict[str, str | None]] = {}
        with self.client() as client:
            for ip in ips:
                data = client.get(f"/{ip}").json()
                found[ip] = company_of(data)
        return found

    def test(self) -> str:
        with self.client() as client:
            data = client.get("/8.8.8.8").json()
        if not isinstance(data, dict) or "ip" not in data:
            raise PermanentError("IPinfo answered without an 'ip' field; check the base URL")
        company = company_of(data)
        return f"IPinfo answered for 8.8.8.8 ({company['name'] or data.get('org') or 'no company data'})"


def company_of(data: Any) -> dict[str, str | None]:
    """The ``company`` object of an IPinfo answer, as ``{name, domain, type}``."""
    company = data.get("company") if isinstance(data, dict) else None
    if not isinstance(company, dict):
        return {"name": None, "domain": None, "type": None}
    pick = lambda key: str(company[key])[:253] if company.get(key) else None  # noqa: E731
    return {"name": pick("name"), "domain": (pick("domain") or "").lower() or None, "type": pick("type")}
