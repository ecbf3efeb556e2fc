"""Provider API versions near or past their sunset, as an admin meets them: ``abm connectors
test``, the Connectors page and ``abm doctor`` (table and sources: connectors/versions.py).

The day is pinned to 2026-12-03 through the product's clock, so that the dates below stay
true: LinkedIn sunset 202510 on 2026-10-15 and sunsets 202601 on 2027-01-15 (43 days on),
as LinkedIn's "API Migration Status" table publishes them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from abm.services import connectors as service
from tests.admin.helpers import login
from tests.connectors.fakes.linkedin import FakeLinkedIn
from tests.connectors.harness import serve


@pytest.fixture
def on_2026_12_03(app):
    app.config["ABM_CLOCK"] = lambda: datetime(2026, 12, 3, 12, tzinfo=UTC)
    yield
    app.config.pop("ABM_CLOCK", None)


def linkedin(name, version, base_url="https://api.linkedin.com/rest"):
    service.create({"type": "linkedin", "name": name, "settings": {
        "access_token": "li-token", "ad_account_id": "5150", "linkedin_version": version,
        "base_url": base_url}})


def test_connectors_test_fails_after_the_sunset_and_warns_before_it(runner, on_2026_12_03):
    fake = FakeLinkedIn()
    with serve(fake.app) as server:
        linkedin("gone", "202510", server.base_url + "/rest")
        linkedin("soon", "202601", server.base_url + "/rest")
        linkedin("current", "202607", server.base_url + "/rest")
        gone = runner.invoke(args=["connectors", "test", "gone"])
        soon = runner.invoke(args=["connectors", "test", "soon"])
        current = runner.invoke(args=["connectors", "test", "current"])
    assert gone.exit_code == 1
    assert "202510 was sunset on 2026-10-15" in gone.output and "set linkedin_version to 202607" in gone.output
    assert soon.exit_code == 0, soon.output
    assert "warning: LinkedIn Marketing API 202601 sunsets on 2027-01-15 (in 43 days)" in soon.output
    assert "ad account 5150" in soon.output
    assert current.exit_code == 0 and "warning" not in current.output
    versions = [r.headers.get("Linkedin-Version") for r in server.requests]
    assert versions == ["202601", "202607"], "a sunset version makes no call"


def test_doctor_fails_on_a_sunset_version_and_only_warns_before(runner, on_2026_12_03):
    linkedin("soon", "202601")
    result = runner.invoke(args=["doctor"])
    assert result.exit_code == 0, result.output
    assert "WARN  connector soon: LinkedIn Marketing API 202601 sunsets on 2027-01-15" in result.output
    linkedin("gone", "202510")
    result = runner.invoke(args=["doctor"])
    assert result.exit_code == 1
    assert "FAIL  connector gone: LinkedIn Marketing API 202510 was sunset on 2026-10-15" in result.output
    service.set_enabled("gone", False)
    assert runner.invoke(args=["doctor"]).exit_code == 0, "a disabled connector sends nothing"


def test_the_connector_page_shows_the_sunset(app, make_user, on_2026_12_03):
    client = app.test_client()
    login(client, make_user("admin"))
    linkedin("gone", "202510")
    linkedin("fine", "202607")
    index = client.get("/connectors/").get_data(as_text=True)
    def row(name):
        return index[index.index(f'id="connector-{name}"'):].split("</tr>")[0]

    assert "API version sunset" in row("gone") and "202510 was sunset on 2026-10-15" in row("gone")
    assert "API version" not in row("fine")
    edit = client.get("/connectors/gone/edit").get_data(as_text=True)
    assert "Sunset:" in edit and "set linkedin_version to 202607" in edit
