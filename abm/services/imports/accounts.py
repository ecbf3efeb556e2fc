"""Accounts: a row per company, upserted by normalised domain."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, func, select

from abm.db import db
from abm.models import Account, Contact, StageChange, User
from abm.normalize import FREE_MAIL_DOMAINS, NormalizeError
from abm.services.imports import stages
from abm.services.imports.cells import (
    CENT,
    MAX_INT,
    MAX_REVENUE,
    domain_of,
    header_key,
    parse_amount,
    parse_tier,
    split_tags,
)
from abm.services.imports.columns import ACCOUNT_ALIASES, CRM_STAGES
from abm.services.imports.importer import Importer, Row, coalesce_update
from abm.services.imports.postgres_copy import (
    coalesced,
    copy_row_line,
    defaults_sql,
    json_or_none,
    staging_sql,
    update_if_changed,
)

_NULLABLE_ACCOUNT = ("industry", "employees", "annual_revenue", "country", "tier", "owner_id", "timezone", "notes")
_ACCOUNT_STAGED = ("domain, name, industry, employees, annual_revenue, country, tier, owner_id, stage, timezone, "
                   "tags, notes, attributes, crm_ids, updated_at AS stage_at FROM accounts")
_ACCOUNT_DEFAULTS = defaults_sql(Account.__table__, {"domain", "name", "stage", "tags", *_NULLABLE_ACCOUNT})
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
    ON CONFLICT (domain) DO UPDATE {update_if_changed(coalesced(_NULLABLE_ACCOUNT) + [
        ("name", "CASE WHEN EXCLUDED.name = '' THEN t.name ELSE EXCLUDED.name END"),
        ("stage", "CASE WHEN EXCLUDED.stage = '' THEN t.stage ELSE EXCLUDED.stage END"),
        ("tags", "CASE WHEN jsonb_array_length(EXCLUDED.tags) = 0 THEN t.tags ELSE EXCLUDED.tags END"),
        ("attributes", "t.attributes || EXCLUDED.attributes"),
        ("crm_ids", "t.crm_ids || EXCLUDED.crm_ids")])}
    RETURNING t.id, t.domain
)@CHANGES@
SELECT s.n, o.updated_at >= %(now)s::timestamptz, up.domain IS NOT NULL
FROM _abm_import_accounts s JOIN old o ON o.domain = s.domain LEFT JOIN up ON up.domain = s.domain ORDER BY s.n
"""
_ACCOUNT_CHANGES = """, changes AS (
    INSERT INTO stage_changes (account_id, from_stage, to_stage, changed_at, source, actor_id)
    SELECT up.id, o.stage, s.stage, COALESCE(s.stage_at, %(now)s::timestamptz), 'import', %(actor)s::integer
    FROM _abm_import_accounts s JOIN up ON up.domain = s.domain LEFT JOIN old o ON o.domain = s.domain
    WHERE s.stage IS NOT NULL AND o.stage IS DISTINCT FROM s.stage
)"""
#: (batch without stages, batch with stages)
_ACCOUNT_UPSERTS = (_ACCOUNT_UPSERT.replace("@CHANGES@", ""), _ACCOUNT_UPSERT.replace("@CHANGES@", _ACCOUNT_CHANGES))


class AccountImporter(Importer):
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

    def parse_fields(self, picked: tuple, row: Row) -> bool:
        (domain_text, name, industry, employees, revenue, country, tier, owner, stage, timezone, tags, notes,
         hubspot, salesforce, modified) = picked
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
            values["annual_revenue"] = Decimal(revenue).quantize(CENT)
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
        if "stage" in values:
            self.convert(row, "modified_at", modified, stages.parse_modified,
                         " its stage was taken as undated (it may move forward only)")
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
        value = parse_amount(text).quantize(CENT)
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

    def before_write(self, rows: list[Row]) -> None:
        """Drop the stages that would move an account back behind a later change (see :mod:`.stages`)."""
        staged = [r for r in rows if "stage" in r.values]
        if not staged:
            return
        stored = stages.stored_stages([r.values["domain"] for r in staged])
        db.session.commit()  # end the look-up's transaction (the reading thread's)
        order = self.settings["stages"]
        for row in staged:
            values = row.values
            modified = values.get("modified_at")
            if modified is not None:
                values["stage_at"] = min(modified, self.started)
            if values["domain"] not in stored:
                continue
            why = stages.refusal(*stored[values["domain"]], values["stage"], modified, order)
            if why is not None:
                del values["stage"]
                values.pop("stage_at", None)
                self.report.error(row.number, "stage", why)

    STAGING = staging_sql("accounts", _ACCOUNT_STAGED)

    def copy_line(self, row: Row) -> str:
        get = row.values.get
        return copy_row_line((row.number, row.values["domain"], get("name"), get("industry"), get("employees"),
                           get("annual_revenue"), get("country"), get("tier"), get("owner_id"), get("stage"),
                           get("timezone"), json_or_none(get("tags")), get("notes"), json_or_none(row.attributes),
                           json_or_none(row.crm_ids), get("stage_at")))

    def write_pg(self, rows: list[Row]) -> None:
        old = self.stage_and_run(rows, _ACCOUNT_UPSERTS[any("stage" in r.values for r in rows)])
        by_number = {r.number: r for r in rows}
        for number, again, changed in old:  # the rows whose domain was already stored
            if again:
                self.out.skip(number, "domain", f"an earlier row has the same domain "
                              f"({by_number[number].values['domain']}); this later row's values replaced it "
                              "(the last row wins)")
            elif changed:
                self.out.updated += 1
            else:
                self.out.unchanged += 1
        self.out.created += len(rows) - len(old)

    def write_rows(self, rows: list[Row]) -> None:
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
            return {**coalesce_update(table, ex, self.NULLABLE), **keep_if_blank,
                    "tags": case((empty_tags, table.c.tags), else_=ex.tags),
                    "attributes": self.merged_json(table, "attributes", ex),
                    "crm_ids": self.merged_json(table, "crm_ids", ex)}

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
                                "changed_at": r.values.get("stage_at") or self.started, "source": "import",
                                "actor_id": self.actor_id})
        self.insert_rows(StageChange.__table__, changes)
        self.count(rows, found, set(ids))

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

