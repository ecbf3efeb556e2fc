"""Third-party connector types arrive as installed packages through the entry-point group."""

from __future__ import annotations

import textwrap

import pytest

from connectors import registry

MODULE = '''
from connectors.base import Connector, TouchResult

class PipedriveConnector(Connector):
    type = "pipedrive"
    channels = ("task",)
    settings_schema = {"type": "object", "additionalProperties": False,
                       "properties": {"api_token": {"type": "string", "writeOnly": True}}}
    max_batch = 50

    def send(self, batch):
        return [TouchResult.success(t, "pd-1") for t in batch]

    def test(self):
        return "ok"
'''


@pytest.fixture
def installed_package(tmp_path, monkeypatch):
    (tmp_path / "abm_pipedrive.py").write_text(textwrap.dedent(MODULE))
    dist = tmp_path / "abm_pipedrive-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: abm-pipedrive\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[abm.connectors]\npipedrive = abm_pipedrive:PipedriveConnector\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reset_cache()
    yield
    registry.reset_cache()


def test_an_installed_package_adds_a_connector_type(installed_package):
    cls = registry.get("pipedrive")
    assert cls.channels == ("task",) and cls.secret_fields() == ["api_token"]
    assert "smtp" in registry.all_types()  # the built-ins are still there


def test_the_admin_api_lists_and_configures_it(installed_package, api):
    admin = api("admin")
    types = {t["type"] for t in admin.get("/api/v1/connector-types").json["items"]}
    assert "pipedrive" in types
    created = admin.post("/api/v1/connectors", json={"type": "pipedrive", "name": "pd",
                                                      "settings": {"api_token": "secret-token-123456"}})
    assert created.status_code == 201 and created.json["settings"]["api_token"] != "secret-token-123456"
