"""The contract every part-B connector (ads and CRM) keeps, checked over all of them."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from connectors import registry
from connectors.base import CHANNELS, Connector

NAMES = ["linkedin", "meta", "google_ads", "hubspot", "salesforce"]


@pytest.mark.parametrize("name", NAMES)
def test_declares_the_contract(name):
    registry.reset_cache()
    cls = registry.get(name)
    assert issubclass(cls, Connector) and cls.type == name
    assert cls.channels and set(cls.channels) <= set(CHANNELS)
    # One call of an audience (idempotent adds and removes) carries many; a CRM task is one call.
    assert cls.max_batch >= (100 if "ads" in cls.channels else 1)
    calls, seconds = cls.rate_limit
    assert calls > 0 and seconds > 0
    schema = cls.settings_schema
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema") and schema["additionalProperties"] is False
    props = schema["properties"]
    assert "access_token" in cls.secret_fields()
    assert all(props[k].get("writeOnly") for k in cls.secret_fields())
    assert "base_url" in props and {"connect_timeout", "read_timeout"} <= set(props)
    for field in cls.secret_fields():
        assert "default" not in props[field], f"{name}.{field}: a secret has no default"


@pytest.mark.parametrize("name", ["hubspot", "salesforce"])
def test_crm_connectors_poll_and_write_scores(name):
    cls = registry.get(name)
    assert "crm" in cls.channels and "task" in cls.channels
    assert callable(cls.poll) and callable(cls.write_scores)
