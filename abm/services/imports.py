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
import gc
import hashlib
import io
import json
import operator
import re
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, case, func, select
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

BATCH_SIZE = 5000
COPY_PARTS = 2  # PostgreSQL: a batch of new contacts is COPYed in this many parts at once ...
COPY_PART_MIN = 1000  # ... of at least this many rows
MAX_LISTED = 1000  # errors and skipped rows listed in a report; the rest are counted
SNIFF_BYTES = 64 * 1024
MAX_INT = 2_147_483_647
MAX_REVENUE = Decimal("9999999999999999")
_CENT = Decimal("0.01")

ProgressFn = Callable[[int], None]


def _database_errors() -> tuple[type[Exception], ...]:
    """What a refused write raises: SQLAlchemy's errors, and psycopg's from its own cursors."""
    try:
        import psycopg
    except ImportError:
        return (DBAPIError,)
    return (DBAPIError, psycopg.Error)


_DATABASE_ERRORS = _database_errors()
#: Per kind, the PostgreSQL connections that have the temporary table its batches are staged in.
_STAGED_ON: dict[str, weakref.WeakSet] = {"accounts": weakref.WeakSet(), "contacts": weakref.WeakSet()}


#: The interpreter's thread switch interval while an import runs (Python's default: 5 ms).
IMPORT_SWITCH_INTERVAL = 0.0005
_tuning = threading.Lock()
_imports_running = 0
_untuned: tuple[bool, float] = (True, 0.005)  # the collector's state and the interval before the first import


@contextmanager
def _interpreter_tuned():
    """The interpreter set for an import while it runs, as it was once no import runs.

    - Python's cyclic garbage collector is off. The batches held make no reference
      cycles (reference counting frees them), yet the thousands of objects they add each
      batch trigger collections that walk every object of the process: about 15% of the
      CPU time of reading a contacts file.
    - Threads switch every 0.5 ms instead of 5. The reading thread computes without a
      pause; the threads that wait on the database (the writer, the look-ups, the COPYs)
      would otherwise wait up to 5 ms for the interpreter's lock after each answer, and the
      database with them: about 15% of a contacts import's time.

    Imports running at once in a process (threads of a web server) share the setting: the
    last to finish puts back what was there before the first.
    """
    global _imports_running, _untuned
    with _tuning:
        if not _imports_running:
            _untuned = (gc.isenabled(), sys.getswitchinterval())
            gc.disable()
            sys.setswitchinterval(IMPORT_SWITCH_INTERVAL)
        _imports_running += 1
    try:
        yield
    finally:
        with _tuning:
            _imports_running -= 1
            if not _imports_running:
                if _untuned[0]:
                    gc.enable()
                sys.setswitchinterval(_untuned[1])


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no usable header, unreadable)."""


def header_key(text: str) -> str:
    """``"Country/Region"`` -> ``"countryregion"``: how headers and aliases are compared."""
    return re.sub(r"[^0-9a-z]", "", (text or "").casefold())


def attribute_key(text: str) -> str:
    """``"Lead Source (HubSpot)"`` -> ``"lead_source_hubspot"``: the attribute an unknown column becomes."""
    return re.sub(r"[\W_]+", "_", (text or "").casefold()).strip("_")


# The common case of a domain, without IDNA: ASCII labels, none starting or ending with a hyphen
# or having one in its third and fourth places (xn--), a last label not all digits.
_PLAIN_LABEL = r"(?!-)(?!..--)[a-z0-9-]{1,63}(?<!-)"
_PLAIN_HOST = rf"(?:{_PLAIN_LABEL}\.)+(?![0-9]+\Z){_PLAIN_LABEL}"
_PLAIN_DOMAIN = re.compile(rf"(?:www\.)?({_PLAIN_HOST})")
_PLAIN_EMAIL = re.compile(rf"[^@\s:]+@(?!www\.){_PLAIN_HOST}")  # in its normal form already


@functools.lru_cache(maxsize=65536)  # a file's contacts share their companies' domains
def _plain_domain(text: str) -> str | None:
    """The common case, without IDNA: ``acme.com`` or ``www.acme.com`` in lower case."""
    m = _PLAIN_DOMAIN.fullmatch(text)
    if m is None or (text.startswith("www.") and m.group(1) == text):
        return None
    return m.group(1)


def domain_of(value: str) -> str:
    """:func:`abm.normalize.normalize_domain`, fast for the plain ASCII names most cells hold."""
    return _plain_domain(value.strip().lower()) or normalize_domain(value)


def email_of(value: str) -> str:
    """:func:`abm.normalize.normalize_email`, fast for plain ASCII addresses."""
    text = value.strip().lower()
    return text if _PLAIN_EMAIL.fullmatch(text) else normalize_email(value)


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

    __slots__ = ("number", "values", "attributes", "crm_ids", "line")

    def __init__(self, number: int) -> None:
        self.number = number
        self.values: dict = {}
        self.attributes: dict = {}
        self.crm_ids: dict = {}
        self.line = ""  # the row in COPY's text format (PostgreSQL)


_NULLABLE_ACCOUNT = ("industry", "employees", "annual_revenue", "country", "tier", "owner_id", "timezone", "notes")
_NULLABLE_CONTACT = ("account_id", "first_name", "last_name", "title", "buying_role", "country", "phone")


def _coalesced(names: Iterable[str]) -> str:
    return ",\n        ".join(f"{n} = COALESCE(EXCLUDED.{n}, t.{n})" for n in names)


def _staging_sql(kind: str, staged: str) -> str:
    """Make the temporary table ``_abm_import_<kind>`` unless the connection has it (no notice)."""
    return (f"DO $$ BEGIN IF to_regclass('pg_temp._abm_import_{kind}') IS NULL THEN "
            f"CREATE TEMP TABLE _abm_import_{kind} ON COMMIT DELETE ROWS AS SELECT 0 AS n, {staged} WITH NO DATA; "
            "END IF; END $$")


def _defaults_sql(table, given: set[str]) -> tuple[str, str]:
    """(columns, values): the model's constant defaults of the columns an import does not give."""
    pairs = [(c.name, c.default.arg) for c in table.columns
             if c.name not in given and c.default is not None and c.default.is_scalar]
    literals = {float: lambda v: f"{v!r}::float8", int: str, str: lambda v: "'" + v.replace("'", "''") + "'"}
    return "".join(f", {n}" for n, _ in pairs), "".join(f", {literals[type(v)](v)}" for _, v in pairs)


# The rows of a batch are staged in _abm_import_<kind> (n = the row number); keys are unique in a batch.
# `old` is what was stored before this statement (one snapshot for the whole statement).
_ACCOUNT_STAGED = ("domain, name, industry, employees, annual_revenue, country, tier, owner_id, stage, timezone, "
                   "tags, notes, attributes, crm_ids FROM accounts")
_ACCOUNT_DEFAULTS = _defaults_sql(Account.__table__, {"domain", "name", "stage", "tags", *_NULLABLE_ACCOUNT})
_ACCOUNT_UPSERT = f"""
WITH old AS MATERIALIZED (
    SELECT a.id, a.domain, a.updated_at, a.stage FROM accounts a
    WHERE a.domain = ANY(ARRAY(SELECT domain FROM _abm_import_accounts))
), up AS (
    INSERT INTO accounts AS t (domain, name, stage, tags, {", ".join(_NULLABLE_ACCOUNT)}, attributes, crm_ids,
                               created_at, updated_at{_ACCOUNT_DEFAULTS[0]})
    SELECT s.domain, COALESCE(s.name, CASE WHEN o.id IS NULL THEN s.domain ELSE '' END),
           COALESCE(s.stage, CASE WHEN o.id IS NULL THEN 'target' ELSE '' END), COALESCE(s.tags, '[]'),
           {", ".join("s." + n for n in _NULLABLE_ACCOUNT)},
           COALESCE(s.attributes, '{{}}'), COALESCE(s.crm_ids, '{{}}'),
           %(now)s::timestamptz, %(now)s::timestamptz{_ACCOUNT_DEFAULTS[1]}
    FROM _abm_import_accounts s LEFT JOIN old o ON o.domain = s.domain
    ON CONFLICT (domain) DO UPDATE SET
        {_coalesced(_NULLABLE_ACCOUNT)},
        name = CASE WHEN EXCLUDED.name = '' THEN t.name ELSE EXCLUDED.name END,
        stage = CASE WHEN EXCLUDED.stage = '' THEN t.stage ELSE EXCLUDED.stage END,
        tags = CASE WHEN jsonb_array_length(EXCLUDED.tags) = 0 THEN t.tags ELSE EXCLUDED.tags END,
        attributes = t.attributes || EXCLUDED.attributes,
        crm_ids = t.crm_ids || EXCLUDED.crm_ids,
        updated_at = EXCLUDED.updated_at
    @RETURNING@
)@CHANGES@
SELECT s.n, o.updated_at >= %(now)s::timestamptz
FROM _abm_import_accounts s JOIN old o ON o.domain = s.domain ORDER BY s.n
"""
_ACCOUNT_CHANGES = """, changes AS (
    INSERT INTO stage_changes (account_id, from_stage, to_stage, changed_at, source, actor_id)
    SELECT up.id, o.stage, s.stage, %(now)s::timestamptz, 'import', %(actor)s::integer
    FROM _abm_import_accounts s JOIN up ON up.domain = s.domain LEFT JOIN old o ON o.domain = s.domain
    WHERE s.stage IS NOT NULL AND o.stage IS DISTINCT FROM s.stage
)"""
#: (batch without stages, batch with stages)
_ACCOUNT_UPSERTS = (_ACCOUNT_UPSERT.replace("@RETURNING@", "").replace("@CHANGES@", ""),
                    _ACCOUNT_UPSERT.replace("@RETURNING@", "RETURNING t.id, t.domain").replace("@CHANGES@",
                                                                                           _ACCOUNT_CHANGES))
def _email_hash_sql(email: str) -> str:
    """:func:`email_hash` of the SQL expression ``email``, in PostgreSQL (a suppression's key)."""
    return f"encode(sha256(convert_to({email}, 'UTF8')), 'hex')"


# account_domain: the account-domain cell; link_domain: it, or the email's domain unless free mail.
_CONTACT_STAGED = ("email, first_name, last_name, title, buying_role, country, phone, attributes, crm_ids, "
                   "NULL::text AS account_domain, NULL::text AS link_domain FROM contacts")
_CONTACT_DEFAULTS = _defaults_sql(Contact.__table__, {"email", *_NULLABLE_CONTACT})
_CONTACT_UPSERT = f"""
WITH sup AS MATERIALIZED (
    SELECT s.n FROM _abm_import_contacts s WHERE EXISTS (
        SELECT 1 FROM suppressions p WHERE p.email_hash = {_email_hash_sql("s.email")})
), old AS MATERIALIZED (
    SELECT c.email, c.updated_at FROM contacts c WHERE c.email = ANY(ARRAY(SELECT email FROM _abm_import_contacts))
), acc AS MATERIALIZED (
    SELECT a.domain, a.id FROM accounts a WHERE a.domain = ANY(ARRAY(
        SELECT DISTINCT link_domain FROM _abm_import_contacts WHERE link_domain IS NOT NULL))
), up AS (
    INSERT INTO contacts AS t (email, {", ".join(_NULLABLE_CONTACT)}, attributes, crm_ids, created_at,
                               updated_at{_CONTACT_DEFAULTS[0]})
    SELECT k.email, acc.id, {", ".join("k." + n for n in _NULLABLE_CONTACT[1:])},
           COALESCE(k.attributes, '{{}}'), COALESCE(k.crm_ids, '{{}}'),
           %(now)s::timestamptz, %(now)s::timestamptz{_CONTACT_DEFAULTS[1]}
    FROM _abm_import_contacts k LEFT JOIN acc ON acc.domain = k.link_domain
    WHERE NOT EXISTS (SELECT FROM sup WHERE sup.n = k.n)
    ON CONFLICT (email) DO UPDATE SET
        {_coalesced(_NULLABLE_CONTACT)},
        attributes = t.attributes || EXCLUDED.attributes,
        crm_ids = t.crm_ids || EXCLUDED.crm_ids,
        updated_at = EXCLUDED.updated_at
)
SELECT s.n, sup.n IS NOT NULL, o.email IS NOT NULL, o.updated_at >= %(now)s::timestamptz, acc.id IS NULL
FROM _abm_import_contacts s LEFT JOIN sup ON sup.n = s.n LEFT JOIN old o ON o.email = s.email
    LEFT JOIN acc ON acc.domain = s.link_domain
WHERE sup.n IS NOT NULL OR o.email IS NOT NULL OR acc.id IS NULL
ORDER BY s.n
"""

# A batch's look-up (the emails and domains as array literals): (email, NULL) for a suppressed address,
# (domain, id) for the account of a link domain.
_CONTACT_LINKS = f"""
SELECT e, NULL::integer FROM unnest(%(emails)s::text[]) e
WHERE EXISTS (SELECT FROM suppressions p WHERE p.email_hash = {_email_hash_sql("e")})
UNION ALL
SELECT a.domain, a.id FROM unnest(%(domains)s::text[]) d JOIN accounts a ON a.domain = d
"""
_CONTACT_COPY = (f"COPY contacts (email, {', '.join(_NULLABLE_CONTACT[1:])}, attributes, crm_ids, account_id, "
                 "created_at, updated_at) FROM STDIN")
assert not _CONTACT_DEFAULTS[0], "a new contact column with a default: give it in _CONTACT_COPY's lines too"
_SUPPRESSED = "this address is on the suppression list (erased or asked never to be contacted); row not imported"


def _autocommit(conn: Connection | None) -> Connection:
    """``conn`` while it is usable, else a new connection of the engine's in autocommit (a thread's own)."""
    if conn is not None and not (conn.closed or conn.invalidated):
        return conn
    if conn is not None:
        conn.close()
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


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
        self._pick = self._make_picker()
        self._padding = [""] * (self.header.width + 1)
        self.prepare()
        db.session.commit()  # end the lookups' transaction: the writer thread writes
        with _interpreter_tuned(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="abm-import") as writer:
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
            batch_rows = list(batch.values())
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

    def _progress(self, source: _Source) -> None:
        if self.progress is not None:
            self.progress(source.bytes_read)

    def prepare(self) -> None:
        """Lookups made once per import (users, stages)."""

    def look_ahead(self, rows: list[_Row]) -> None:
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

    def parse(self, cells: list[str], number: int) -> _Row | None:
        width = self.header.width
        if len(cells) > width:
            if any(cells[width:]):
                self.report.error(number, "(row)", f"this row has {len(cells)} cells but the header has "
                                                   f"{width} (a delimiter inside an unquoted cell?); "
                                                   "row not imported")
                return None
            del cells[width:]
        cells += self._padding[len(cells):]
        row = _Row(number)
        for index, attr in self.header.attributes:
            if cells[index]:
                row.attributes[attr] = cells[index]
        return row if self.parse_fields(self._pick(cells), row) else None

    def crm(self, row: _Row, hubspot: str, salesforce: str) -> None:
        if hubspot:
            row.crm_ids["hubspot"] = hubspot
        if salesforce:
            row.crm_ids["salesforce"] = salesforce

    def texts(self, row: _Row, names: tuple[str, ...], cells: tuple[str, ...]) -> None:
        """Text fields (``names``, their ``cells``) as they are; one longer than its column is a cell error."""
        for name, value in zip(names, cells, strict=True):
            if value:
                if len(value) > LIMITS[name]:
                    self.report.error(row.number, name, f"longer than {LIMITS[name]} characters; "
                                                        "this cell was not imported")
                else:
                    row.values[name] = value

    def convert(self, row: _Row, name: str, text: str, parse, left=" this cell was not imported",
                target=None) -> None:
        """``row.values[target or name] = parse(text)`` for a non-empty cell; a ValueError is a cell error."""
        if not text:
            return
        try:
            row.values[target or name] = parse(text)
        except ValueError as exc:
            self.report.error(row.number, name, f"{exc};{left}")

    def parse_fields(self, picked: tuple, row: _Row) -> bool:
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
        self.staged_on = None
        try:
            self.write(rows)
            db.session.commit()
            if self.staged_on is not None:
                _STAGED_ON[self.kind].add(self.staged_on)  # committed: the connection keeps its temporary table
            return self.out
        except _DATABASE_ERRORS as exc:
            if self.staged_on is not None:  # make sure of the temporary table on the next try
                _STAGED_ON[self.kind].discard(self.staged_on)
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
        """Write one batch in the session's transaction."""
        if self.dialect == "postgresql":
            self.write_pg(rows)
        else:
            self.write_rows(rows)

    def write_pg(self, rows: list[_Row]) -> None:
        """PostgreSQL: COPY the batch into a temporary table, then one statement does the rest."""
        raise NotImplementedError

    def write_rows(self, rows: list[_Row]) -> None:
        """Other databases: lookups, then a multi-row upsert."""
        raise NotImplementedError

    def copy_line(self, row: _Row) -> str:
        """The row as a line of the temporary table's COPY (PostgreSQL), or what the line is made of.

        Made for every row by the reading thread as it hands a batch over (``row.line``).
        """
        raise NotImplementedError

    #: The temporary table's columns in the order its COPY lines give them ("" for the table's own order).
    STAGED_COLUMNS = ""

    def staged_lines(self, rows: list[_Row]) -> str:
        """The rows as the temporary table's COPY text."""
        return "".join([r.line for r in rows])

    def stage_and_run(self, rows: list[_Row], statement: str) -> list[tuple]:
        """COPY the rows into the temporary table ``_abm_import_<kind>``, run ``statement``, return its rows.

        The table is made once per connection and emptied at each commit.
        """
        conn = db.session.connection().connection.driver_connection
        self.staged_on = conn
        with conn.cursor() as cur:
            if conn not in _STAGED_ON[self.kind]:  # the first batch on this connection
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

    def upsert(self, table, params: list[dict], set_of, returning: tuple = ()):
        """``INSERT ... ON CONFLICT (key) DO UPDATE`` of many rows as multi-row VALUES.

        ``set_of(excluded)`` gives the SET clause.
        """
        stmt = sqlite_insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=[self.key], set_=set_of(stmt.excluded))
        if returning:
            stmt = stmt.returning(*returning)
        return db.session.execute(stmt, params)

    def insert_rows(self, table, rows: list[dict]) -> None:
        if rows:
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

    def parse_fields(self, picked: tuple, row: _Row) -> bool:
        (domain_text, name, industry, employees, revenue, country, tier, owner, stage, timezone, tags, notes,
         hubspot, salesforce) = picked
        self.crm(row, hubspot, salesforce)
        try:
            domain = domain_of(domain_text)
        except NormalizeError as exc:
            self.report.error(row.number, "domain", f"{exc}; row not imported")
            return False
        if domain in FREE_MAIL_DOMAINS:
            self.report.error(row.number, "domain", f"{domain} is a free-mail provider, not a company's "
                                                    "domain; row not imported")
            return False
        values = row.values
        values["domain"] = domain
        self.texts(row, ("name", "industry", "country", "notes"), (name, industry, country, notes))
        # Plain digits, the common case, skip parse_amount (same values).
        if employees.isdigit() and employees.isascii() and len(employees) <= 9:
            values["employees"] = int(employees)
        else:
            self.convert(row, "employees", employees, self.parse_employees)
        if revenue.isdigit() and revenue.isascii() and len(revenue) <= 16:
            values["annual_revenue"] = Decimal(revenue).quantize(_CENT)
        else:
            self.convert(row, "annual_revenue", revenue, self.parse_revenue)
        if len(tier) == 1 and "1" <= tier <= "9":
            values["tier"] = int(tier)
        else:
            self.convert(row, "tier", tier, parse_tier)
        self.convert(row, "tags", tags, split_tags)
        if timezone in self.zones:
            values["timezone"] = timezone
        else:
            self.convert(row, "timezone", timezone, self.parse_timezone)
        self.convert(row, "stage", stage, self.parse_stage, " its stage was left unchanged")
        self.convert(row, "owner", owner, self.parse_owner, " its owner was left unchanged", "owner_id")
        return True

    @staticmethod
    def parse_employees(text: str) -> int:
        value = int(parse_amount(text).to_integral_value())
        if value > MAX_INT:
            raise ValueError(f"{text!r} is too large")
        return value

    @staticmethod
    def parse_revenue(text: str) -> Decimal:
        value = parse_amount(text).quantize(_CENT)
        if value > MAX_REVENUE:
            raise ValueError(f"{text!r} is too large")
        return value

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

    STAGING = _staging_sql("accounts", _ACCOUNT_STAGED)

    def copy_line(self, row: _Row) -> str:
        get = row.values.get
        return _copy_line((row.number, row.values["domain"], get("name"), get("industry"), get("employees"),
                           get("annual_revenue"), get("country"), get("tier"), get("owner_id"), get("stage"),
                           get("timezone"), _json_or_none(get("tags")), get("notes"), _json_or_none(row.attributes),
                           _json_or_none(row.crm_ids)))

    def write_pg(self, rows: list[_Row]) -> None:
        old = self.stage_and_run(rows, _ACCOUNT_UPSERTS[any("stage" in r.values for r in rows)])
        by_number = {r.number: r for r in rows}
        for number, again in old:  # the rows whose domain was already stored
            if again:
                self.out.skip(number, "domain", f"an earlier row has the same domain "
                              f"({by_number[number].values['domain']}); this later row's values replaced it "
                              "(the last row wins)")
            else:
                self.out.updated += 1
        self.out.created += len(rows) - len(old)

    def write_rows(self, rows: list[_Row]) -> None:
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
            empty_tags = func.json_array_length(ex.tags) == 0
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
        self.upserting = False  # whether the last batch written had addresses stored already
        self.looked_up: dict[int, tuple] = {}  # first row number -> (rows, future (suppressed, account ids))
        self.lookups: ThreadPoolExecutor | None = None  # the thread of the look-ups made ahead
        self.ahead = None  # its connection
        self.copy_conns = [None] * COPY_PARTS  # the connections of the COPYs (see copier)
        self.copy_parts: ThreadPoolExecutor | None = None  # the threads that COPY the parts after the first
        roles = self.settings["roles"]
        self.roles = {header_key(r): r for r in roles}
        self._role_cache: dict[str, str | None] = {}
        for alias, role in ROLE_SYNONYMS.items():
            if role in roles:
                self.roles.setdefault(alias, role)

    def parse_fields(self, picked: tuple, row: _Row) -> bool:
        (email_text, first, last, full, title, role, country, phone, account_domain, hubspot, salesforce) = picked
        self.crm(row, hubspot, salesforce)
        try:
            email = email_of(email_text)
            if len(email) > LIMITS["email"]:
                raise NormalizeError("the email is longer than 320 characters")
        except NormalizeError as exc:
            self.report.error(row.number, "email", f"{exc}; row not imported")
            return False
        values = row.values
        values["email"] = email
        self.texts(row, ("first_name", "last_name", "title", "country", "phone"), (first, last, title, country, phone))
        if full and "first_name" not in values and "last_name" not in values:
            first, _, last = full.partition(" ")
            values["first_name"] = first[:100]
            if last.strip():
                values["last_name"] = last.strip()[:100]
        if role:
            found = self.role_of(role)
            if found is None:
                self.report.error(row.number, "buying_role", f"unknown buying role {role!r} (known: "
                                  f"{', '.join(self.settings['roles'])}); the contact was imported without it")
            else:
                values["buying_role"] = found
        if account_domain:
            try:
                values["account_domain"] = domain_of(account_domain)
                values["account_domain_column"] = "account_domain"
            except NormalizeError as exc:
                self.report.error(row.number, "account_domain", f"{exc}; the contact's account was found by "
                                                                "its email's domain instead")
        return True

    def role_of(self, text: str) -> str | None:
        """The workspace role a buying-role cell names (the first of a list), or None."""
        if text in self._role_cache:
            return self._role_cache[text]
        role = self.roles.get(header_key(re.split(r"[;|,]", text)[0]))
        if len(self._role_cache) < 1000:  # a file holds a handful of distinct values
            self._role_cache[text] = role
        return role

    STAGING = _staging_sql("contacts", _CONTACT_STAGED)
    STAGED_COLUMNS = (f"(email, {', '.join(_NULLABLE_CONTACT[1:])}, attributes, crm_ids, account_domain, "
                      "link_domain, n)")

    def copy_line(self, row: _Row) -> str:
        """The row's fields from its email to its CRM ids in COPY's text format, without the line end.

        Both ways into the database start their lines with it: straight into ``contacts``
        (a new address) and into the temporary table (an address already stored).
        """
        values = row.values
        get = values.get
        email, domain = values["email"], get("account_domain")
        values["link_domain"] = domain or company_domain_of(email)
        texts = first, last, title, role, country, phone = (get("first_name"), get("last_name"), get("title"),
                                                             get("buying_role"), get("country"), get("phone"))
        attributes, crm_ids = _json_text(row.attributes), _json_text(row.crm_ids)
        # Text cells are never empty strings (an empty cell is no value): `or` gives NULL for a missing one.
        line = (f"{email}\t{first or NULL}\t{last or NULL}\t{title or NULL}\t{role or NULL}\t{country or NULL}\t"
                f"{phone or NULL}\t{attributes}\t{crm_ids}")
        # The common case needs no escaping: no tab, line end or backslash of its own.
        if line.count("\t") == 8 and line.count("\\") == texts.count(None) and "\n" not in line \
                and "\r" not in line:
            return line
        return _copy_fields((email, *texts, attributes, crm_ids))

    def staged_lines(self, rows: list[_Row]) -> str:
        # The domains are normalised (letters, digits, dots and hyphens): nothing to escape.
        return "".join([f"{r.line}\t{r.values.get('account_domain') or NULL}\t"
                        f"{r.values['link_domain'] or NULL}\t{r.number}\n" for r in rows])

    def write_pg(self, rows: list[_Row]) -> None:
        """A batch of new addresses is COPYed straight into ``contacts``; any other is upserted.

        While the batches hold only new addresses (a first import), a batch's rows are
        COPYed into ``contacts`` after one look-up of the suppressed addresses and of the
        accounts of the batch's domains: no temporary table, no upsert (see :meth:`copy_new`).
        An address stored already (an update, a repeated row, another writer) fails its
        part's COPY on the unique index; that part then goes through the temporary table
        and the upsert, and so do the next batches until one holds only new addresses again.
        """
        ahead = self.looked_up.pop(rows[0].number, None)
        if self.upserting:
            self.upsert_pg(rows)
            return
        found = ahead[1].result() if ahead is not None and ahead[0] == len(rows) else None  # not a part
        if found is None:
            with self.copier(0).cursor() as cur:
                found = self.links(cur, rows)
        suppressed, account_ids = found
        new = rows
        if suppressed:
            new = []
            for r in rows:
                if r.values["email"] in suppressed:
                    self.out.skip(r.number, "email", _SUPPRESSED)
                else:
                    new.append(r)
        written, not_written = self.copy_new(new, account_ids)
        self.out.created += len(written)
        for r in written:
            if r.values["link_domain"] not in account_ids:
                self.unknown_account(r)
                self.out.unlinked += 1
        if not_written:
            self.upserting = True
            self.write_alone(not_written)

    def write_alone(self, rows: list[_Row]) -> None:
        """Write ``rows`` in transactions of their own, counted in this batch's report.

        For the rows of a batch that the COPYs left, once its other rows are committed:
        should the database refuse one of them, the search for it must not take in the
        rows written already (they would be written again and counted as repeated).
        """
        out = self.out
        try:
            out.merge(self._write_or_split(rows))
        finally:
            self.out = out

    @staticmethod
    def links(cur, rows: list[_Row]) -> tuple[set[str], dict[str, int]]:
        """(the suppressed addresses, the account id of each link domain that has an account)."""
        cur.execute(_CONTACT_LINKS, {
            "emails": _text_array([r.values["email"] for r in rows]),
            "domains": _text_array({d for r in rows if (d := r.values["link_domain"]) is not None}),
        }, prepare=False)  # planned for the tables as they are now
        suppressed, account_ids = set(), {}
        for key, account_id in cur.fetchall():
            if account_id is None:
                suppressed.add(key)
            else:
                account_ids[key] = account_id
        return suppressed, account_ids

    def look_ahead(self, rows: list[_Row]) -> None:
        """The batch's suppressed addresses and accounts, looked up by a thread of their own.

        The database answers them on another connection while it still takes the previous
        batch's COPY from the writer. Should an account go in between, the COPY fails on
        the foreign key and the batch goes through the upsert, which looks its accounts up
        again.
        """
        if self.upserting:
            return
        if self.lookups is None:
            self.lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="abm-import-lookup")
        self.looked_up[rows[0].number] = (len(rows), self.lookups.submit(self.links_ahead, rows))

    def links_ahead(self, rows: list[_Row]) -> tuple[set[str], dict[str, int]] | None:
        """:meth:`links` on the look-up thread's connection; None when it failed (the writer looks them up)."""
        try:
            self.ahead = _autocommit(self.ahead)
            with self.ahead.connection.driver_connection.cursor() as cur:
                return self.links(cur, rows)
        except _DATABASE_ERRORS:
            self.close_ahead()
            return None

    def close_ahead(self) -> None:
        if self.ahead is not None:
            self.ahead.close()
            self.ahead = None

    def _read_rows(self, rows: Iterator[list[str]], source: _Source, writer: ThreadPoolExecutor) -> None:
        try:
            super()._read_rows(rows, source, writer)
        finally:
            if self.lookups is not None:
                self.lookups.submit(self.close_ahead).result()
                self.lookups.shutdown()
            self.close_copiers()  # the writer is done: the last batch was waited for

    def copier(self, part: int):
        """The connection that COPYs part ``part`` of each batch, in autocommit (opened on first use).

        Each COPY is then a transaction of its own: two round trips (start and end) per
        part, where a transaction of the session's would add BEGIN, a savepoint and COMMIT,
        each a wait for the server and then for the interpreter's lock while the reading
        thread holds it.
        """
        self.copy_conns[part] = _autocommit(self.copy_conns[part])
        return self.copy_conns[part].connection.driver_connection

    def close_copiers(self) -> None:
        if self.copy_parts is not None:
            self.copy_parts.shutdown()
        for part, conn in enumerate(self.copy_conns):
            if conn is not None:
                conn.close()
                self.copy_conns[part] = None

    def copy_new(self, rows: list[_Row], account_ids: dict[str, int]) -> tuple[list[_Row], list[_Row]]:
        """COPY the rows into ``contacts``, in up to :data:`COPY_PARTS` parts at once; (written, not written).

        The parts go over connections of their own, so that the server takes them on as
        many processors. A part is written whole or not at all: not when one of its
        addresses is stored already or one of its accounts is gone (those rows are
        returned, for the upsert). Other errors in a part (a value the database refuses)
        send that part alone through the search for the bad rows, which counts its rows.
        """
        tail = f"\t{self.started}\t{self.started}\n"
        get = account_ids.get
        size = max(COPY_PART_MIN, -(-len(rows) // COPY_PARTS))
        parts = [rows[i:i + size] for i in range(0, len(rows), size)]
        data = ["".join([f"{r.line}\t{NULL if (a := get(r.values['link_domain'])) is None else a}{tail}"
                         for r in part]).encode() for part in parts]
        if len(parts) > 1 and self.copy_parts is None:
            self.copy_parts = ThreadPoolExecutor(max_workers=COPY_PARTS - 1, thread_name_prefix="abm-import-copy")
        others = [self.copy_parts.submit(self.copy_part, n, data[n]) for n in range(1, len(parts))]
        outcomes = [self.copy_part(0, data[0])] if parts else []
        outcomes += [f.result() for f in others]
        written, not_written = [], []
        for part, outcome in zip(parts, outcomes, strict=True):
            if outcome is True:
                written += part
            elif outcome is False:
                not_written += part
            elif len(parts) == 1:
                raise outcome  # the caller's search for the bad rows
            else:  # refused: its bad rows are searched for apart from the other parts, written already
                self.write_alone(part)
        return written, not_written

    def copy_part(self, part: int, data: bytes) -> bool | Exception:
        """COPY one part: True when written, False when it met a stored address or a gone account, else
        the error the database raised."""
        import psycopg

        try:
            with self.copier(part).cursor() as cur, cur.copy(_CONTACT_COPY) as copy:
                copy.write(data)
        except (psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation):
            return False
        except _DATABASE_ERRORS as exc:
            return exc
        return True

    def unknown_account(self, row: _Row) -> None:
        domain = row.values.get("account_domain")
        if domain:
            self.out.error(row.number, "account_domain", f"no account has the domain {domain}; the contact was "
                                                         "imported without an account (import the accounts first)")

    def upsert_pg(self, rows: list[_Row]) -> None:
        """The rows through the temporary table and one ``INSERT ... ON CONFLICT DO UPDATE``."""
        result = self.stage_and_run(rows, _CONTACT_UPSERT)
        by_number = {r.number: r for r in rows}
        out, written, existed = self.out, len(rows), 0
        for number, suppressed, stored, again, no_account in result:  # the rows that are not plain creations
            values = by_number[number].values
            if suppressed:
                written -= 1
                out.skip(number, "email", _SUPPRESSED)
                continue
            if no_account:
                self.unknown_account(by_number[number])
                if not stored:
                    out.unlinked += 1
            if stored:
                existed += 1
                if again:
                    out.skip(number, "email", f"an earlier row has the same email ({values['email']}); this later "
                                              "row's values replaced it (the last row wins)")
                else:
                    out.updated += 1
        out.created += written - existed
        self.upserting = existed > 0

    def write_rows(self, rows: list[_Row]) -> None:
        hashes = {email_hash(r.values["email"]): r for r in rows}
        suppressed = set(db.session.execute(
            select(Suppression.email_hash).where(Suppression.email_hash.in_(list(hashes)))).scalars())
        kept = []
        for digest, r in hashes.items():
            if digest in suppressed:
                self.out.skip(r.number, "email", _SUPPRESSED)
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
                                           .where(Account.domain.in_(list(domains)))).all()) if domains else {}
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


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


NULL = "\\N"  # COPY's text format


def _copy_line(values: tuple) -> str:
    """One row in COPY's text format: None is NULL, strings escaped, other values as ``str()`` writes them."""
    return _copy_fields(values) + "\n"


def _copy_fields(values: tuple) -> str:
    """:func:`_copy_line` without the line end."""
    parts = [NULL if v is None else v if v.__class__ is str else str(v) for v in values]
    line = "\t".join(parts)
    # The common case needs no escaping: no tab, newline or backslash of its own.
    if line.count("\t") == len(parts) - 1 and line.count("\\") == values.count(None) and "\n" not in line \
            and "\r" not in line:
        return line
    return "\t".join([NULL if v is None else (v if v.__class__ is str else str(v)).translate(_COPY_ESCAPES)
                      for v in values])


def _text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of the strings, for a ``%s::text[]`` parameter (cheaper to send than a list)."""
    values = list(values)
    if not values:
        return "{}"
    joined = '","'.join(values)
    if joined.count('"') != 2 * (len(values) - 1) or "\\" in joined:  # a value with a quote or a backslash
        joined = '","'.join([v.replace("\\", "\\\\").replace('"', '\\"') for v in values])
    return '{"' + joined + '"}'


def _json_or_none(value: dict | list | None) -> str | None:
    """JSON text for COPY; None for an empty value (the statement puts the empty JSON in)."""
    return json.dumps(value, ensure_ascii=False, default=str) if value else None


def _json_text(value: dict | list) -> str:
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value, ensure_ascii=False, default=str)


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
