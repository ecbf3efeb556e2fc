"""CSV files the product writes for people to open: every cell safe for a spreadsheet.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read
by Excel, LibreOffice and Google Sheets as a formula (``=HYPERLINK(...)`` in a cost's
product becomes a link that leaks data when clicked). OWASP's rule: such a cell gets a
leading ``'``, which spreadsheets show as text and hide. Numbers are written as they
are (a negative amount stays a number). Files made to be imported again (the seed
generator's) are not exports and are not escaped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet shows it as text: strings that begin like a formula
    get a leading ``'``; numbers and everything else are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(rows: Iterable[Mapping[str, Any]], fieldnames: list[str] | None = None) -> str:
    """The CSV text of ``rows`` (a header of ``fieldnames``, by default the first row's
    keys), every cell through :func:`safe_cell`."""
    rows = list(rows)
    out = io.StringIO()
    if rows or fieldnames:
        names = fieldnames or list(rows[0])
        writer = csv.writer(out)
        writer.writerow([safe_cell(name) for name in names])
        writer.writerows([safe_cell(row.get(name, "")) for name in names] for row in rows)
    return out.getvalue()
