"""Ad-platform engagement reports as account events.

LinkedIn's company engagement report (and like exports from other ad platforms) gives,
per company and day, impressions and clicks. Each row becomes up to two account
events (``ad_impression`` and ``ad_click``) carrying the count as their ``quantity``,
with a de-duplication key of (source, company, day, type): importing overlapping
reports never counts a day twice. Rows are matched to accounts by domain, else by
exact company name; a domain that matches nothing yet is kept and matched when the
account appears. Bad rows are reported by row and column; good rows are kept.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select

from abm.db import db
from abm.models import Account
from abm.normalize import NormalizeError, normalize_domain
from abm.services import events

ALIASES = {
    "name": ("company name", "company", "account name", "organization", "organization name"),
    "domain": ("company website", "website", "domain", "company domain", "company website url", "website url"),
    "date": ("date", "day", "start date (in utc)", "start date", "report date"),
    "impressions": ("impressions", "paid impressions", "total impressions"),
    "clicks": ("clicks", "paid clicks", "total clicks", "engagements", "total engagements"),
}
BATCH = 5000


@dataclass
class AdReportResult:
    rows: int = 0
    events: int = 0
    duplicates: int = 0
    unmatched: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "events": self.events, "duplicates": self.duplicates,
                "unmatched": self.unmatched, "errors": self.errors}


def _key(header: str) -> str:
    return " ".join(header.replace("\ufeff", "").strip().lower().replace("_", " ").split())


def _columns(headers: list[str]) -> dict[str, int]:
    found = {}
    for i, h in enumerate(headers):
        for field_name, names in ALIASES.items():
            if _key(h) in names and field_name not in found:
                found[field_name] = i
    return found


def _date(value: str) -> datetime:
    value = value.strip()
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d"):
        try:
            return datetime.strptime(value, fmt).replace(hour=12, tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD or MM/DD/YYYY)")


def _count(value: str) -> int:
    text = (value or "0").strip().replace(",", "").replace(" ", "") or "0"
    number = float(text)
    if number < 0 or number != int(number):
        raise ValueError(f"{value!r} is not a whole, non-negative number")
    return int(number)


def import_report(stream, source: str = "linkedin") -> AdReportResult:
    """Read a report (bytes stream) and store its events in batches."""
    raw = stream.read()
    result = AdReportResult()
    text = _text(raw, result)
    if text is None:
        return result
    lines = text.splitlines(keepends=True)
    # LinkedIn exports start with a few lines of report metadata before the header row
    start = next((i for i, line in enumerate(lines[:20])
                  if len(_columns(next(csv.reader([line], _dialect(line))))) >= 3), None)
    if start is None:
        result.errors.append({"row": 1, "column": None, "message":
                              "no header row with a company (name or website), a date and impressions or clicks"})
        return result
    dialect = _dialect(lines[start])
    reader = csv.reader(io.StringIO("".join(lines[start:])), dialect)
    cols = _columns(next(reader))
    if "date" not in cols or not ({"name", "domain"} & set(cols)) or not ({"impressions", "clicks"} & set(cols)):
        result.errors.append({"row": start + 1, "column": None, "message":
                              "the header needs a company (name or website), a date, and impressions or clicks"})
        return result
    pending: list[tuple[int, dict]] = []
    for offset, row in enumerate(reader):
        row_no = start + 2 + offset
        if not any(cell.strip() for cell in row):
            continue
        result.rows += 1
        parsed = _parse_row(row, cols, row_no, result)
        if parsed:
            pending.append((row_no, parsed))
        if len(pending) >= BATCH:
            _store(pending, source, result, events)
            pending = []
    if pending:
        _store(pending, source, result, events)
    result.errors.sort(key=lambda e: e["row"])
    return result


def _text(raw: bytes, result: AdReportResult) -> str | None:
    """The report's text (UTF-8, or UTF-16 with its byte order mark); None, with the
    row of the first byte that is not text in ``result.errors``, otherwise."""
    encoding = "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        row = raw[: exc.start].count(b"\n") + 1
        result.errors.append({"row": row, "column": None, "message":
                              f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at row {row}); "
                              "export the report again as CSV (UTF-8)"})
        return None
    if "\x00" in text:
        row = text[: text.index("\x00")].count("\n") + 1
        result.errors.append({"row": row, "column": None,
                              "message": f"the file holds a NUL character at row {row}; is it a CSV file?"})
        return None
    return text


def _dialect(line: str):
    return "excel-tab" if line.count("\t") > max(line.count(","), line.count(";")) else (
        _Semicolon if line.count(";") > line.count(",") else "excel")


class _Semicolon(csv.excel):
    delimiter = ";"


def _cell(row, cols, name):
    i = cols.get(name)
    return row[i].strip() if i is not None and i < len(row) else ""


def _parse_row(row, cols, row_no, result) -> dict | None:
    try:
        day = _date(_cell(row, cols, "date"))
    except ValueError as exc:
        result.errors.append({"row": row_no, "column": "date", "message": str(exc)})
        return None
    counts = {}
    for name in ("impressions", "clicks"):
        try:
            counts[name] = _count(_cell(row, cols, name))
        except ValueError as exc:
            result.errors.append({"row": row_no, "column": name, "message": str(exc)})
            return None
    domain = None
    if _cell(row, cols, "domain"):
        try:
            domain = normalize_domain(_cell(row, cols, "domain"))
        except NormalizeError as exc:
            result.errors.append({"row": row_no, "column": "domain", "message": str(exc)})
            return None
    name = _cell(row, cols, "name")
    if not domain and not name:
        result.errors.append({"row": row_no, "column": "name", "message": "no company name or website"})
        return None
    return {"day": day, "domain": domain, "name": name, **counts}


def _store(pending, source, result, events) -> None:
    names = {p["name"].lower() for _, p in pending if not p["domain"] and p["name"]}
    by_name = {}
    if names:
        for aid, n in db.session.execute(select(Account.id, func.lower(Account.name))
                                         .where(func.lower(Account.name).in_(names))):
            by_name.setdefault(n, aid)
    lines = []
    for row_no, p in pending:
        ident = {"account_domain": p["domain"]} if p["domain"] else None
        if ident is None:
            aid = by_name.get(p["name"].lower())
            if aid is None:
                result.errors.append({"row": row_no, "column": "name", "message":
                                      f"no account is named {p['name']!r} and the row has no website"})
                continue
            ident = {"account_id": aid}
        company = p["domain"] or f"name:{p['name'].lower()}"
        for etype, count in (("ad_impression", p["impressions"]), ("ad_click", p["clicks"])):
            if count:
                lines.append(events.stamp({
                    "type": etype, "occurred_at": p["day"].isoformat(), "quantity": count, "source": source,
                    "dedup_key": f"adreport:{source}:{company}:{p['day'].date().isoformat()}:{etype}",
                    "properties": {"report": source}, **ident}))
    if lines:
        stored = events.store(lines)
        result.events += stored.stored
        result.duplicates += stored.duplicates
        result.unmatched += stored.stored - stored.matched
