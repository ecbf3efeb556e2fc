"""Integration fixtures: the engine's clock, accounts, an in-process RQ worker, and the
fake providers of tests/connectors served on loopback ports."""

from __future__ import annotations

import pytest

from abm.services import connectors
from tests.connectors.fakes.hubspot import FakeHubSpot
from tests.connectors.fakes.salesforce import FakeSalesforce
from tests.connectors.harness import serve
from tests.engine.conftest import Clock, run_worker


@pytest.fixture
def clock(app):
    c = Clock()
    app.config["ABM_CLOCK"] = c
    yield c
    app.config.pop("ABM_CLOCK", None)


@pytest.fixture
def worker(app):
    """Run the touches queue to empty in this process (RQ SimpleWorker, burst)."""
    return lambda: run_worker(app)


@pytest.fixture
def hubspot():
    """A fake HubSpot served for the test: (fake, running server)."""
    fake = FakeHubSpot()
    with serve(fake.app) as server:
        yield fake, server


@pytest.fixture
def salesforce():
    fake = FakeSalesforce()
    with serve(fake.app) as server:
        yield fake, server


def hubspot_connector(server, name: str = "hs", **settings) -> None:
    connectors.create({"type": "hubspot", "name": name, "settings": {
        "access_token": "hs-token", "client_secret": "hs-client-secret-0123", "base_url": server.base_url,
        "searches_per_second": 100, "read_timeout": 5, **settings}})


def salesforce_connector(server, name: str = "sf", **settings) -> None:
    connectors.create({"type": "salesforce", "name": name, "settings": {
        "access_token": "sf-token", "base_url": server.base_url, "read_timeout": 5, **settings}})
