"""PostgreSQL's COPY text format and the SQL pieces the batch statements are built from."""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from abm.db import db

try:  # psycopg comes with the `pg` extra only; without it no PostgreSQL path runs
    import psycopg
except ImportError:  # pragma: no cover - installs without PostgreSQL
    psycopg = None

#: What a refused write raises: SQLAlchemy's errors, and psycopg's from its own cursors.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, psycopg.Error) if psycopg else (DBAPIError,)
#: What a COPY of new contacts meets when an address is stored already or an account is gone.
KEY_CONFLICTS: tuple[type[Exception], ...] = (
    (psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation) if psycopg else ())
#: Per kind, the PostgreSQL connections that have the temporary table its batches are staged in.
STAGED_ON: dict[str, weakref.WeakSet] = {"accounts": weakref.WeakSet(), "contacts": weakref.WeakSet()}


def coalesced(names: Iterable[str]) -> list[tuple[str, str]]:
    """(column, new value) of columns an empty cell leaves as stored."""
    return [(n, f"COALESCE(EXCLUDED.{n}, t.{n})") for n in names]


def update_if_changed(pairs: list[tuple[str, str]]) -> str:
    """The ``SET ... WHERE`` of an ``ON CONFLICT DO UPDATE`` from (column, new value) pairs.

    A stored row is updated (and its ``updated_at`` moved) only when one of its values
    changes, so that the statement's ``RETURNING`` lists exactly the rows that changed.
    """
    sets = ",\n        ".join(f"{column} = {value}" for column, value in pairs)
    stored = ", ".join(f"t.{column}" for column, _ in pairs)
    new = ", ".join(value for _, value in pairs)
    return f"SET {sets},\n        updated_at = EXCLUDED.updated_at\n    WHERE ({stored}) IS DISTINCT FROM ({new})"


def staging_sql(kind: str, staged: str) -> str:
    """Make the temporary table ``_abm_import_<kind>`` unless the connection has it (no notice)."""
    return (f"DO $$ BEGIN IF to_regclass('pg_temp._abm_import_{kind}') IS NULL THEN "
            f"CREATE TEMP TABLE _abm_import_{kind} ON COMMIT DELETE ROWS AS SELECT 0 AS n, {staged} WITH NO DATA; "
            "END IF; END $$")


def defaults_sql(table, given: set[str]) -> tuple[str, str]:
    """(columns, values): the model's constant defaults of the columns an import does not give."""
    pairs = [(c.name, c.default.arg) for c in table.columns
             if c.name not in given and c.default is not None and c.default.is_scalar]
    literals = {float: lambda v: f"{v!r}::float8", int: str, str: lambda v: "'" + v.replace("'", "''") + "'"}
    return "".join(f", {n}" for n, _ in pairs), "".join(f", {literals[type(v)](v)}" for _, v in pairs)




def email_hash_sql(email: str) -> str:
    """:func:`email_hash` of the SQL expression ``email``, in PostgreSQL (a suppression's key)."""
    return f"encode(sha256(convert_to({email}, 'UTF8')), 'hex')"



def autocommit(conn: Connection | None) -> Connection:
    """``conn`` while it is usable, else a new connection of the engine's in autocommit (a thread's own)."""
    if conn is not None and not (conn.closed or conn.invalidated):
        return conn
    if conn is not None:
        conn.close()
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")



def copy_rows(table: str, columns: list[str], rows: Iterable[tuple]) -> None:
    """PostgreSQL ``COPY table (columns) FROM STDIN`` in the session's transaction.

    Dicts and lists are sent as JSON text (for JSONB columns). Much faster than any
    INSERT for many rows.
    """
    conn = db.session.connection().connection.driver_connection
    with conn.cursor() as cur, cur.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([json_text(v) if isinstance(v, dict | list) else v for v in row])


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


NULL = "\\N"  # COPY's text format


def copy_row_line(values: tuple) -> str:
    """One row in COPY's text format: None is NULL, strings escaped, other values as ``str()`` writes them."""
    return copy_fields(values) + "\n"


def copy_fields(values: tuple) -> str:
    """:func:`copy_row_line` without the line end."""
    parts = [NULL if v is None else v if v.__class__ is str else str(v) for v in values]
    line = "\t".join(parts)
    # The common case needs no escaping: no tab, newline or backslash of its own.
    if line.count("\t") == len(parts) - 1 and line.count("\\") == values.count(None) and "\n" not in line \
            and "\r" not in line:
        return line
    return "\t".join([NULL if v is None else (v if v.__class__ is str else str(v)).translate(_COPY_ESCAPES)
                      for v in values])


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of the strings, for a ``%s::text[]`` parameter (cheaper to send than a list)."""
    values = list(values)
    if not values:
        return "{}"
    joined = '","'.join(values)
    if joined.count('"') != 2 * (len(values) - 1) or "\\" in joined:  # a value with a quote or a backslash
        joined = '","'.join([v.replace("\\", "\\\\").replace('"', '\\"') for v in values])
    return '{"' + joined + '"}'


def json_or_none(value: dict | list | None) -> str | None:
    """JSON text for COPY; None for an empty value (the statement puts the empty JSON in)."""
    return json.dumps(value, ensure_ascii=False, default=str) if value else None


def json_text(value: dict | list) -> str:
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value, ensure_ascii=False, default=str)

