"""The reference data behind account identification: networks attached to accounts
(one at a time, or a CSV of ``domain,network``), the ip2asn file (replaced whole), the
map from autonomous systems to accounts, and suggested matches by organisation name.

Each change bumps the data's version so that every process rebuilds its index.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select

from abm import ipranges
from abm.db import db
from abm.errors import NotFound, ValidationError
from abm.models import Account, AccountNetwork, AsnAccount, AsnRange
from abm.normalize import NormalizeError, normalize_domain
from abm.services import identification

ASN_BATCH = 5000
#: Words that say what kind of company, not which one ("Acme Inc" is "acme").
_LEGAL = {"inc", "llc", "ltd", "limited", "corp", "corporation", "co", "company", "gmbh", "ag", "sa", "sas",
          "bv", "nv", "plc", "pty", "srl", "spa", "the", "group", "holdings", "technologies", "technology"}


def _hex(value: int) -> str:
    return f"{value:032x}"


@dataclass
class Report:
    """What a load did: rows written, and each refused row with its line and reason."""

    written: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"written": self.written, "errors": self.errors[:100], "error_count": len(self.errors)}


def _network_row(account_id: int, text: str, source: str) -> dict:
    ip_range = ipranges.parse_range(text)
    return {"account_id": account_id, "network": ip_range.network_text, "version": ip_range.version,
            "range_start": _hex(ip_range.start), "range_end": _hex(ip_range.end), "source": source}


def list_networks(account_id: int) -> list[AccountNetwork]:
    return list(db.session.execute(select(AccountNetwork).where(AccountNetwork.account_id == account_id)
                                   .order_by(AccountNetwork.id)).scalars())


def add_networks(account_id: int, networks: list[str], source: str = "admin") -> list[AccountNetwork]:
    """Attach networks to an account; every bad one is reported by its position."""
    if db.session.get(Account, account_id) is None:
        raise NotFound(f"account {account_id} not found")
    rows, problems = [], []
    for i, text in enumerate(networks):
        try:
            rows.append(_network_row(account_id, str(text), source))
        except ipranges.RangeError as exc:
            problems.append({"path": f"networks[{i}]", "message": str(exc)})
    if problems:
        raise ValidationError(problems)
    added = [AccountNetwork(**row) for row in rows]
    db.session.add_all(added)
    identification.bump("networks")
    db.session.commit()
    return added


def remove_network(account_id: int, network_id: int) -> None:
    row = db.session.get(AccountNetwork, network_id)
    if row is None or row.account_id != account_id:
        raise NotFound(f"network {network_id} not found on account {account_id}")
    db.session.delete(row)
    identification.bump("networks")
    db.session.commit()


def import_networks_csv(text: str, source: str = "import") -> Report:
    """A CSV with columns ``domain`` (the account's) and ``network``; good rows are kept
    whatever the bad ones, each bad row reported by line and field."""
    report = Report()
    reader = csv.DictReader(io.StringIO(text))
    missing = {"domain", "network"} - {(h or "").strip().lower() for h in (reader.fieldnames or [])}
    if missing:
        raise ValidationError([{"path": "file", "message": f"the header needs the column(s) {', '.join(sorted(missing))}"}])
    wanted: list[tuple[int, str, str]] = []
    for line, raw in enumerate(reader, 2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        try:
            wanted.append((line, normalize_domain(row["domain"]), row["network"]))
        except NormalizeError as exc:
            report.errors.append({"line": line, "field": "domain", "message": str(exc)})
    accounts = _accounts_by_domain({d for _, d, _ in wanted})
    rows = []
    for line, domain, network in wanted:
        if domain not in accounts:
            report.errors.append({"line": line, "field": "domain", "message": f"no account has the domain {domain}"})
            continue
        try:
            rows.append(_network_row(accounts[domain], network, source))
        except ipranges.RangeError as exc:
            report.errors.append({"line": line, "field": "network", "message": str(exc)})
    if rows:
        db.session.execute(insert(AccountNetwork), rows)
        identification.bump("networks")
    db.session.commit()
    report.written = len(rows)
    return report


def _accounts_by_domain(domains: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    items = sorted(domains)
    for i in range(0, len(items), 1000):
        found.update(dict(db.session.execute(select(Account.domain, Account.id)
                                             .where(Account.domain.in_(items[i:i + 1000]))).all()))
    return found


def load_ip2asn(lines: Iterable[str], progress=None) -> Report:
    """Replace the ip2asn data with this file's rows (TSV: range start, range end, AS
    number, country, AS description), in batches; bad lines are reported, not fatal."""
    report = Report()
    db.session.execute(delete(AsnRange))
    batch: list[dict] = []
    for line, row, problem in ipranges.read_ip2asn(lines):
        if problem:
            report.errors.append({"line": line, "message": problem})
            continue
        batch.append({"version": row.range.version, "range_start": _hex(row.range.start),
                      "range_end": _hex(row.range.end), "asn": row.asn, "country": row.country,
                      "description": row.description})
        if len(batch) >= ASN_BATCH:
            _flush(batch, report, progress)
    _flush(batch, report, progress)
    identification.bump("ip2asn")
    db.session.commit()
    return report


def _flush(batch: list[dict], report: Report, progress) -> None:
    if batch:
        db.session.execute(insert(AsnRange), batch)
        report.written += len(batch)
        if progress:
            progress(len(batch))
        batch.clear()


def map_asn(account_id: int, asn: int | None = None, org_name: str | None = None) -> AsnAccount:
    """Say that an autonomous system (by number, or by its ip2asn description) is the account's."""
    if (asn is None) == (not org_name):
        raise ValidationError([{"path": "asn", "message": "give either an AS number or an organisation name"}])
    if db.session.get(Account, account_id) is None:
        raise NotFound(f"account {account_id} not found")
    row = AsnAccount(account_id=account_id, asn=asn, org_name=org_name if asn is None else None)
    db.session.add(row)
    identification.bump("ip2asn")
    db.session.commit()
    return row


def _name_key(name: str) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", name.lower()) if w not in _LEGAL]
    return " ".join(words)


def suggest_asn_matches(limit: int = 200) -> list[dict]:
    """Accounts whose name appears as whole words in an AS's organisation name, not yet
    mapped: ``{account_id, account, domain, asn, description}``, for an admin to accept."""
    mapped = set(db.session.execute(select(AsnAccount.asn).where(AsnAccount.asn.is_not(None))).scalars())
    systems = db.session.execute(select(AsnRange.asn, func.min(AsnRange.description)).group_by(AsnRange.asn)).all()
    by_word: dict[str, list[tuple[int, str, str]]] = {}
    for asn, description in systems:
        if asn in mapped:
            continue
        key = f" {_name_key(description)} "
        for word in set(key.split()):
            by_word.setdefault(word, []).append((asn, description, key))
    out = []
    for account_id, name, domain in db.session.execute(select(Account.id, Account.name, Account.domain)):
        key = _name_key(name)
        if len(key) < 3:
            continue
        for asn, description, desc_key in by_word.get(key.split()[0], ()):
            if f" {key} " in desc_key:
                out.append({"account_id": account_id, "account": name, "domain": domain,
                            "asn": asn, "description": description})
                if len(out) >= limit:
                    return out
    return out
