"""Ad-audience connectors: identifiers per second through a local fake provider.

    python bench/ad_connectors.py [--identifiers 20000] [--single 300]

For each ad connector (LinkedIn contact and company lists, Meta, Google Ads), the
same kind of audience touches (one account, one contact each) are sent through the
real connector to the fake provider the tests use, on a loopback HTTP server:

- at the provider's batch size (``max_batch`` touches per ``send``), and
- in batches of one touch per ``send``, the rate a connector that ignored batching
  would get,

measured in the same run and printed side by side, with the HTTP requests each made.
The list is created before timing starts. Extracting and hashing alone (the SHA-256
of every email, which no connector can avoid) is printed as the ceiling. The fake
runs in this process, so its own parsing and checks share the CPU with the connector.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.audiences import people_of  # noqa: E402
from connectors.base import ConnectorContext, Touch  # noqa: E402
from connectors.google_ads import GoogleAdsConnector  # noqa: E402
from connectors.linkedin import LinkedInConnector  # noqa: E402
from connectors.meta import MetaConnector  # noqa: E402
from tests.connectors.fakes.google_ads import FakeGoogleAds  # noqa: E402
from tests.connectors.fakes.linkedin import FakeLinkedIn  # noqa: E402
from tests.connectors.fakes.meta import FakeMeta  # noqa: E402
from tests.connectors.harness import serve  # noqa: E402


def touches(count: int, start: int = 0) -> list[Touch]:
    return [Touch(id=i, kind="audience", channel="ads",
                  account={"name": f"Company {i}", "domain": f"company{i}.example", "country": "US",
                           "contacts": [{"email": f"person{i}@company{i}.example", "first_name": "P"}]},
                  contact=None, payload={"list": "Bench list", "action": "add"}, key=f"b{i}")
            for i in range(start, start + count)]


def setups():
    """(label, fake, make connector from base URL) for each ad connector."""
    yield ("linkedin (contacts)", FakeLinkedIn(token="t"), lambda url: LinkedInConnector("li", {
        "access_token": "t", "ad_account_id": "5150", "list_type": "user", "base_url": url + "/rest"},
        ConnectorContext()))
    yield ("linkedin (companies)", FakeLinkedIn(token="t"), lambda url: LinkedInConnector("li", {
        "access_token": "t", "ad_account_id": "5150", "list_type": "company", "base_url": url + "/rest"},
        ConnectorContext()))
    yield ("meta", FakeMeta(token="t"), lambda url: MetaConnector("meta", {
        "access_token": "t", "ad_account_id": "777", "base_url": url}, ConnectorContext()))
    yield ("google_ads", FakeGoogleAds(token="t", developer_token="d"), lambda url: GoogleAdsConnector("ga", {
        "access_token": "t", "developer_token": "d", "customer_id": "1234567890", "base_url": url},
        ConnectorContext()))


def run(connector, batch: list[Touch], size: int) -> float:
    """Seconds to send ``batch`` in sends of ``size`` touches; every result must be ok."""
    started = time.perf_counter()
    for start in range(0, len(batch), size):
        results = connector.send(batch[start:start + size])
        bad = [r for r in results if not r.ok]
        if bad:
            raise SystemExit(f"{connector.type}: touch {bad[0].touch_id} failed: {bad[0].error}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identifiers", type=int, default=20_000, help="identifiers sent at the batch size")
    parser.add_argument("--single", type=int, default=300, help="identifiers sent one per batch")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    rows = []
    for label, fake, make in setups():
        with serve(fake.app) as server:
            connector = make(server.base_url)
            run(connector, touches(1, start=10_000_000), 1)  # create the list outside the timing
            before = len(server.requests)
            batched = run(connector, touches(args.identifiers), connector.max_batch)
            batched_requests = len(server.requests) - before
            before = len(server.requests)
            single = run(connector, touches(args.single, start=5_000_000), 1)
            single_requests = len(server.requests) - before
        rows.append((label, connector.max_batch, args.identifiers / batched, batched_requests,
                     args.single / single, single_requests))

    sample = touches(args.identifiers)
    started = time.perf_counter()
    for touch in sample:
        people_of(touch)
    hashing = args.identifiers / (time.perf_counter() - started)

    print(f"\nAd connectors through a local fake provider ({args.identifiers:,} identifiers batched, "
          f"{args.single:,} one by one)\n")
    print(f"{'connector':<22}{'batch size':>11}{'ids/s batched':>15}{'requests':>10}"
          f"{'ids/s one by one':>18}{'requests':>10}{'speed-up':>10}")
    for label, size, fast, fast_req, slow, slow_req in rows:
        print(f"{label:<22}{size:>11,}{fast:>15,.0f}{fast_req:>10,}{slow:>18,.0f}{slow_req:>10,}"
              f"{fast / slow:>9,.0f}x")
    print(f"{'(extract + hash only)':<22}{'':>11}{hashing:>15,.0f}")


if __name__ == "__main__":
    main()
