"""Third-party intent: a Company Surge file (Bombora's shape) as ``intent`` events.

An intent provider says, per company, week and topic, how strongly the company is
researching the topic (a composite score from 0 to 100; Bombora calls 60 and more a
surge). Each row becomes one ``intent`` event of the account with the company's domain,
``properties = {topic, score, provider, company}``, on the week's first day, with a
de-duplication key of (provider, domain, topic, week): importing overlapping files never
counts a week twice. A domain that matches no account yet is kept and matched when the
account appears. Bad rows are reported by row and column; good rows are kept.

This module is the one home of the rule: ``abm intent import-surge`` calls
:func:`import_surge` inline; the imports page and ``POST /api/v1/imports/intent`` check
the header with :func:`check_header` in the request and run :func:`import_surge` as an
import job (:mod:`abm.services.imports.runs`), whose report is :meth:`SurgeResult.to_report`.

G2's buyer-intent webhook (:mod:`connectors.g2`) makes the same events.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from abm.db import db
from abm.models import AuditLog
from abm.normalize import NormalizeError, normalize_domain
from abm.services import events
from abm.services.imports.cells import header_key
from abm.services.imports.report import ImportFileError, RowErrors

ALIASES = {
    "domain": ("domain", "company domain", "website", "company website"),
    "company": ("company name", "company", "account name"),
    "topic": ("topic", "topic name", "intent topic"),
    "score": ("composite score", "score", "surge score", "topic score"),
    "week": ("week", "week of", "week start", "date", "week start date"),
    "provider": ("provider", "intent provider"),
}
REQUIRED = ("domain", "topic", "score", "week")
BATCH = 5000
DEFAULT_PROVIDER = "bombora"


@dataclass
class SurgeResult(RowErrors):
    """What an import did: rows read, events stored, already known, kept unmatched, rows
    rejected, and the row errors (the first ``MAX_LISTED`` listed, all counted)."""

    rows: int = 0
    events: int = 0
    duplicates: int = 0
    unmatched: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    errors_total: int = 0

    def to_report(self) -> dict:
        """The report of an import run, in the shape of the accounts' and contacts' (docs/imports.md):
        created = intent events stored, unchanged = rows already known, rejected = rows with an error."""
        out = {"created": self.events, "updated": 0, "unchanged": self.duplicates, "skipped": 0,
               "rejected": self.rejected, "errors": self.errors, "rows": self.rows,
               "errors_total": self.errors_total, "unmatched": self.unmatched, **self.not_listed()}
        return out


class SurgeFileError(ImportFileError):
    """The file cannot be read at all (no usable header, not text)."""


def _columns(headers: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, header in enumerate(headers):
        for name, aliases in ALIASES.items():
            if header_key(header) in {header_key(a) for a in aliases} and name not in found:
                found[name] = i
    return found


def _week(value: str) -> datetime:
    value = value.strip()
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD)")


def _score(value: str) -> int:
    number = float((value or "").strip())
    if not 0 <= number <= 100:
        raise ValueError(f"{value!r} is not a score from 0 to 100")
    return int(round(number))


def _cells(row: list[str], cols: dict[str, int]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The row's cells by field, and the fields holding a NUL character (no database stores one)."""
    values = {name: row[i].strip() if i < len(row) else "" for name, i in cols.items()}
    return values, [(name, "a NUL character") for name, value in values.items() if "\x00" in value]


def _row_event(row: list[str], cols: dict[str, int], row_no: int, provider: str,
               result: SurgeResult) -> dict | None:
    cell, problems = _cells(row, cols)
    if not problems:
        try:
            domain = normalize_domain(cell["domain"])
        except NormalizeError as exc:
            problems.append(("domain", str(exc)))
        topic = cell["topic"][:200]
        if not topic:
            problems.append(("topic", "empty"))
        try:
            score = _score(cell["score"])
        except ValueError as exc:
            problems.append(("score", str(exc)))
        try:
            week = _week(cell["week"])
        except ValueError as exc:
            problems.append(("week", str(exc)))
    for column, message in problems:
        result.error(row_no, column, message)
    if problems:
        result.rejected += 1
        return None
    provider = cell.get("provider", "")[:40].lower() or provider
    return {"type": "intent", "occurred_at": week.isoformat(), "account_domain": domain, "source": provider,
            "dedup_key": f"intent:{provider}:{domain}:{topic.lower()}:{week.date().isoformat()}"[:200],
            "properties": {"topic": topic, "score": score, "provider": provider,
                           "company": cell.get("company", "")[:300] or None}}


def _header(reader) -> dict[str, int]:
    """The columns of the file's header row; SurgeFileError when the file cannot be imported."""
    try:
        headers = next(reader)
    except StopIteration:
        raise SurgeFileError("the file is empty") from None
    except UnicodeDecodeError:
        raise SurgeFileError("the file is not UTF-8 text") from None
    except csv.Error as exc:
        raise SurgeFileError(f"the file cannot be read as CSV: {exc}") from None
    cols = _columns(headers)
    missing = [name for name in REQUIRED if name not in cols]
    if missing:
        raise SurgeFileError(f"the header has no {', '.join(missing)} column (it needs domain, topic, "
                             "composite score and week)")
    return cols


def check_header(stream: BinaryIO) -> None:
    """Raise SurgeFileError when the file's header has not the columns an import needs."""
    _header(csv.reader(io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")))


def import_surge(stream: BinaryIO, provider: str = DEFAULT_PROVIDER,
                 progress: Callable[[int], None] | None = None, actor_id: int | None = None) -> SurgeResult:
    """Read a Company Surge CSV (bytes stream) and store its rows as intent events.

    ``provider`` is the one of rows without a ``provider`` cell. ``progress(bytes_read)``
    is called after each batch. The import is audited (``import.intent``) as ``actor_id``'s.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text)
    cols = _header(reader)
    result = SurgeResult()
    pending: list[str] = []
    try:
        for row_no, row in enumerate(reader, 2):
            if not any(c.strip() for c in row):
                continue
            result.rows += 1
            event = _row_event(row, cols, row_no, provider, result)
            if event is not None:
                pending.append(events.stamp(event))
            if len(pending) >= BATCH:
                _store(pending, result, stream, progress)
    except UnicodeDecodeError:
        result.error(result.rows + 2, "", "not UTF-8 text from here on; the rows before it are imported")
    except csv.Error as exc:
        result.error(result.rows + 2, "", f"the file cannot be read as CSV from here on ({exc}); "
                                          "the rows before it are imported")
    _store(pending, result, stream, progress)
    db.session.add(AuditLog(actor_id=actor_id, action="import.intent", target_type="intent",
                            details={"created": result.events, "unchanged": result.duplicates,
                                     "rejected": result.rejected, "rows": result.rows}))
    db.session.commit()
    return result


def _store(pending: list[str], result: SurgeResult, stream: BinaryIO,
           progress: Callable[[int], None] | None) -> None:
    if pending:
        stored = events.store(pending)
        result.events += stored.stored
        result.duplicates += stored.duplicates
        result.unmatched += stored.stored - stored.matched
        pending.clear()
    if progress is not None:
        progress(stream.tell())
