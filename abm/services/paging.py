"""Keyset (cursor) pagination shared by every list of the API and the pages.

A list is ordered by a few sort keys ending with the primary key, so the order is
total. The cursor is the last row's values of those keys (JSON signed with the app's secret,
opaque to clients: an edited cursor is a 422 on ``cursor``, never a query with values
of the wrong type); the next page is "rows after that tuple". No OFFSET: page 2,000 of
100,000 accounts costs what page 1 costs.

``SortKey(expr, descending)`` names one key; :func:`after` builds the WHERE clause
that continues after a cursor, :func:`order_by` the ORDER BY, and :func:`page` runs a
query and returns ``(rows, next_cursor)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, literal, or_, tuple_

from abm import tracking
from abm.db import db
from abm.errors import ValidationError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class SortKey:
    expr: Any
    descending: bool = False
    #: "datetime" values are carried in the cursor as ISO 8601 strings.
    kind: str = "plain"


def encode_cursor(sort_name: str, values: list | None, phase: int = 0) -> str:
    data: dict = {"s": sort_name, "v": None if values is None else
                  [v.isoformat() if isinstance(v, datetime) else v for v in values]}
    if phase:
        data["p"] = phase
    return tracking.sign("cursor", data)


def decode_cursor(cursor: str, sort_name: str, keys: list[SortKey], phases: int = 1) -> tuple[int, list | None]:
    """(phase, values) of a cursor; a 422 on ``cursor`` when it is not one of ours for this sort."""
    bad = ValidationError([{"path": "cursor", "message": "not a cursor of this list and sort; "
                                                         "use next_cursor from the previous page as is"}])
    data = tracking.read("cursor", cursor)
    if not isinstance(data, dict) or data.get("s") != sort_name:
        raise bad
    phase = data.get("p", 0)
    if not isinstance(phase, int) or isinstance(phase, bool) or not 0 <= phase < phases:
        raise bad
    if data.get("v") is None and phase > 0:
        return phase, None
    if not isinstance(data.get("v"), list) or len(data["v"]) != len(keys):
        raise bad
    values = []
    for key, value in zip(keys, data["v"], strict=True):
        if key.kind == "datetime":
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise bad from None
            if value.tzinfo is None:
                raise bad
        elif isinstance(value, (dict, list)):
            raise bad
        values.append(value)
    return phase, values


def order_by(keys: list[SortKey]) -> list:
    return [k.expr.desc() if k.descending else k.expr.asc() for k in keys]


def _lit(key: SortKey, value):
    return literal(value, type_=key.expr.type)


def after(keys: list[SortKey], values: list):
    """Rows strictly after ``values`` in the order of ``keys``.

    One row-value comparison when every key goes the same way (indexes serve it),
    else the expanded OR form.
    """
    if all(k.descending == keys[0].descending for k in keys):
        left = tuple_(*[k.expr for k in keys])
        right = tuple_(*[_lit(k, v) for k, v in zip(keys, values, strict=True)])
        return left < right if keys[0].descending else left > right
    clauses = []
    for i, key in enumerate(keys):
        equal = [keys[j].expr == _lit(keys[j], values[j]) for j in range(i)]
        step = key.expr < _lit(key, values[i]) if key.descending else key.expr > _lit(key, values[i])
        clauses.append(and_(*equal, step))
    return or_(*clauses)


def _fetch(query, keys: list[SortKey], n: int) -> list:
    labelled = [k.expr.label(f"_k{i}") for i, k in enumerate(keys)]
    return db.session.execute(query.add_columns(*labelled).order_by(*order_by(keys)).limit(n)).all()


def page(query, keys: list[SortKey], sort_name: str, cursor: str | None, limit: int) -> tuple[list, str | None]:
    """Run ``query`` (a select of one entity, filters applied) for one page.

    The key values are selected alongside the entity, so the cursor carries exactly
    what the database compared (no float or time-zone round trip through Python).
    """
    return page_phased([query], keys, sort_name, cursor, limit)


def page_phased(queries: list, keys: list[SortKey], sort_name: str, cursor: str | None,
                limit: int) -> tuple[list, str | None]:
    """Pages over several disjoint queries, all of the first before any of the second...

    This is how "an AE's own accounts first" stays a keyset walk that indexes serve:
    one query for theirs and one for the others, rather than an ORDER BY on a CASE.
    """
    phase, values = decode_cursor(cursor, sort_name, keys, len(queries)) if cursor else (0, None)
    rows: list = []
    while phase < len(queries):
        query = queries[phase] if values is None else queries[phase].where(after(keys, values))
        need = limit - len(rows)
        got = _fetch(query, keys, need + 1)
        if len(got) > need:
            rows += [r[0] for r in got[:need]]
            return rows, encode_cursor(sort_name, list(got[need - 1][1:]), phase)
        rows += [r[0] for r in got]
        phase, values = phase + 1, None
        if len(rows) == limit:
            for later in range(phase, len(queries)):
                if db.session.execute(queries[later].limit(1)).first() is not None:
                    return rows, encode_cursor(sort_name, None, later)
            return rows, None
    return rows, None


def parse_limit(value, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """``?limit=`` as an int in 1..maximum; a 422 naming ``limit`` otherwise."""
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValidationError([{"path": "limit", "message": f"must be a whole number from 1 to {maximum}"}]) from None
    if not 1 <= n <= maximum:
        raise ValidationError([{"path": "limit", "message": f"must be from 1 to {maximum}, not {n}"}])
    return n
