"""The CRM helpers the HubSpot and Salesforce connectors share."""

from __future__ import annotations

import pytest

from connectors.base import PermanentError
from connectors.crm import Watermark, domain_of, iso_from_ms, iso_from_text, map_stage, parse_score_updates


def test_stage_map_exact_then_case_insensitive_else_unmapped():
    stages = {"salesqualifiedlead": "mqa", "Customer": "customer"}
    assert map_stage("salesqualifiedlead", stages) == "mqa"
    assert map_stage(" CUSTOMER ", stages) == "customer"
    assert map_stage("evangelist", stages) is None
    assert map_stage(None, stages) is None and map_stage("x", None) is None


@pytest.mark.parametrize("website,domain", [
    ("https://www.Acme.com/about?x=1", "acme.com"), ("acme.io", "acme.io"), ("http://shop.acme.co.uk:8080/", "shop.acme.co.uk"),
    ("", None), (None, None),
])
def test_domain_of(website, domain):
    assert domain_of(website) == domain


def test_timestamps_become_iso_with_offset():
    assert iso_from_ms(1_700_000_000_000) == "2023-11-14T22:13:20+00:00"
    assert iso_from_text("2026-01-15T10:20:30.000+0000") == "2026-01-15T10:20:30+00:00"
    assert iso_from_text("2026-01-15T10:20:30Z") == "2026-01-15T10:20:30+00:00"


def test_score_updates_are_validated_with_their_index():
    assert parse_score_updates([{"crm_id": 5, "score": 1.5, "level": "hot"}])[0].crm_id == "5"
    with pytest.raises(PermanentError, match="#0.*unknown keys"):
        parse_score_updates([{"crm_id": "1", "score": 1, "colour": "red"}])
    with pytest.raises(PermanentError, match="#1.*crm_id"):
        parse_score_updates([{"crm_id": "1", "score": 1}, {"score": 2}])
    with pytest.raises(PermanentError, match="score"):
        parse_score_updates([{"crm_id": "1", "score": True}])


def test_watermark_skips_only_what_it_took_at_its_instant():
    mark = Watermark(None)
    for record_id, at in [("a", 1), ("b", 2), ("c", 2)]:
        assert mark.is_new(record_id, at)
        mark.take(record_id, at)
    resumed = Watermark(mark.state())
    assert (resumed.since, resumed.ids_at_since) == (2, ["b", "c"])
    assert not resumed.is_new("b", 2) and resumed.is_new("d", 2) and resumed.is_new("b", 3)
