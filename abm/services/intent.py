"""Third-party intent: a Company Surge file (Bombora's shape) as ``intent`` events.

An intent provider says, per company, week and topic, how strongly the company is
researching the topic (a composite score from 0 to 100; Bombora calls 60 and more a
surge). Each row becomes one ``intent`` event of the account with the company's domain,
``properties = {topic, score, provider, company}``, on the week's first day, with a
de-duplication key of (provider, domain, topic, week): importing overlapping files never
counts a week twice. A domain that matches no account yet is kept and matched when the
account appears. Bad rows are reported by row and column; good rows are kept.

G2's buyer-intent webhook (:mod:`connectors.g2`) makes the same events.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from abm.normalize import NormalizeError, normalize_domain
from abm.services import events
from abm.services.ad_reports import AdReportResult
from abm.services.imports.cells import header_key

ALIASES = {
    "domain": ("domain", "company domain", "website", "company website"),
    "company": ("company name", "company", "account name"),
    "topic": ("topic", "topic name", "intent topic"),
    "score": ("composite score", "score", "surge score", "topic score"),
    "week": ("week", "week of", "week start", "date", "week start date"),
}
REQUIRED = ("domain", "topic", "score", "week")
BATCH = 5000


#: What an import did: rows read, events stored, already known, kept unmatched, row errors
#: (the same report as an ad-engagement file's).
SurgeResult = AdReportResult


class SurgeFileError(ValueError):
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


def _row_event(row: list[str], cols: dict[str, int], row_no: int, provider: str,
               result: SurgeResult) -> dict | None:
    cell = lambda name: row[cols[name]].strip() if cols.get(name) is not None and cols[name] < len(row) else ""  # noqa: E731
    problems = []
    try:
        domain = normalize_domain(cell("domain"))
    except NormalizeError as exc:
        problems.append(("domain", str(exc)))
    topic = cell("topic")[:200]
    if not topic:
        problems.append(("topic", "empty"))
    try:
        score = _score(cell("score"))
    except ValueError as exc:
        problems.append(("score", str(exc)))
    try:
        week = _week(cell("week"))
    except ValueError as exc:
        problems.append(("week", str(exc)))
    for column, message in problems:
        result.errors.append({"row": row_no, "column": column, "message": message})
    if problems:
        return None
    return {"type": "intent", "occurred_at": week.isoformat(), "account_domain": domain, "source": provider,
            "dedup_key": f"intent:{provider}:{domain}:{topic.lower()}:{week.date().isoformat()}"[:200],
            "properties": {"topic": topic, "score": score, "provider": provider,
                           "company": cell("company")[:300] or None}}


def import_surge(stream, provider: str = "bombora") -> SurgeResult:
    """Read a Company Surge CSV (bytes stream) and store its rows as intent events."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text)
    try:
        headers = next(reader)
    except StopIteration:
        raise SurgeFileError("the file is empty") from None
    except UnicodeDecodeError:
        raise SurgeFileError("the file is not UTF-8 text") from None
    cols = _columns(headers)
    missing = [name for name in REQUIRED if name not in cols]
    if missing:
        raise SurgeFileError(f"the header has no {', '.join(missing)} column (it needs domain, topic, "
                             "composite score and week)")
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
                _store(pending, result)
    except UnicodeDecodeError:
        result.errors.append({"row": result.rows + 2, "column": "", "message": "not UTF-8 text from here on"})
    _store(pending, result)
    return result


def _store(pending: list[str], result: SurgeResult) -> None:
    if pending:
        stored = events.store(pending)
        result.events += stored.stored
        result.duplicates += stored.duplicates
        result.unmatched += stored.stored - stored.matched
        pending.clear()

