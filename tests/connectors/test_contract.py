"""The contract every connector type keeps, checked over the whole registry.

Parametrised over ``connectors.registry.all_types()``, so each type is checked as
soon as its module lands. For types that speak HTTP, the type's
``example_settings(base_url)`` (see :meth:`connectors.base.Connector.example_settings`)
points it at a generic local fake, and ``test()`` must turn a 401 into
PermanentError and a 429 or 503 into RetryableError, send the product's User-Agent,
and never put a secret in a message.
"""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator

from connectors import registry
from connectors.base import CHANNELS, USER_AGENT, Connector, ConnectorContext, PermanentError, RetryableError
from tests.connectors.fakes.generic import generic_app
from tests.connectors.harness import serve

registry.reset_cache()
TYPES = registry.all_types()
NAMES = sorted(TYPES)

#: Setting names that must be writeOnly wherever they appear.
SECRET_NAME = re.compile(r"(password|secret|token|api_key|apikey|private_key|credential)", re.IGNORECASE)


def schema_of(name: str) -> dict:
    return TYPES[name].settings_schema


#: Types that speak no HTTP at all (files, a log, SMTP; g2 only receives webhooks): every other
#: type must have example_settings().
NOT_HTTP = {"outbox", "log", "smtp", "g2"}
HTTP_NAMES = sorted(n for n in NAMES if TYPES[n].example_settings("http://127.0.0.1:9") is not None)
WITH_BASE_URL = sorted(n for n in NAMES if "base_url" in TYPES[n].settings_schema.get("properties", {}))


def http_settings(name: str, base_url: str) -> dict:
    return TYPES[name].example_settings(base_url)


def test_every_type_that_speaks_http_has_example_settings():
    """A type left out here would silently escape the 401/429/503 checks below."""
    builtin_http = set(registry.BUILTIN) - NOT_HTTP
    assert builtin_http <= set(HTTP_NAMES), sorted(builtin_http - set(HTTP_NAMES))
    assert set(WITH_BASE_URL) <= set(HTTP_NAMES), sorted(set(WITH_BASE_URL) - set(HTTP_NAMES))


def test_every_builtin_that_is_installed_is_registered():
    assert {"outbox", "log", "smtp", "sendgrid", "slack", "webhook"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_identity_channels_and_limits(name):
    cls = TYPES[name]
    assert issubclass(cls, Connector)
    assert cls.type == name
    # A type serves outbound channels, or only brings data in (a webhook receiver, a look-up).
    assert cls.channels or cls.accepts_webhooks or callable(getattr(cls, "lookup", None))
    assert len(set(cls.channels)) == len(cls.channels)
    assert set(cls.channels) <= set(CHANNELS)
    assert isinstance(cls.max_batch, int) and 1 <= cls.max_batch <= 100_000
    calls, seconds = cls.rate_limit
    assert isinstance(calls, int) and isinstance(seconds, int) and calls >= 1 and seconds >= 1
    if cls.accepts_webhooks:
        assert cls.verify_webhook is not Connector.verify_webhook
        assert cls.parse_webhook is not Connector.parse_webhook


@pytest.mark.parametrize("name", sorted(n for n in NAMES if "ads" in TYPES[n].channels))
def test_an_ads_type_batches_a_hundred_or_more(name):
    """One call of an audience (idempotent adds and removes) carries many; a CRM task is one call."""
    assert TYPES[name].max_batch >= 100


#: The ads and CRM types (part B): their provider's API, reached with an OAuth access token.
ADS_AND_CRM = sorted({"linkedin", "meta", "google_ads", "hubspot", "salesforce"} & set(NAMES))


@pytest.mark.parametrize("name", ADS_AND_CRM)
def test_an_ads_or_crm_type_declares_its_token_url_and_timeouts(name):
    cls = TYPES[name]
    schema = schema_of(name)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "access_token" in cls.secret_fields()
    assert {"base_url", "connect_timeout", "read_timeout"} <= set(schema["properties"])


@pytest.mark.parametrize("name", sorted({"hubspot", "salesforce"} & set(NAMES)))
def test_a_crm_type_polls_and_writes_scores(name):
    cls = TYPES[name]
    assert "crm" in cls.channels and "task" in cls.channels
    assert callable(cls.poll) and callable(cls.write_scores)


@pytest.mark.parametrize("name", NAMES)
def test_settings_schema_is_a_closed_json_schema_2020_12(name):
    schema = schema_of(name)
    Draft202012Validator.check_schema(schema)
    assert schema.get("$schema", "https://json-schema.org/draft/2020-12/schema") == \
        "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema.get("additionalProperties") is False
    assert set(schema.get("required", [])) <= set(schema["properties"])
    assert not Draft202012Validator(schema).is_valid({"no_such_setting": 1}), "unknown keys must be errors"
    for field, spec in schema["properties"].items():
        if "default" in spec:
            assert Draft202012Validator(spec).is_valid(spec["default"]), f"{field}: default breaks its own schema"


@pytest.mark.parametrize("name", NAMES)
def test_secrets_are_write_only_strings_without_defaults(name):
    cls = TYPES[name]
    props = schema_of(name)["properties"]
    for field, spec in props.items():
        if SECRET_NAME.search(field):
            assert spec.get("writeOnly") is True, f"{name}.{field} looks secret but is not writeOnly"
    for field in cls.secret_fields():
        assert props[field].get("type") == "string", f"{name}.{field}: secrets are strings"
        assert "default" not in props[field], f"{name}.{field}: a secret has no default"


@pytest.mark.parametrize("name", WITH_BASE_URL)
def test_base_url_defaults_to_the_providers_real_https_url(name):
    props = schema_of(name)["properties"]
    spec = props["base_url"]
    assert spec.get("type") == "string" and not spec.get("writeOnly")
    if "default" not in spec:
        # Only for providers whose URL is per customer (Salesforce: https://DOMAIN.my.salesforce.com).
        assert "base_url" not in schema_of(name).get("required", []), f"{name}: base_url must stay optional"
        return
    assert re.match(r"^https://[a-z0-9.-]+\.[a-z]{2,}", spec["default"]), \
        f"{name}: base_url must default to the provider's real https URL"


@pytest.mark.parametrize("name", HTTP_NAMES)
def test_example_settings_are_valid_settings(name):
    settings = http_settings(name, "http://127.0.0.1:9")
    validator = Draft202012Validator(schema_of(name), format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in validator.iter_errors(settings)]
    assert not errors, errors


def _secrets(name: str, settings: dict) -> list[str]:
    return [str(settings[f]) for f in TYPES[name].secret_fields() if settings.get(f)]


def _run_test(name, server, tmp_path):
    settings = http_settings(name, server.base_url)
    conn = TYPES[name]("contract", settings, ConnectorContext(outbox_dir=str(tmp_path)))
    return conn, settings


@pytest.mark.parametrize("name", HTTP_NAMES)
def test_http_401_is_permanent_and_hides_secrets(name, tmp_path):
    body = '{"error": {"message": "invalid credentials", "code": 401}}'
    with serve(generic_app(401, body)) as server:
        conn, settings = _run_test(name, server, tmp_path)
        with pytest.raises(PermanentError) as err:
            conn.test()
    assert server.requests, f"{name}: test() made no HTTP call"
    assert all(r.headers.get("User-Agent") == USER_AGENT for r in server.requests)
    for secret in _secrets(name, settings):
        assert secret not in str(err.value)


@pytest.mark.parametrize("name", HTTP_NAMES)
def test_http_503_is_retryable(name, tmp_path):
    with serve(generic_app(503, "<html>down</html>", content_type="text/html")) as server:
        conn, settings = _run_test(name, server, tmp_path)
        with pytest.raises(RetryableError) as err:
            conn.test()
    for secret in _secrets(name, settings):
        assert secret not in str(err.value)


@pytest.mark.parametrize("name", HTTP_NAMES)
def test_http_429_is_retryable_and_hands_its_retry_after_to_the_engine(name, tmp_path):
    """The connector's half of honouring Retry-After: the wait the provider asked for reaches the engine
    (``RetryableError.retry_after``). That the engine then waits it is the engine's test (issue #12)."""
    with serve(generic_app(429, '{"message": "slow down"}', {"Retry-After": "7"})) as server:
        conn, _ = _run_test(name, server, tmp_path)
        with pytest.raises(RetryableError) as err:
            conn.test()
    assert err.value.retry_after == 7, f"{name}: Retry-After: 7 was not honoured"
