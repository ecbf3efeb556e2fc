"""The segment pages: a manager saves one (located errors first), everyone reads its
live count and members with their reasons, and exports them."""

from __future__ import annotations

import re

from tests.engine.conftest import make_account


def test_save_read_and_export_a_segment(as_role):
    make_account("Alpha", tier=1)
    make_account("Beta", tier=2)
    manager = as_role("manager")
    form = manager.get("/segments/_new").get_data(as_text=True)
    assert 'name="condition"' in form
    bad = manager.post("/segments/_save", data={"name": "tier-one", "condition": "teir: [1]\n"})
    assert bad.status_code == 422
    assert "1:1 teir: unknown account field &#39;teir&#39;; did you mean &#39;tier&#39;?" in bad.get_data(as_text=True)
    saved = manager.post("/segments/_save", data={"name": "tier-one", "condition": "tier: [1]\n"},
                         follow_redirects=True).get_data(as_text=True)
    assert "Segment tier-one created." in saved and re.search(r'id="segment-count">1<', saved)
    assert re.search(r'<a href="/accounts/\d+">Alpha</a>.*?class="small reasons">tier is one of 1<', saved, re.S)

    ae = as_role("ae")
    listing = ae.get("/segments").get_data(as_text=True)
    assert 'id="segment-tier-one"' in listing and 'href="/segments"' in listing
    exported = ae.get("/segments/tier-one/members.csv")
    assert exported.mimetype == "text/csv" and "alpha.example" in exported.get_data(as_text=True)
    assert ae.post("/segments/_save", data={"name": "x", "condition": "tier: [1]"}).status_code == 403
    assert ae.get("/segments/nope").status_code == 404
