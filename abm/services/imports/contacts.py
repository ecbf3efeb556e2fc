"""Contacts: a row per person, upserted by normalised email and linked to an account.

On PostgreSQL a batch of new addresses is COPYed straight into ``contacts`` (see
:meth:`ContactImporter.write_pg`); any other batch goes through a temporary table and one
upsert.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from abm.db import db
from abm.models import Account, Contact, Suppression
from abm.normalize import NormalizeError, company_domain_of
from abm.services.imports import crm_links
from abm.services.imports.cells import LIMITS, domain_of, email_hash, email_of, header_key
from abm.services.imports.columns import CONTACT_ALIASES, ROLE_SYNONYMS
from abm.services.imports.importer import Importer, Row, coalesce_update
from abm.services.imports.postgres_copy import (
    DATABASE_ERRORS,
    KEY_CONFLICTS,
    NULL,
    autocommit,
    coalesced,
    copy_fields,
    defaults_sql,
    email_hash_sql,
    json_text,
    staging_sql,
    text_array,
    update_if_changed,
)
from abm.services.imports.reading import Source

COPY_PARTS = 2  # PostgreSQL: a batch of new contacts is COPYed in this many parts at once ...
COPY_PART_MIN = 1000  # ... of at least this many rows
_NULLABLE_CONTACT = ("account_id", "first_name", "last_name", "title", "buying_role", "country", "phone")

# account_domain: the account-domain cell; link_domain: it, or the email's domain unless free mail.
_CONTACT_STAGED = ("email, first_name, last_name, title, buying_role, country, phone, attributes, crm_ids, "
                   "NULL::text AS account_domain, NULL::text AS link_domain FROM contacts")
_CONTACT_DEFAULTS = defaults_sql(Contact.__table__, {"email", *_NULLABLE_CONTACT})
_CONTACT_UPSERT = f"""
WITH sup AS MATERIALIZED (
    SELECT s.n FROM _abm_import_contacts s WHERE EXISTS (
        SELECT 1 FROM suppressions p WHERE p.email_hash = {email_hash_sql("s.email")})
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
    ON CONFLICT (email) DO UPDATE {update_if_changed(coalesced(_NULLABLE_CONTACT) + [
        ("attributes", "t.attributes || EXCLUDED.attributes"), ("crm_ids", "t.crm_ids || EXCLUDED.crm_ids")])}
    RETURNING t.email
)
SELECT s.n, sup.n IS NOT NULL, o.email IS NOT NULL, o.updated_at >= %(now)s::timestamptz, acc.id IS NULL,
       up.email IS NOT NULL
FROM _abm_import_contacts s LEFT JOIN sup ON sup.n = s.n LEFT JOIN old o ON o.email = s.email
    LEFT JOIN acc ON acc.domain = s.link_domain LEFT JOIN up ON up.email = s.email
WHERE sup.n IS NOT NULL OR o.email IS NOT NULL OR acc.id IS NULL
ORDER BY s.n
"""

# A batch's look-up (the emails and domains as array literals): (email, NULL) for a suppressed address,
# (domain, id) for the account of a link domain.
_CONTACT_LINKS = f"""
SELECT e, NULL::integer FROM unnest(%(emails)s::text[]) e
WHERE EXISTS (SELECT FROM suppressions p WHERE p.email_hash = {email_hash_sql("e")})
UNION ALL
SELECT a.domain, a.id FROM unnest(%(domains)s::text[]) d JOIN accounts a ON a.domain = d
"""
_CONTACT_COPY = (f"COPY contacts (email, {', '.join(_NULLABLE_CONTACT[1:])}, attributes, crm_ids, account_id, "
                 "created_at, updated_at) FROM STDIN")
assert not _CONTACT_DEFAULTS[0], "a new contact column with a default: give it in _CONTACT_COPY's lines too"
_SUPPRESSED = "this address is on the suppression list (erased or asked never to be contacted); row not imported"

class ContactImporter(Importer):
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

    def parse_fields(self, picked: tuple, row: Row) -> bool:
        (email_text, first, last, full, title, role, country, phone, account_domain, hubspot, salesforce,
         account_salesforce, account_hubspot) = picked
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
        if account_salesforce:
            values["account_crm"] = ("salesforce", account_salesforce)
        elif account_hubspot:  # a list of associations: the first (HubSpot lists the primary first)
            values["account_crm"] = ("hubspot", re.split(r"[;,|]", account_hubspot)[0].strip())
        return True

    def before_write(self, rows: list[Row]) -> None:
        """Link the rows that name their account's CRM id to that account (see :mod:`.crm_links`)."""
        named = [r for r in rows if "account_crm" in r.values]
        if named:
            crm_links.link(named, self.report)

    def role_of(self, text: str) -> str | None:
        """The workspace role a buying-role cell names (the first of a list), or None."""
        if text in self._role_cache:
            return self._role_cache[text]
        role = self.roles.get(header_key(re.split(r"[;|,]", text)[0]))
        if len(self._role_cache) < 1000:  # a file holds a handful of distinct values
            self._role_cache[text] = role
        return role

    STAGING = staging_sql("contacts", _CONTACT_STAGED)
    STAGED_COLUMNS = (f"(email, {', '.join(_NULLABLE_CONTACT[1:])}, attributes, crm_ids, account_domain, "
                      "link_domain, n)")

    def copy_line(self, row: Row) -> str:
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
        attributes, crm_ids = json_text(row.attributes), json_text(row.crm_ids)
        # Text cells are never empty strings (an empty cell is no value): `or` gives NULL for a missing one.
        line = (f"{email}\t{first or NULL}\t{last or NULL}\t{title or NULL}\t{role or NULL}\t{country or NULL}\t"
                f"{phone or NULL}\t{attributes}\t{crm_ids}")
        # The common case needs no escaping: no tab, line end or backslash of its own.
        if line.count("\t") == 8 and line.count("\\") == texts.count(None) and "\n" not in line \
                and "\r" not in line:
            return line
        return copy_fields((email, *texts, attributes, crm_ids))

    def staged_lines(self, rows: list[Row]) -> str:
        # The domains are normalised (letters, digits, dots and hyphens): nothing to escape.
        return "".join([f"{r.line}\t{r.values.get('account_domain') or NULL}\t"
                        f"{r.values['link_domain'] or NULL}\t{r.number}\n" for r in rows])

    def write_pg(self, rows: list[Row]) -> None:
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

    def write_alone(self, rows: list[Row]) -> None:
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
    def links(cur, rows: list[Row]) -> tuple[set[str], dict[str, int]]:
        """(the suppressed addresses, the account id of each link domain that has an account)."""
        cur.execute(_CONTACT_LINKS, {
            "emails": text_array([r.values["email"] for r in rows]),
            "domains": text_array({d for r in rows if (d := r.values["link_domain"]) is not None}),
        }, prepare=False)  # planned for the tables as they are now
        suppressed, account_ids = set(), {}
        for key, account_id in cur.fetchall():
            if account_id is None:
                suppressed.add(key)
            else:
                account_ids[key] = account_id
        return suppressed, account_ids

    def look_ahead(self, rows: list[Row]) -> None:
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

    def links_ahead(self, rows: list[Row]) -> tuple[set[str], dict[str, int]] | None:
        """:meth:`links` on the look-up thread's connection; None when it failed (the writer looks them up)."""
        try:
            self.ahead = autocommit(self.ahead)
            with self.ahead.connection.driver_connection.cursor() as cur:
                return self.links(cur, rows)
        except DATABASE_ERRORS:
            self.close_ahead()
            return None

    def close_ahead(self) -> None:
        if self.ahead is not None:
            self.ahead.close()
            self.ahead = None

    def _read_rows(self, rows: Iterator[list[str]], source: Source, writer: ThreadPoolExecutor) -> None:
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
        self.copy_conns[part] = autocommit(self.copy_conns[part])
        return self.copy_conns[part].connection.driver_connection

    def close_copiers(self) -> None:
        if self.copy_parts is not None:
            self.copy_parts.shutdown()
        for part, conn in enumerate(self.copy_conns):
            if conn is not None:
                conn.close()
                self.copy_conns[part] = None

    def copy_new(self, rows: list[Row], account_ids: dict[str, int]) -> tuple[list[Row], list[Row]]:
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
        try:
            with self.copier(part).cursor() as cur, cur.copy(_CONTACT_COPY) as copy:
                copy.write(data)
        except KEY_CONFLICTS:
            return False
        except DATABASE_ERRORS as exc:
            return exc
        return True

    def unknown_account(self, row: Row) -> None:
        domain = row.values.get("account_domain")
        if domain:
            self.out.error(row.number, "account_domain", f"no account has the domain {domain}; the contact was "
                                                         "imported without an account (import the accounts first)")

    def upsert_pg(self, rows: list[Row]) -> None:
        """The rows through the temporary table and one ``INSERT ... ON CONFLICT DO UPDATE``."""
        result = self.stage_and_run(rows, _CONTACT_UPSERT)
        by_number = {r.number: r for r in rows}
        out, written, existed = self.out, len(rows), 0
        for number, suppressed, stored, again, no_account, changed in result:  # not plain creations
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
                elif changed:
                    out.updated += 1
                else:
                    out.unchanged += 1
        out.created += written - existed
        self.upserting = existed > 0

    def write_rows(self, rows: list[Row]) -> None:
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
        written = self.upsert(table, params, lambda ex: {
            **coalesce_update(table, ex, self.NULLABLE),
            "attributes": self.merged_json(table, "attributes", ex),
            "crm_ids": self.merged_json(table, "crm_ids", ex),
        }, (table.c.email,))
        self.count(kept, found, set(written.scalars()))

