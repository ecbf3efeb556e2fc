"""The import's driver: one pass over the file, batches parsed by one thread and written by another.

:class:`Importer` holds what accounts and contacts share; :mod:`.accounts` and
:mod:`.contacts` say how a row of each is parsed and written.
"""

from __future__ import annotations

import csv
import operator
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from abm.db import db, utcnow
from abm.models import AuditLog
from abm.services import settings as settings_service
from abm.services.imports.cells import LIMITS
from abm.services.imports.columns import match_header, no_header
from abm.services.imports.postgres_copy import DATABASE_ERRORS, STAGED_ON
from abm.services.imports.reading import Source
from abm.services.imports.report import ImportFileError, ImportReport
from abm.services.imports.tuning import tuned_if_alone

BATCH_SIZE = 5000
#: The JSON columns an import writes (compared as JSON text, not as stored text, on SQLite).
JSON_COLUMNS = frozenset({"tags", "attributes", "crm_ids"})
ProgressFn = Callable[[int], None]


class Row:
    """One parsed data row: its number, its values (field -> value) and attributes."""

    __slots__ = ("number", "values", "attributes", "crm_ids", "line")

    def __init__(self, number: int) -> None:
        self.number = number
        self.values: dict = {}
        self.attributes: dict = {}
        self.crm_ids: dict = {}
        self.line = ""  # the row in COPY's text format (PostgreSQL)


class Importer:
    kind = ""
    key = ""
    aliases: dict[str, list[str]] = {}
    model = None

    def __init__(self, actor_id: int | None, progress: ProgressFn | None, batch_size: int,
                 tune_interpreter: bool = False) -> None:
        self.actor_id = actor_id
        self.tune_interpreter = tune_interpreter  # see tuning.tuned_if_alone
        self.progress = progress
        self.batch_size = batch_size
        self.report = ImportReport(self.kind)
        self.started = utcnow()
        self.settings = settings_service.current()
        self.dialect = db.dialect

    # -- driving

    def run(self, stream: BinaryIO) -> ImportReport:
        source = Source(stream)
        rows = self.read_header(source)
        self._pick = self._make_picker()
        self._padding = [""] * (self.header.width + 1)
        self.prepare()
        db.session.commit()  # end the lookups' transaction: the writer thread writes
        with tuned_if_alone(self.tune_interpreter), \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="abm-import") as writer:
            self._read_rows(rows, source, writer)
        self.finish()
        self.report.errors.sort(key=lambda e: e["row"])
        self.report.skipped_rows.sort(key=lambda s: s["row"])
        db.session.add(AuditLog(actor_id=self.actor_id, action=f"import.{self.kind}", target_type=self.kind,
                                details={k: v for k, v in self.report.to_dict().items()
                                         if k in ("created", "updated", "skipped", "rejected", "rows")}))
        db.session.commit()
        return self.report

    def read_header(self, source: Source) -> Iterator[list[str]]:
        """Read and match the header row; the rows after it. Raises ImportFileError when it is unusable."""
        self.report.encoding, self.report.delimiter = source.encoding, source.delimiter
        rows = iter(source)
        header = None
        try:
            for cells in rows:
                if any(c.strip() for c in cells):
                    header = cells
                    break
        except csv.Error as exc:
            raise ImportFileError(f"the file cannot be read as CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"the file's text cannot be decoded: {exc}") from None
        if header is None:
            raise no_header(self.kind, self.key, self.aliases, None)
        self.header = match_header(header, self.aliases, self.report)
        if self.key not in self.header.fields:
            raise no_header(self.kind, self.key, self.aliases, header)
        return rows

    def _read_rows(self, rows: Iterator[list[str]], source: Source, writer: ThreadPoolExecutor) -> None:
        """Parse rows into batches; each batch is written by ``writer`` while the next is parsed.

        One batch is written at a time, in file order, so a later batch sees what the
        earlier ones wrote; at most two batches are held in memory.
        """
        batch: dict[str, Row] = {}
        pending: Future | None = None

        def hand_over(batch):
            nonlocal pending
            batch_rows = list(batch.values())
            if batch_rows:
                self.before_write(batch_rows)
            if self.dialect == "postgresql":
                for row in batch_rows:  # while the writer still waits on the database for the previous batch
                    row.line = self.copy_line(row)
                if batch_rows:
                    self.look_ahead(batch_rows)
            if pending is not None:
                self.report.merge(pending.result())
                self._progress(source)
            pending = writer.submit(self._write_batch, batch_rows) if batch_rows else None

        try:
            for cells in rows:
                cells = [c.strip() for c in cells]
                if not any(cells):
                    continue
                self.report.rows += 1
                row = self.parse(cells, source.row)
                if row is None:
                    self.report.rejected += 1
                    continue
                key = row.values[self.key]
                earlier = batch.pop(key, None)
                if earlier is not None:
                    self.report.skip(earlier.number, self.key,
                                     f"row {row.number} has the same {self.key} ({key}); the last row wins")
                batch[key] = row
                if len(batch) >= self.batch_size:
                    hand_over(batch)
                    batch = {}
        except (csv.Error, UnicodeDecodeError) as exc:
            self.report.error(source.row + 1, "(file)",
                              f"the file cannot be read past this row: {exc} (an unbalanced quote?); "
                              "the rows before it were imported")
        finally:
            hand_over(batch)
            hand_over({})

    def _progress(self, source: Source) -> None:
        if self.progress is not None:
            self.progress(source.bytes_read)

    def prepare(self) -> None:
        """Lookups made once per import (users, stages)."""

    def before_write(self, rows: list[Row]) -> None:
        """Checks of a batch against what is stored, made by the reading thread before it hands the batch over."""

    def look_ahead(self, rows: list[Row]) -> None:
        """PostgreSQL: start a batch's look-ups, to be made while the writer still writes the previous one."""

    def finish(self) -> None:
        """Work after the last batch."""

    # -- parsing

    def _make_picker(self) -> Callable[[list[str]], tuple]:
        """``cells`` -> the text of each field of ``aliases``, in its order: "" when it has no cell.

        A field fed by several columns takes the first non-empty one. ``cells`` are stripped
        and padded with empty cells past the header's width (a missing field reads there).
        """
        empty = self.header.width
        plan = [self.header.fields.get(name) or [empty] for name in self.aliases]
        if all(len(indexes) == 1 for indexes in plan):
            return operator.itemgetter(*(indexes[0] for indexes in plan))  # one C call per row

        def pick(cells: list[str]) -> tuple:
            return tuple(next((cells[i] for i in indexes if cells[i]), "") for indexes in plan)

        return pick

    def parse(self, cells: list[str], number: int) -> Row | None:
        width = self.header.width
        if len(cells) > width:
            if any(cells[width:]):
                self.report.error(number, "(row)", f"this row has {len(cells)} cells but the header has "
                                                   f"{width} (a delimiter inside an unquoted cell?); "
                                                   "row not imported")
                return None
            del cells[width:]
        cells += self._padding[len(cells):]
        row = Row(number)
        for index, attr in self.header.attributes:
            if cells[index]:
                row.attributes[attr] = cells[index]
        return row if self.parse_fields(self._pick(cells), row) else None

    def crm(self, row: Row, hubspot: str, salesforce: str) -> None:
        if hubspot:
            row.crm_ids["hubspot"] = hubspot
        if salesforce:
            row.crm_ids["salesforce"] = salesforce

    def texts(self, row: Row, names: tuple[str, ...], cells: tuple[str, ...]) -> None:
        """Text fields (``names``, their ``cells``) as they are; one longer than its column is a cell error."""
        for name, value in zip(names, cells, strict=True):
            if value:
                if len(value) > LIMITS[name]:
                    self.report.error(row.number, name, f"longer than {LIMITS[name]} characters; "
                                                        "this cell was not imported")
                else:
                    row.values[name] = value

    def convert(self, row: Row, name: str, text: str, parse, left=" this cell was not imported",
                target=None) -> None:
        """``row.values[target or name] = parse(text)`` for a non-empty cell; a ValueError is a cell error."""
        if not text:
            return
        try:
            row.values[target or name] = parse(text)
        except ValueError as exc:
            self.report.error(row.number, name, f"{exc};{left}")

    def parse_fields(self, picked: tuple, row: Row) -> bool:
        raise NotImplementedError

    # -- writing

    def _write_batch(self, rows: list[Row]) -> ImportReport:
        """Write one batch in the writer thread (its own session); returns what it counted."""
        try:
            return self._write_or_split(rows)
        finally:
            db.session.remove()

    def _write_or_split(self, rows: list[Row]) -> ImportReport:
        self.out = ImportReport(self.kind)
        self.staged_on = None
        try:
            self.write(rows)
            db.session.commit()
            if self.staged_on is not None:
                STAGED_ON[self.kind].add(self.staged_on)  # committed: the connection keeps its temporary table
            return self.out
        except DATABASE_ERRORS as exc:
            if self.staged_on is not None:  # make sure of the temporary table on the next try
                STAGED_ON[self.kind].discard(self.staged_on)
            db.session.rollback()
            if len(rows) == 1:
                out = ImportReport(self.kind, rejected=1)
                out.error(rows[0].number, "(row)", "the database refused this row: "
                          + str(getattr(exc, "orig", exc)).splitlines()[0][:300])
                return out
            half = len(rows) // 2  # find the bad rows without losing the good ones
            out = self._write_or_split(rows[:half])
            out.merge(self._write_or_split(rows[half:]))
            return out

    def write(self, rows: list[Row]) -> None:
        """Write one batch in the session's transaction."""
        if self.dialect == "postgresql":
            self.write_pg(rows)
        else:
            self.write_rows(rows)

    def write_pg(self, rows: list[Row]) -> None:
        """PostgreSQL: COPY the batch into a temporary table, then one statement does the rest."""
        raise NotImplementedError

    def write_rows(self, rows: list[Row]) -> None:
        """Other databases: lookups, then a multi-row upsert."""
        raise NotImplementedError

    def copy_line(self, row: Row) -> str:
        """The row as a line of the temporary table's COPY (PostgreSQL), or what the line is made of.

        Made for every row by the reading thread as it hands a batch over (``row.line``).
        """
        raise NotImplementedError

    #: The temporary table's columns in the order its COPY lines give them ("" for the table's own order).
    STAGED_COLUMNS = ""

    def staged_lines(self, rows: list[Row]) -> str:
        """The rows as the temporary table's COPY text."""
        return "".join([r.line for r in rows])

    def stage_and_run(self, rows: list[Row], statement: str) -> list[tuple]:
        """COPY the rows into the temporary table ``_abm_import_<kind>``, run ``statement``, return its rows.

        The table is made once per connection and emptied at each commit.
        """
        conn = db.session.connection().connection.driver_connection
        self.staged_on = conn
        with conn.cursor() as cur:
            if conn not in STAGED_ON[self.kind]:  # the first batch on this connection
                cur.execute(self.STAGING)
            with cur.copy(f"COPY _abm_import_{self.kind} {self.STAGED_COLUMNS} FROM STDIN") as copy:
                copy.write(self.staged_lines(rows))
            # Planned afresh for each batch (no prepared statement): a plan made when the table was
            # small (a scan of the whole table for the stored keys) would be kept as it grows.
            cur.execute(statement, {"now": self.started, "actor": self.actor_id}, prepare=False)
            return cur.fetchall()

    # -- writing elsewhere than PostgreSQL (SQLite)

    def merged_json(self, table, column: str, excluded):
        """The stored JSON object with the new keys laid over it."""
        return func.json_patch(table.c[column], excluded[column])

    def existing(self, column, keys: list[str]) -> dict[str, tuple]:
        table = self.model.__table__
        q = select(table.c[self.key], table.c.id, table.c.updated_at, *self.extra_columns()).where(
            column.in_(keys))
        return {r[0]: tuple(r[1:]) for r in db.session.execute(q)}

    def upsert(self, table, params: list[dict], set_of, returning: tuple):
        """``INSERT ... ON CONFLICT (key) DO UPDATE`` of many rows as multi-row VALUES; ``returning`` of the
        rows written.

        ``set_of(excluded)`` gives the new values of a stored row's columns; the row is
        updated (and its ``updated_at`` moved) only when one of them differs from what is
        stored, so a row the file leaves as it was is not among those returned.
        """
        stmt = sqlite_insert(table)
        values = set_of(stmt.excluded)

        def comparable(column: str, value):
            return func.json(value) if column in JSON_COLUMNS else value  # JSON text in one spelling

        changed = or_(*[comparable(c, table.c[c]).is_distinct_from(comparable(c, v)) for c, v in values.items()])
        stmt = stmt.on_conflict_do_update(index_elements=[self.key], where=changed,
                                          set_={**values, "updated_at": stmt.excluded.updated_at})
        return db.session.execute(stmt.returning(*returning), params)

    def insert_rows(self, table, rows: list[dict]) -> None:
        if rows:
            db.session.execute(table.insert(), rows)

    def extra_columns(self) -> tuple:
        return ()

    def count(self, rows: list[Row], found: dict[str, tuple], written: set[str]) -> None:
        """Count the batch's rows: ``found`` the keys stored before it, ``written`` those it created or changed."""
        for row in rows:
            key = row.values[self.key]
            known = found.get(key)
            if known is None:
                self.out.created += 1
            elif known[1] is not None and known[1] >= self.started:
                self.out.skip(row.number, self.key, f"an earlier row has the same {self.key} ({key}); "
                                                    "this later row's values replaced it (the last row wins)")
            elif key in written:
                self.out.updated += 1
            else:
                self.out.unchanged += 1


def coalesce_update(table, excluded, names) -> dict:
    return {n: func.coalesce(excluded[n], table.c[n]) for n in names}

