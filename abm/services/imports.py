"""CSV import of accounts and contacts, as real CRMs export them.

``import_accounts(stream)`` and ``import_contacts(stream)`` read a CSV file (a binary
stream) in one pass and write it in batches: one lookup and one
``INSERT ... ON CONFLICT DO UPDATE`` per batch, never a database round trip per row,
so memory stays flat whatever the size of the file. Good rows are imported; bad rows
are reported with their row number as a spreadsheet shows it (the header is row 1).

What the importer accepts and the choices it makes are written down in
``docs/imports.md``; the short version:

- headers are matched case- and punctuation-insensitively against the aliases below
  (HubSpot and Salesforce export names included); every other column is kept, per
  row, in the record's ``attributes`` under a snake_case key, and the report lists it;
- UTF-8 (with or without a BOM), UTF-16 with a BOM, or Windows-1252; the delimiter
  (comma, semicolon, tab or pipe) is sniffed from the header line;
- an empty cell never erases what is stored; a column that cannot be read in a row
  (owner, stage, tier, ...) is reported and the rest of the row is imported; a row
  whose key (domain, email) is unusable is rejected;
- duplicate keys in one file: the last row wins, the earlier ones are reported.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import String, any_, case, column, func, literal, select, text
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from abm.db import db, utcnow
from abm.models import Account, AuditLog, Contact, StageChange, Suppression, User
from abm.normalize import (
    FREE_MAIL_DOMAINS,
    NormalizeError,
    company_domain_of,
    normalize_domain,
    normalize_email,
)

BATCH_SIZE = 2000
MAX_LISTED = 1000  # errors and skipped rows listed in a report; the rest are counted
SNIFF_BYTES = 64 * 1024
MAX_INT = 2_147_483_647
MAX_REVENUE = Decimal("9999999999999999")

ProgressFn = Callable[[int], None]


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no usable header, unreadable)."""


def header_key(text: str) -> str:
    """``"Country/Region"`` -> ``"countryregion"``: how headers and aliases are compared."""
    return re.sub(r"[^0-9a-z]", "", (text or "").casefold())


def attribute_key(text: str) -> str:
    """``"Lead Source (HubSpot)"`` -> ``"lead_source_hubspot"``: the attribute an unknown column becomes."""
    return re.sub(r"[\W_]+", "_", (text or "").casefold()).strip("_")


_PLAIN_DOMAIN = re.compile(r"(?:www\.)?((?:[a-z0-9-]{1,63}\.)+[a-z0-9-]{1,63})")
_PLAIN_LABEL = re.compile(r"^(?!-)(?!..--)[a-z0-9-]{1,63}(?<!-)$")
_PLAIN_EMAIL = re.compile(r"([^@\s]+)@([a-z0-9.-]+)")


@functools.lru_cache(maxsize=65536)  # a file's contacts share their companies' domains
def _plain_domain(text: str) -> str | None:
    """The common case, without IDNA: ``acme.com`` or ``www.acme.com`` in lower case."""
    m = _PLAIN_DOMAIN.fullmatch(text)
    if m is None or (text.startswith("www.") and m.group(1) == text):
        return None
    labels = m.group(1).split(".")
    if labels[-1].isdigit() or not all(_PLAIN_LABEL.match(label) for label in labels):
        return None
    return m.group(1)


def domain_of(value: str) -> str:
    """:func:`abm.normalize.normalize_domain`, fast for the plain ASCII names most cells hold."""
    return _plain_domain(value.strip().lower()) or normalize_domain(value)


def email_of(value: str) -> str:
    """:func:`abm.normalize.normalize_email`, fast for plain ASCII addresses."""
    m = _PLAIN_EMAIL.fullmatch(value.strip().lower())
    if m is not None and ":" not in m.group(1) and not m.group(2).startswith("www."):
        domain = _plain_domain(m.group(2))
        if domain is not None:
            return f"{m.group(1)}@{domain}"
    return normalize_email(value)


def email_hash(email: str) -> str:
    """The suppression list's form of an email: SHA-256 of the normalised address."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


# Aliases per field, most specific first: when several columns map to one field, the
# first non-empty cell in this order is used (HubSpot exports carry both "Company
# Domain Name" and "Website URL").
_COUNTRY = ["country", "country/region", "billing country", "hq country", "mailing country",
            "shipping country", "country name"]
ACCOUNT_ALIASES: dict[str, list[str]] = {
    "domain": ["domain", "company domain name", "company domain", "account domain", "domain name",
               "website", "website url", "company website", "web site", "url", "account website"],
    "name": ["name", "company name", "account name", "company", "account", "organization",
             "organisation", "organization name", "organisation name"],
    "industry": ["industry", "industry type", "sector", "vertical"],
    "employees": ["employees", "number of employees", "no of employees", "no. of employees",
                  "employee count", "num employees", "numberofemployees", "headcount", "company size"],
    "annual_revenue": ["annual revenue", "annualrevenue", "revenue", "total revenue"],
    "country": _COUNTRY,
    "tier": ["tier", "account tier", "abm tier", "target tier", "ideal customer profile tier", "icp tier"],
    "owner": ["owner", "owner email", "account owner", "account owner email", "company owner",
              "company owner email", "hubspot owner", "sales owner"],
    "stage": ["stage", "abm stage", "account stage", "lifecycle stage"],
    "timezone": ["time zone", "timezone", "tz"],
    "tags": ["tags", "labels"],
    "notes": ["notes", "description", "company description", "account description"],
    "crm_hubspot": ["record id", "hubspot id", "hubspot company id", "company id"],
    "crm_salesforce": ["account id", "salesforce id", "salesforce account id", "sfdc id"],
}
CONTACT_ALIASES: dict[str, list[str]] = {
    "email": ["email", "email address", "e-mail", "work email", "business email", "primary email"],
    "first_name": ["first name", "firstname", "given name"],
    "last_name": ["last name", "lastname", "surname", "family name"],
    "full_name": ["name", "full name", "contact name"],
    "title": ["title", "job title", "jobtitle", "position"],
    "buying_role": ["buying role", "buying roles", "role", "buying committee role"],
    "country": _COUNTRY,
    "phone": ["phone", "phone number", "work phone", "business phone"],
    "account_domain": ["account domain", "company domain", "company domain name", "company website",
                       "account website", "website", "website url", "domain"],
    "crm_hubspot": ["record id", "hubspot id", "hubspot contact id"],
    "crm_salesforce": ["contact id", "salesforce id", "salesforce contact id", "sfdc id"],
}
#: Column widths of the models: a longer cell is an error on that column, not a failed batch.
LIMITS = {"name": 300, "industry": 100, "country": 100, "notes": 100_000, "first_name": 100,
          "last_name": 100, "title": 200, "phone": 50, "email": 320}
#: CRM stage names read as the default stages when the settings' crm_stage_map says nothing
#: (HubSpot lifecycle stages, internal values and labels; Salesforce closed deals).
CRM_STAGES = {"subscriber": "target", "lead": "aware", "marketingqualifiedlead": "mqa", "mql": "mqa",
              "salesqualifiedlead": "mqa", "sql": "mqa", "evangelist": "customer", "closedwon": "customer",
              "closedlost": "lost"}
#: Buying-role names CRMs use, to the workspace's roles (HubSpot's hs_buying_role values).
ROLE_SYNONYMS = {"decisionmaker": "decision_maker", "budgetholder": "decision_maker",
                 "economicbuyer": "decision_maker", "executivesponsor": "decision_maker",
                 "enduser": "user", "legalandcompliance": "other", "blocker": "blocker"}


@dataclass
class ImportReport:
    """What an import did. ``rows`` = created + updated + skipped + rejected."""

    kind: str
    created: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    rows: int = 0
    unlinked: int = 0
    errors: list[dict] = field(default_factory=list)
    errors_total: int = 0
    skipped_rows: list[dict] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    attribute_columns: dict[str, str] = field(default_factory=dict)
    encoding: str = ""
    delimiter: str = ""

    def error(self, row: int, column: str, message: str) -> None:
        self.errors_total += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append({"row": row, "column": column, "message": message})

    def skip(self, row: int, column: str, reason: str) -> None:
        self.skipped += 1
        if len(self.skipped_rows) < MAX_LISTED:
            self.skipped_rows.append({"row": row, "column": column, "reason": reason})

    def merge(self, other: ImportReport) -> None:
        """Add what ``other`` (a batch's report) counted and listed."""
        for name in ("created", "updated", "skipped", "rejected", "unlinked", "errors_total"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors[:MAX_LISTED - len(self.errors)])
        self.skipped_rows.extend(other.skipped_rows[:MAX_LISTED - len(self.skipped_rows)])

    def to_dict(self) -> dict:
        out = {"created": self.created, "updated": self.updated, "skipped": self.skipped,
               "rejected": self.rejected, "errors": self.errors}
        if self.errors_total > len(self.errors):
            out["errors_not_listed"] = self.errors_total - len(self.errors)
        out.update(rows=self.rows, errors_total=self.errors_total, skipped_rows=self.skipped_rows,
                   columns=self.columns, attribute_columns=self.attribute_columns,
                   encoding=self.encoding, delimiter=self.delimiter)
        if self.kind == "contacts":
            out["unlinked"] = self.unlinked
        return out


# --------------------------------------------------------------------------- reading


def _utf8_then_cp1252(exc: UnicodeDecodeError):
    """Decoding error handler: a byte that is not UTF-8 is read as Windows-1252."""
    bad = exc.object[exc.start:exc.start + 1]
    return bad.decode("cp1252", errors="_abm_latin1"), exc.start + 1


def _latin1(exc: UnicodeDecodeError):
    # The five bytes Windows-1252 leaves undefined are read as Latin-1 control characters.
    return exc.object[exc.start:exc.end].decode("latin-1"), exc.end


codecs.register_error("_abm_latin1", _latin1)
codecs.register_error("_abm_utf8_cp1252", _utf8_then_cp1252)


class _CountingReader(io.RawIOBase):
    """A raw stream over ``prefix`` then ``stream``, counting the bytes handed out."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
        else:
            data = self._stream.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self.count += n
        return n


def _detect_encoding(sample: bytes) -> tuple[str, str, int]:
    """(encoding, errors handler, BOM length) from the first bytes of the file."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8", "_abm_utf8_cp1252", 3
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "strict", 0
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "cp1252", "_abm_latin1", 0
    return "utf-8", "_abm_utf8_cp1252", 0


def _sniff_delimiter(text: str) -> str:
    """The delimiter most used, outside quotes, in the first non-blank line."""
    line, quoted = [], False
    started = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if not quoted and ch in "\r\n":
            if started:
                break
            continue
        if ch.strip():
            started = True
        line.append(ch)
    counts = {d: 0 for d in (",", ";", "\t", "|")}
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class _Source:
    """The rows of a CSV stream, with their spreadsheet row numbers and bytes read."""

    def __init__(self, stream: BinaryIO) -> None:
        sample = stream.read(SNIFF_BYTES) or b""
        encoding, errors, bom = _detect_encoding(sample)
        self.encoding = {"utf-8": "utf-8", "cp1252": "windows-1252", "utf-16": "utf-16"}[encoding]
        self.raw = _CountingReader(sample[bom:], stream)
        text = io.TextIOWrapper(io.BufferedReader(self.raw, 1 << 16), encoding=encoding,
                                errors=errors, newline="")
        head = sample[bom:].decode(encoding, errors="replace")
        self.delimiter = _sniff_delimiter(head)
        csv.field_size_limit(1 << 20)
        self._reader = csv.reader(text, delimiter=self.delimiter)
        self.row = 0

    def __iter__(self) -> Iterator[list[str]]:
        for record in self._reader:
            self.row += 1
            yield record

    @property
    def bytes_read(self) -> int:
        return self.raw.count


# --------------------------------------------------------------------------- cells


_SUFFIX = {"k": Decimal(1_000), "thousand": Decimal(1_000), "m": Decimal(1_000_000), "mm": Decimal(1_000_000),
           "mn": Decimal(1_000_000), "million": Decimal(1_000_000), "b": Decimal(1_000_000_000),
           "bn": Decimal(1_000_000_000), "billion": Decimal(1_000_000_000)}
_AMOUNT = re.compile(r"^([0-9][0-9.,' ]*)\s*([a-z]*)$")


def parse_amount(text: str) -> Decimal:
    """``"1,200"``, ``"$5M"``, ``"€2,5 Mio"``-free forms, ``"10,001+"``, ``"51-200"`` (lower bound).

    Thousands separators (``,`` ``.`` ``'`` space) and a decimal comma are understood; a
    currency symbol or ISO code is ignored. Raises ValueError with a message.
    """
    raw = text.strip()
    if raw.isascii() and raw.isdigit():
        return Decimal(raw)  # the common case, without the regular expressions below
    t = raw.casefold()
    t = re.sub(r"^(usd|eur|gbp|chf|cad|aud|jpy)\s*|\s*(usd|eur|gbp|chf|cad|aud|jpy)$", "", t)
    t = t.replace("$", "").replace("€", "").replace("£", "").replace("¥", "").strip()
    if t.startswith("-"):
        raise ValueError(f"{raw!r} is negative")
    t = re.split(r"\s*(?:-|–|to)\s*(?=\d)", t, maxsplit=1)[0].rstrip("+").strip()
    m = _AMOUNT.match(t)
    if not m or (m.group(2) and m.group(2) not in _SUFFIX):
        raise ValueError(f"{raw!r} is not a number (write it like 1200, 1,200 or 5M)")
    digits = m.group(1).replace("'", "").replace(" ", "")
    if "," in digits and "." in digits:
        decimal_sep = "," if digits.rfind(",") > digits.rfind(".") else "."
    elif "," in digits:
        decimal_sep = "." if re.fullmatch(r"\d{1,3}(,\d{3})+", digits) else ","
    elif digits.count(".") > 1 or re.fullmatch(r"\d{1,3}(\.\d{3})+", digits) and not m.group(2):
        decimal_sep = ","
    else:
        decimal_sep = "."
    thousands = "," if decimal_sep == "." else "."
    digits = digits.replace(thousands, "").replace(decimal_sep, ".")
    try:
        value = Decimal(digits)
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a number (write it like 1200, 1,200 or 5M)") from None
    return value * _SUFFIX.get(m.group(2), Decimal(1))


def parse_tier(text: str) -> int:
    m = re.fullmatch(r"(?:tier|t)?[\s_-]*(\d+)(?:\.0+)?", text.strip().casefold())
    if not m or not 1 <= int(m.group(1)) <= 9:
        raise ValueError(f"{text.strip()!r} is not a tier (a whole number from 1 to 9, such as 1 or 'Tier 1')")
    return int(m.group(1))


def split_tags(text: str) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in re.split(r"[;|,]", text) if t.strip()))


# --------------------------------------------------------------------------- header


@dataclass
class _Header:
    fields: dict[str, list[int]]  # field -> column indexes, preferred first
    attributes: list[tuple[int, str]]  # (column index, attribute key)
    width: int


def _match_header(cells: list[str], aliases: dict[str, list[str]], report: ImportReport) -> _Header:
    lookup: dict[str, tuple[str, int]] = {}
    for name, names in aliases.items():
        for rank, alias in enumerate(names):
            lookup.setdefault(header_key(alias), (name, rank))
    found: dict[str, list[tuple[int, int]]] = {}
    attributes: list[tuple[int, str]] = []
    for index, cell in enumerate(cells):
        key = header_key(cell)
        if key in lookup:
            name, rank = lookup[key]
            found.setdefault(name, []).append((rank, index))
            report.columns[cell.strip()] = name
        elif cell.strip():
            attr = attribute_key(cell) or f"column_{index + 1}"
            attributes.append((index, attr))
            report.attribute_columns[cell.strip()] = attr
        else:
            attributes.append((index, f"column_{index + 1}"))
            report.attribute_columns[f"(column {index + 1}, no header)"] = f"column_{index + 1}"
    fields = {name: [i for _, i in sorted(cols)] for name, cols in found.items()}
    return _Header(fields, attributes, len(cells))


def _no_header(kind: str, key: str, aliases: dict[str, list[str]], cells: list[str] | None) -> ImportFileError:
    names = ", ".join(repr(a.title()) for a in aliases[key][:6])
    seen = ", ".join(repr(c.strip()) for c in (cells or []) if c.strip())[:300] or "nothing"
    return ImportFileError(
        f"no usable header: the first row of a {kind} file must name its columns and include "
        f"a {key} column ({names}, ...); found {seen}")


# --------------------------------------------------------------------------- rows


class _Row:
    """One parsed data row: its number, its values (field -> value) and attributes."""

    __slots__ = ("number", "values", "attributes", "crm_ids")

    def __init__(self, number: int) -> None:
        self.number = number
        self.values: dict = {}
        self.attributes: dict = {}
        self.crm_ids: dict = {}


class _Importer:
    kind = ""
    key = ""
    aliases: dict[str, list[str]] = {}
    model = None

    def __init__(self, actor_id: int | None, progress: ProgressFn | None, batch_size: int) -> None:
        from abm.services import settings as settings_service

        self.actor_id = actor_id
        self.progress = progress
        self.batch_size = batch_size
        self.report = ImportReport(self.kind)
        self.started = utcnow()
        self.settings = settings_service.current()
        self.dialect = db.dialect

    # -- driving

    def run(self, stream: BinaryIO) -> ImportReport:
        source = _Source(stream)
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
            raise _no_header(self.kind, self.key, self.aliases, None)
        self.header = _match_header(header, self.aliases, self.report)
        if self.key not in self.header.fields:
            raise _no_header(self.kind, self.key, self.aliases, header)
        self.prepare()
        db.session.commit()  # end the lookups' transaction: the writer thread writes
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="abm-import") as writer:
            self._read_rows(rows, source, writer)
        self.finish()
        self.report.errors.sort(key=lambda e: e["row"])
        self.report.skipped_rows.sort(key=lambda s: s["row"])
        db.session.add(AuditLog(actor_id=self.actor_id, action=f"import.{self.kind}", target_type=self.kind,
                                details={k: v for k, v in self.report.to_dict().items()
                                         if k in ("created", "updated", "skipped", "rejected", "rows")}))
        db.session.commit()
        return self.report

    def _read_rows(self, rows: Iterator[list[str]], source: _Source, writer: ThreadPoolExecutor) -> None:
        """Parse rows into batches; each batch is written by ``writer`` while the next is parsed.

        One batch is written at a time, in file order, so a later batch sees what the
        earlier ones wrote; at most two batches are held in memory.
        """
        batch: dict[str, _Row] = {}
        pending: Future | None = None

        def hand_over(batch):
            nonlocal pending
            if pending is not None:
                self.report.merge(pending.result())
                self._progress(source)
            pending = writer.submit(self._write_batch, list(batch.values())) if batch else None

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

    def _progress(self, source: _Source) -> None:
        if self.progress is not None:
            self.progress(source.bytes_read)

    def prepare(self) -> None:
        """Lookups made once per import (users, stages)."""

    def finish(self) -> None:
        """Work after the last batch."""

    # -- parsing

    def cell(self, cells: list[str], name: str) -> tuple[str, str] | None:
        """(column name, text) of the first non-empty cell mapped to ``name`` (cells are stripped)."""
        indexes = self.header.fields.get(name)
        if indexes:
            for index in indexes:
                if index < len(cells) and cells[index]:
                    return self._names[index], cells[index]
        return None

    def column_name(self, index: int) -> str:
        return self._names[index]

    def parse(self, cells: list[str], number: int) -> _Row | None:
        if len(cells) > self.header.width and any(cells[self.header.width:]):
            self.report.error(number, "(row)", f"this row has {len(cells)} cells but the header has "
                                               f"{self.header.width} (a delimiter inside an unquoted cell?); "
                                               "row not imported")
            return None
        row = _Row(number)
        for index, attr in self.header.attributes:
            if index < len(cells) and cells[index]:
                row.attributes[attr] = cells[index]
        for crm in ("hubspot", "salesforce"):
            got = self.cell(cells, f"crm_{crm}")
            if got:
                row.crm_ids[crm] = got[1]
        return row if self.parse_fields(cells, row) else None

    def text(self, cells, row: _Row, name: str) -> None:
        got = self.cell(cells, name)
        if got is None:
            return
        column, value = got
        limit = LIMITS.get(name)
        if limit and len(value) > limit:
            self.report.error(row.number, column, f"longer than {limit} characters; this cell was not imported")
            return
        row.values[name] = value

    def parse_fields(self, cells, row: _Row) -> bool:
        raise NotImplementedError

    # -- writing

    def _write_batch(self, rows: list[_Row]) -> ImportReport:
        """Write one batch in the writer thread (its own session); returns what it counted."""
        try:
            return self._write_or_split(rows)
        finally:
            db.session.remove()

    def _write_or_split(self, rows: list[_Row]) -> ImportReport:
        self.out = ImportReport(self.kind)
        try:
            self.write(rows)
            db.session.commit()
            return self.out
        except DBAPIError as exc:
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

    def write(self, rows: list[_Row]) -> None:
        raise NotImplementedError

    def merged_json(self, table, column: str, excluded):
        """The stored JSON object with the new keys laid over it."""
        if self.dialect == "postgresql":
            return table.c[column].op("||")(excluded[column])
        return func.json_patch(table.c[column], excluded[column])

    def among(self, column, keys: list[str]):
        """``column IN keys``; one array parameter on PostgreSQL (thousands of parameters are slow)."""
        if self.dialect == "postgresql":
            return column == any_(literal(keys, ARRAY(String)))
        return column.in_(keys)

    def existing(self, column, keys: list[str]) -> dict[str, tuple]:
        table = self.model.__table__
        q = select(table.c[self.key], table.c.id, table.c.updated_at, *self.extra_columns()).where(
            self.among(column, keys))
        return {r[0]: tuple(r[1:]) for r in db.session.execute(q)}

    def upsert(self, table, params: list[dict], set_of, returning: tuple = ()):
        """``INSERT ... ON CONFLICT (key) DO UPDATE`` of many rows in one statement.

        On PostgreSQL the rows are first COPYed into a temporary table and inserted from
        it (``INSERT ... SELECT ... ON CONFLICT``), the fastest upsert there is; on SQLite
        they go as multi-row VALUES. ``set_of(excluded)`` gives the SET clause.
        """
        if self.dialect == "postgresql":
            names = list(params[0])
            staging = f"_abm_import_{table.name}"
            db.session.execute(text(f'CREATE TEMP TABLE "{staging}" ON COMMIT DROP AS '
                                    f'SELECT {", ".join(names)} FROM "{table.name}" WITH NO DATA'))
            copy_rows(staging, names, (tuple(p[n] for n in names) for p in params))
            source = sql_table(staging, *(column(n) for n in names))
            stmt = pg_insert(table).from_select(names, select(*source.c))
        else:
            stmt = sqlite_insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=[self.key], set_=set_of(stmt.excluded))
        if returning:
            stmt = stmt.returning(*returning)
        if self.dialect == "postgresql":
            return db.session.execute(stmt)
        return db.session.execute(stmt, params)

    def insert_rows(self, table, rows: list[dict]) -> None:
        if not rows:
            return
        if self.dialect == "postgresql":
            names = list(rows[0])
            copy_rows(table.name, names, (tuple(r[n] for n in names) for r in rows))
        else:
            db.session.execute(table.insert(), rows)

    def extra_columns(self) -> tuple:
        return ()

    def count(self, rows: list[_Row], found: dict[str, tuple]) -> None:
        for row in rows:
            known = found.get(row.values[self.key])
            if known is None:
                self.out.created += 1
            elif known[1] is not None and known[1] >= self.started:
                self.out.skip(row.number, self.key,
                                 f"an earlier row has the same {self.key} ({row.values[self.key]}); "
                                 "this later row's values replaced it (the last row wins)")
            else:
                self.out.updated += 1


def _coalesce_update(table, excluded, names) -> dict:
    return {n: func.coalesce(excluded[n], table.c[n]) for n in names}


class _AccountImporter(_Importer):
    kind = "accounts"
    key = "domain"
    aliases = ACCOUNT_ALIASES
    model = Account
    NULLABLE = ("industry", "employees", "annual_revenue", "country", "tier", "owner_id", "timezone", "notes")

    def prepare(self) -> None:
        self._names = _column_names(self.header)
        self.zones: set[str] = set()
        users = db.session.execute(select(User.id, User.email, User.name)).all()
        self.owner_by_email = {u.email.lower(): u.id for u in users}
        by_name: dict[str, list[int]] = {}
        for u in users:
            if u.name:
                by_name.setdefault(u.name.casefold(), []).append(u.id)
        self.owner_by_name = {n: ids[0] for n, ids in by_name.items() if len(ids) == 1}
        self.stages = {header_key(s): s for s in self.settings["stages"]}
        mapped = list((self.settings.get("crm_stage_map") or {}).items()) + list(CRM_STAGES.items())
        for crm_name, stage in mapped:  # the stages' own names first, then the settings' map
            if stage in self.settings["stages"]:
                self.stages.setdefault(header_key(crm_name), stage)

    def parse_fields(self, cells, row: _Row) -> bool:
        got = self.cell(cells, "domain")
        column = got[0] if got else self.column_name(self.header.fields["domain"][0])
        try:
            domain = domain_of(got[1] if got else "")
        except NormalizeError as exc:
            self.report.error(row.number, column, f"{exc}; row not imported")
            return False
        if domain in FREE_MAIL_DOMAINS:
            self.report.error(row.number, column, f"{domain} is a free-mail provider, not a company's "
                                                  "domain; row not imported")
            return False
        row.values["domain"] = domain
        for name in ("name", "industry", "country", "notes"):
            self.text(cells, row, name)
        self.number(cells, row, "employees", lambda v: int(v.to_integral_value()), MAX_INT)
        self.number(cells, row, "annual_revenue", lambda v: v.quantize(Decimal("0.01")), MAX_REVENUE)
        self.convert(cells, row, "tier", parse_tier)
        self.convert(cells, row, "tags", split_tags)
        self.convert(cells, row, "timezone", self.parse_timezone)
        self.convert(cells, row, "stage", self.parse_stage, " its stage was left unchanged")
        self.convert(cells, row, "owner", self.parse_owner, " its owner was left unchanged", "owner_id")
        return True

    def number(self, cells, row, name, shape, limit) -> None:
        def parse(text):
            value = shape(parse_amount(text))
            if value > limit:
                raise ValueError(f"{text!r} is too large")
            return value

        self.convert(cells, row, name, parse)

    def convert(self, cells, row, name, parse, left=" this cell was not imported", target=None) -> None:
        got = self.cell(cells, name)
        if got is None:
            return
        try:
            row.values[target or name] = parse(got[1])
        except ValueError as exc:
            self.report.error(row.number, got[0], f"{exc};{left}")

    def parse_timezone(self, text: str) -> str:
        if text not in self.zones:
            try:
                ZoneInfo(text)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {text!r} (use an IANA name such as Europe/Paris)") from None
            self.zones.add(text)
        return text

    def parse_stage(self, text: str) -> str:
        stage = self.stages.get(header_key(text))
        if stage is None:
            raise ValueError(f"unknown stage {text!r} (known: {', '.join(self.settings['stages'])}; "
                             "a CRM's stage names can be mapped in the settings' crm_stage_map)")
        return stage

    def parse_owner(self, text: str) -> int:
        owner = self.owner_by_email.get(text.lower()) or self.owner_by_name.get(text.casefold())
        if owner is None:
            raise ValueError(f"no user with the email or name {text!r} (create the user with "
                             "`abm users create`, then import again)")
        return owner

    def extra_columns(self) -> tuple:
        return (Account.stage,)

    def write(self, rows: list[_Row]) -> None:
        table = Account.__table__
        found = self.existing(table.c.domain, [r.values["domain"] for r in rows])
        params = []
        for r in rows:
            v, new = r.values, r.values["domain"] not in found
            params.append({
                "domain": v["domain"],
                "name": v.get("name") or (v["domain"] if new else ""),
                "stage": v.get("stage") or ("target" if new else ""),
                "tags": v.get("tags") or [],
                **{n: v.get(n) for n in self.NULLABLE},
                "attributes": r.attributes, "crm_ids": r.crm_ids,
                "created_at": self.started, "updated_at": self.started,
            })
        def set_of(ex):
            keep_if_blank = {n: case((ex[n] == "", table.c[n]), else_=ex[n]) for n in ("name", "stage")}
            empty_tags = (func.jsonb_array_length(ex.tags) if self.dialect == "postgresql"
                          else func.json_array_length(ex.tags)) == 0
            return {**_coalesce_update(table, ex, self.NULLABLE), **keep_if_blank,
                    "tags": case((empty_tags, table.c.tags), else_=ex.tags),
                    "attributes": self.merged_json(table, "attributes", ex),
                    "crm_ids": self.merged_json(table, "crm_ids", ex),
                    "updated_at": ex.updated_at}

        ids = {d: i for i, d in self.upsert(table, params, set_of, (table.c.id, table.c.domain))}
        changes = []
        for r in rows:
            stage = r.values.get("stage")
            if not stage:
                continue
            before = found.get(r.values["domain"])
            old = before[2] if before else None
            if old != stage:
                changes.append({"account_id": ids[r.values["domain"]], "from_stage": old, "to_stage": stage,
                                "changed_at": self.started, "source": "import", "actor_id": self.actor_id})
        self.insert_rows(StageChange.__table__, changes)
        self.count(rows, found)

    def finish(self) -> None:
        """Contacts that had no account are linked to a new account of their email's domain."""
        if not self.report.created:
            return
        c = Contact.__table__
        if self.dialect == "postgresql":
            domain_of = func.split_part(c.c.email, "@", 2)
        else:
            domain_of = func.substr(c.c.email, func.instr(c.c.email, "@") + 1)
        a = Account.__table__
        match = select(a.c.id).where(a.c.domain == domain_of)
        db.session.execute(c.update().where(c.c.account_id.is_(None), c.c.email.is_not(None),
                                            domain_of.not_in(sorted(FREE_MAIL_DOMAINS)), match.exists())
                           .values(account_id=match.scalar_subquery()))
        db.session.commit()


class _ContactImporter(_Importer):
    kind = "contacts"
    key = "email"
    aliases = CONTACT_ALIASES
    model = Contact
    NULLABLE = ("first_name", "last_name", "title", "buying_role", "country", "phone", "account_id")

    def prepare(self) -> None:
        self._names = _column_names(self.header)
        roles = self.settings["roles"]
        self.roles = {header_key(r): r for r in roles}
        for alias, role in ROLE_SYNONYMS.items():
            if role in roles:
                self.roles.setdefault(alias, role)

    def parse_fields(self, cells, row: _Row) -> bool:
        got = self.cell(cells, "email")
        column = got[0] if got else self.column_name(self.header.fields["email"][0])
        try:
            email = email_of(got[1] if got else "")
            if len(email) > LIMITS["email"]:
                raise NormalizeError("the email is longer than 320 characters")
        except NormalizeError as exc:
            self.report.error(row.number, column, f"{exc}; row not imported")
            return False
        row.values["email"] = email
        for name in ("first_name", "last_name", "title", "country", "phone"):
            self.text(cells, row, name)
        full = self.cell(cells, "full_name")
        if full and "first_name" not in row.values and "last_name" not in row.values:
            first, _, last = full[1].partition(" ")
            row.values["first_name"] = first[:100]
            if last.strip():
                row.values["last_name"] = last.strip()[:100]
        got = self.cell(cells, "buying_role")
        if got:
            first = re.split(r"[;|,]", got[1])[0]
            role = self.roles.get(header_key(first))
            if role is None:
                self.report.error(row.number, got[0], f"unknown buying role {got[1]!r} (known: "
                                  f"{', '.join(self.settings['roles'])}); the contact was imported without it")
            else:
                row.values["buying_role"] = role
        got = self.cell(cells, "account_domain")
        if got:
            try:
                row.values["account_domain"] = domain_of(got[1])
                row.values["account_domain_column"] = got[0]
            except NormalizeError as exc:
                self.report.error(row.number, got[0], f"{exc}; the contact's account was found by its "
                                                      "email's domain instead")
        return True

    def write(self, rows: list[_Row]) -> None:
        hashes = {email_hash(r.values["email"]): r for r in rows}
        suppressed = set(db.session.execute(
            select(Suppression.email_hash).where(self.among(Suppression.email_hash, list(hashes)))).scalars())
        kept = []
        for digest, r in hashes.items():
            if digest in suppressed:
                self.out.skip(r.number, "email", "this address is on the suppression list (erased or "
                                                    "asked never to be contacted); row not imported")
            else:
                kept.append(r)
        if not kept:
            return
        domains = set()
        for r in kept:
            r.values["link_domain"] = r.values.get("account_domain") or company_domain_of(r.values["email"])
            if r.values["link_domain"]:
                domains.add(r.values["link_domain"])
        accounts = dict(db.session.execute(select(Account.domain, Account.id)
                                           .where(self.among(Account.domain, list(domains)))).all()) if domains else {}
        table = Contact.__table__
        found = self.existing(table.c.email, [r.values["email"] for r in kept])
        params = []
        for r in kept:
            account_id = accounts.get(r.values["link_domain"])
            if account_id is None:
                if r.values.get("account_domain"):
                    self.out.error(r.number, r.values["account_domain_column"],
                                      f"no account has the domain {r.values['account_domain']}; the contact "
                                      "was imported without an account (import the accounts first)")
                if r.values["email"] not in found:
                    self.out.unlinked += 1
            params.append({"email": r.values["email"], "account_id": account_id,
                           **{n: r.values.get(n) for n in self.NULLABLE if n != "account_id"},
                           "attributes": r.attributes, "crm_ids": r.crm_ids,
                           "created_at": self.started, "updated_at": self.started})
        self.upsert(table, params, lambda ex: {
            **_coalesce_update(table, ex, self.NULLABLE),
            "attributes": self.merged_json(table, "attributes", ex),
            "crm_ids": self.merged_json(table, "crm_ids", ex),
            "updated_at": ex.updated_at,
        })
        self.count(kept, found)


def copy_rows(table: str, columns: list[str], rows: Iterable[tuple]) -> None:
    """PostgreSQL ``COPY table (columns) FROM STDIN`` in the session's transaction.

    Dicts and lists are sent as JSON text (for JSONB columns). Much faster than any
    INSERT for many rows.
    """
    conn = db.session.connection().connection.driver_connection
    with conn.cursor() as cur, cur.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([_json_text(v) if isinstance(v, dict | list) else v for v in row])


def _json_text(value: dict | list) -> str:
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value, ensure_ascii=False, default=str)


def _column_names(header: _Header) -> dict[int, str]:
    """Column index -> the name errors use: the field the column feeds."""
    names = {}
    for name, indexes in header.fields.items():
        for index in indexes:
            names[index] = name
    return names


def import_accounts(stream: BinaryIO, actor_id: int | None = None, progress: ProgressFn | None = None,
                    batch_size: int = BATCH_SIZE) -> ImportReport:
    """Import accounts from a CSV stream; upsert by normalised domain.

    ``progress(bytes_read)`` is called after each batch. Raises ImportFileError when the
    file has no usable header.
    """
    return _AccountImporter(actor_id, progress, batch_size).run(stream)


def import_contacts(stream: BinaryIO, actor_id: int | None = None, progress: ProgressFn | None = None,
                    batch_size: int = BATCH_SIZE) -> ImportReport:
    """Import contacts from a CSV stream; upsert by normalised email, linked to accounts by domain."""
    return _ContactImporter(actor_id, progress, batch_size).run(stream)


__all__ = ["ImportFileError", "ImportReport", "import_accounts", "import_contacts", "email_hash",
           "parse_amount", "parse_tier"]
