"""Realistic, deterministic demo data: accounts, contacts, owners, stage histories, deals.

``seed(accounts, seed=42)`` fills an empty database in batches (bulk inserts, a commit
per batch), fast at any size up to a million contacts; the same seed gives the same
data (pass ``now`` too for identical timestamps). ``write_csv(...)`` writes the same
kind of data as HubSpot-style CSV exports, for the import benchmark and tests.
"""

from __future__ import annotations

import csv
import itertools
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, insert, select, text

from abm.db import db, utcnow
from abm.models import Account, Contact, Opportunity, StageChange, User
from abm.services.imports import copy_rows

BATCH_ACCOUNTS = 1000

#: The demo's account executives (created when missing; no password: set one with `abm users`).
AES = [("Avery Brooks", "avery.brooks"), ("Jordan Kim", "jordan.kim"), ("Priya Natarajan", "priya.natarajan"),
       ("Mateo García", "mateo.garcia"), ("Sofia Lindqvist", "sofia.lindqvist")]
AE_DOMAIN = "ourco.example"

_PARTS_A = ["Ac", "Bel", "Cor", "Dyn", "Ever", "Flux", "Gal", "Hel", "Ion", "Jun", "Kel", "Lum", "Mer", "Nor",
            "Orb", "Pax", "Quan", "Ros", "Syn", "Ter", "Ul", "Ver", "Wex", "Xan", "Yor", "Zen", "Al", "Bri",
            "Cal", "Del", "Est", "Fen", "Gr", "Hal", "Ind", "Kor", "Lex", "Mon", "Nov", "Ox"]
_PARTS_B = ["a", "e", "i", "o", "u", "ara", "ento", "ica", "ora", "ix", "on", "is", "ex", "ium", "ana", "ero",
            "ity", "ova", "yst", "ada"]
_PARTS_C = ["", "", "", "n", "x", "s", "tis", "ra", "lo", "va", "go", "ne", "tek", "dia", "ly"]
_SUFFIXES = ["", "", "", "", "Labs", "Systems", "Analytics", "Logistics", "Health", "Bank", "Energy",
             "Robotics", "Software", "Group", "Technologies", "Foods", "Capital", "Networks", "Media",
             "Biosciences", "Industries", "Security", "Cloud", "Mobility", "Retail"]
INDUSTRIES = ["Software", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Logistics", "Energy",
              "Telecommunications", "Education", "Media", "Insurance", "Biotech", "Professional Services"]
#: (country, time zone, top-level domain, phone prefix, weight)
PLACES = [("United States", "America/New_York", "com", "+1", 18), ("United States", "America/Chicago", "com", "+1", 8),
          ("United States", "America/Los_Angeles", "com", "+1", 10), ("United Kingdom", "Europe/London", "co.uk", "+44", 9),
          ("Germany", "Europe/Berlin", "de", "+49", 8), ("France", "Europe/Paris", "fr", "+33", 7),
          ("Netherlands", "Europe/Amsterdam", "nl", "+31", 4), ("Canada", "America/Toronto", "ca", "+1", 5),
          ("Australia", "Australia/Sydney", "com.au", "+61", 4), ("Japan", "Asia/Tokyo", "jp", "+81", 3),
          ("Brazil", "America/Sao_Paulo", "com.br", "+55", 3), ("India", "Asia/Kolkata", "in", "+91", 4),
          ("Spain", "Europe/Madrid", "es", "+34", 3), ("Sweden", "Europe/Stockholm", "se", "+46", 2),
          ("Singapore", "Asia/Singapore", "sg", "+65", 2), ("United States", "America/Denver", "io", "+1", 5)]
FIRST = ["James", "Mary", "Wei", "Fatima", "José", "Zoë", "Søren", "Łukasz", "Aisha", "Hiroshi", "Olivia", "Liam",
         "Noah", "Emma", "Ava", "Lucas", "Mia", "Ethan", "Chloé", "Mateus", "Ingrid", "Ravi", "Ananya", "Yuki",
         "Oliver", "Amelia", "Elena", "Dmitri", "Grace", "Kwame", "Nadia", "Tomás", "Sven", "Leila", "Hannah",
         "Daniel", "Sara", "Marco", "Julia", "Kenji", "Isabel", "Omar", "Priya", "Finn", "Camille", "Arjun"]
LAST = ["Smith", "Johnson", "Nguyen", "Müller", "García", "Rossi", "Kowalski", "Tanaka", "Okafor", "Dubois",
        "Andersen", "Silva", "Patel", "Kim", "Brown", "Martin", "Novak", "Haddad", "O'Brien", "Lindqvist",
        "Schmidt", "Moreau", "Fernández", "Wong", "Singh", "Ivanova", "Cohen", "Larsen", "Costa", "Bianchi",
        "Yamamoto", "Murphy", "Walker", "Hughes", "Jansen", "Petrov", "Sato", "Ali", "Chen", "Lopez"]
TITLES = {
    "decision_maker": ["CEO", "CFO", "CTO", "CIO", "Chief Marketing Officer", "VP Engineering", "VP Sales",
                       "VP Marketing", "Head of IT"],
    "champion": ["Director of Engineering", "Director of Marketing Operations", "Head of Growth",
                 "Senior Engineering Manager", "Director of Revenue Operations"],
    "influencer": ["Product Manager", "Solutions Architect", "Security Lead", "Finance Manager",
                   "Marketing Manager", "Data Science Lead"],
    "user": ["Software Engineer", "Marketing Specialist", "Data Analyst", "Sales Operations Analyst",
             "Account Manager", "Support Engineer"],
    "blocker": ["Procurement Manager", "Legal Counsel", "IT Security Officer", "Compliance Manager"],
    "other": ["Executive Assistant", "Office Manager", "Intern"],
}
ROLE_WEIGHTS = [("decision_maker", 1), ("champion", 2), ("influencer", 4), ("user", 5), ("blocker", 1.5),
                ("other", 1)]
#: The path an account walks; its current stage is where it stopped.
FUNNEL = ["target", "aware", "engaged", "mqa", "opportunity"]
STAGE_WEIGHTS = [("target", 38), ("aware", 20), ("engaged", 15), ("mqa", 8), ("opportunity", 9),
                 ("customer", 7), ("lost", 3)]
PRODUCTS = [("Platform", 60_000), ("Analytics", 25_000), ("Security Add-on", 18_000),
            ("Professional Services", 12_000), ("Premium Support", 9_000)]
OPEN_DEAL_STAGES = ["Discovery", "Demo", "Proposal", "Negotiation"]

ProgressFn = Callable[[int], None]


class SeedError(RuntimeError):
    pass


_CUMULATIVE: dict[int, tuple[list, list]] = {}


def _pick(rng: random.Random, weighted: list[tuple]):
    """A weighted choice (the weight is each tuple's last item); same draws as ``rng.choices``."""
    key = id(weighted)
    if key not in _CUMULATIVE:
        _CUMULATIVE[key] = ([w[0] for w in weighted], list(itertools.accumulate(w[-1] for w in weighted)))
    population, cumulative = _CUMULATIVE[key]
    return rng.choices(population, cum_weights=cumulative)[0]


class Generator:
    """Deterministic fake CRM data: the same seed and ``now`` give the same records."""

    def __init__(self, seed: int = 42, now: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.now = (now or utcnow()).replace(microsecond=0)
        self.domains: set[str] = set()

    def company(self) -> dict:
        rng = self.rng
        stem = rng.choice(_PARTS_A) + rng.choice(_PARTS_B) + rng.choice(_PARTS_C)
        suffix = rng.choice(_SUFFIXES)
        name = f"{stem} {suffix}".strip()
        country, tz, tld, phone, _ = _pick_place(rng)
        base = (stem + suffix).lower()
        domain, n = f"{base}.{tld}", 1
        while domain in self.domains:
            n += 1
            domain = f"{base}{n}.{tld}"
        self.domains.add(domain)
        if n > 1:
            name = f"{name} {_ROMAN.get(n, n)}"
        employees = int(min(250_000, max(5, rng.lognormvariate(5.2, 1.6))))
        revenue = Decimal(int(employees * rng.uniform(90_000, 420_000) / 1000) * 1000)
        tier = 1 if employees > 5000 and rng.random() < 0.6 else (2 if employees > 500 and rng.random() < 0.6
                                                                   else rng.choice([2, 3, 3, 3]))
        segment = "Enterprise" if employees >= 2000 else ("Mid-Market" if employees >= 200 else "SMB")
        return {"name": name, "domain": domain, "industry": rng.choice(INDUSTRIES), "employees": employees,
                "annual_revenue": revenue, "country": country, "timezone": tz, "tier": tier,
                "stage": _pick(rng, STAGE_WEIGHTS), "segment": segment, "phone_prefix": phone}

    def people(self, company: dict, count: int) -> list[dict]:
        rng, out, used = self.rng, [], set()
        for i in range(count):
            role = "decision_maker" if i == 0 else ("champion" if i == 1 else _pick(rng, ROLE_WEIGHTS))
            first, last = rng.choice(FIRST), rng.choice(LAST)
            local = _ascii(f"{first}.{last}")
            n = 1
            while local in used:
                n += 1
                local = _ascii(f"{first}.{last}{n}")
            used.add(local)
            out.append({"first_name": first, "last_name": last, "email": f"{local}@{company['domain']}",
                        "title": rng.choice(TITLES[role]), "buying_role": role,
                        "country": company["country"] if rng.random() < 0.9 else _pick_place(rng)[0],
                        "phone": f"{company['phone_prefix']} {rng.randint(200, 999)} {rng.randint(1000, 9999)}"})
        return out

    def history(self, stage: str) -> list[tuple[str | None, str, datetime]]:
        """Stage changes from creation to ``stage``, oldest first, ending in the last 90 days or so."""
        path = FUNNEL[:FUNNEL.index(stage) + 1] if stage in FUNNEL else FUNNEL + [stage]
        at = self.now - timedelta(days=self.rng.uniform(60, 540))
        changes, before = [], None
        for step in path:
            changes.append((before, step, at))
            before = step
            at = min(self.now - timedelta(hours=1), at + timedelta(days=self.rng.uniform(3, 60)))
        return changes

    def deals(self, company: dict, changes: list) -> list[dict]:
        stage, (_, _, opened) = changes[-1][1], next(c for c in changes if c[1] == "opportunity")
        rng, out = self.rng, []
        size = {1: 3.0, 2: 1.5, 3: 0.7}[company["tier"]]
        for k in range(rng.randint(1, 3)):
            product, base = rng.choice(PRODUCTS)
            amount = Decimal(int(base * size * rng.uniform(0.5, 2.5) / 500) * 500)
            created = opened + timedelta(days=rng.uniform(0, 20) + 15 * k)
            created = min(created, self.now - timedelta(hours=1))
            deal = {"name": f"{company['name']} – {product}", "amount": amount, "currency": "USD",
                    "product": product, "created_at": created, "closed_at": None, "won": None,
                    "stage": rng.choice(OPEN_DEAL_STAGES)}
            if stage in ("customer", "lost"):
                won = stage == "customer" and (k == 0 or rng.random() < 0.5)
                deal.update(won=won, stage="Closed Won" if won else "Closed Lost",
                            closed_at=max(created, changes[-1][2]))
            out.append(deal)
        return out


_ROMAN = {2: "II", 3: "III", 4: "IV", 5: "V"}
_ASCII = str.maketrans({"é": "e", "ë": "e", "ø": "o", "ł": "l", "Ł": "L", "á": "a", "ü": "u", "ç": "c",
                        "í": "i", "ó": "o", "'": "", "ã": "a", "õ": "o", "ñ": "n", "à": "a"})


def _ascii(text: str) -> str:
    return text.translate(_ASCII).lower()


_PLACES = [(p, p[-1]) for p in PLACES]


def _pick_place(rng: random.Random) -> tuple:
    return _pick(rng, _PLACES)


def _owners() -> list[int]:
    """The demo AEs' ids, creating the missing ones."""
    emails = [f"{local}@{AE_DOMAIN}" for _, local in AES]
    found = dict(db.session.execute(select(User.email, User.id).where(User.email.in_(emails))).all())
    for (name, _local), email in zip(AES, emails, strict=True):
        if email not in found:
            user = User(email=email, name=name, role="ae", password_hash=None)
            db.session.add(user)
            db.session.flush()
            found[email] = user.id
    db.session.commit()
    return [found[e] for e in emails]


def seed(accounts: int, seed: int = 42, progress: ProgressFn | None = None,
         now: datetime | None = None) -> dict[str, int]:
    """Generate ``accounts`` accounts with 3 to 12 contacts each into an empty database.

    Returns counts: accounts, contacts, stage_changes, opportunities, users (created).
    ``progress(accounts_done)`` is called after each batch.
    """
    existing = db.session.execute(select(func.count()).select_from(Account)).scalar_one()
    if existing:
        raise SeedError(f"the database already has {existing} accounts; seed fills an empty database "
                        "(use a new database, or import your own data with `abm import`)")
    users_before = db.session.execute(select(func.count()).select_from(User)).scalar_one()
    owners = _owners()
    gen = Generator(seed, now)
    counts = {"accounts": 0, "contacts": 0, "stage_changes": 0, "opportunities": 0}
    done = 0
    while done < accounts:
        size = min(BATCH_ACCOUNTS, accounts - done)
        _write_batch(gen, owners, size, counts)
        db.session.commit()
        done += size
        if progress is not None:
            progress(done)
    counts["users"] = db.session.execute(select(func.count()).select_from(User)).scalar_one() - users_before
    return counts


def _write_batch(gen: Generator, owners: list[int], size: int, counts: dict) -> None:
    rng = gen.rng
    companies, rows = [], []
    for _ in range(size):
        c = gen.company()
        c["changes"] = gen.history(c["stage"])
        created = c["changes"][0][2]
        companies.append(c)
        rows.append({"name": c["name"], "domain": c["domain"], "industry": c["industry"],
                     "employees": c["employees"], "annual_revenue": c["annual_revenue"], "country": c["country"],
                     "timezone": c["timezone"], "tier": c["tier"], "stage": c["stage"],
                     "owner_id": rng.choice(owners) if rng.random() < 0.85 else None,
                     "tags": ["icp"] if c["tier"] == 1 else [], "attributes": {"segment": c["segment"]},
                     "crm_ids": {}, "created_at": created, "updated_at": c["changes"][-1][2],
                     "score": 0.0, "score_ref": 0.0, "engagement": "cold"})
    ids = _insert_accounts(rows)
    contacts, changes, deals = [], [], []
    for account_id, c in zip(ids, companies, strict=True):
        for p in gen.people(c, rng.randint(3, 12)):
            p.update(account_id=account_id, attributes={}, crm_ids={}, created_at=c["changes"][0][2],
                     updated_at=c["changes"][0][2])
            contacts.append(p)
        for before, after, at in c["changes"]:
            changes.append({"account_id": account_id, "from_stage": before, "to_stage": after,
                            "changed_at": at, "source": "seed", "actor_id": None})
        if c["stage"] in ("opportunity", "customer", "lost"):
            for d in gen.deals(c, c["changes"]):
                d.update(account_id=account_id, updated_at=d["closed_at"] or d["created_at"])
                deals.append(d)
    _bulk(Contact, contacts)
    _bulk(StageChange, changes)
    _bulk(Opportunity, deals)
    counts["accounts"] += len(ids)
    counts["contacts"] += len(contacts)
    counts["stage_changes"] += len(changes)
    counts["opportunities"] += len(deals)


def _insert_accounts(rows: list[dict]) -> list[int]:
    """Insert accounts and return their ids in order (COPY with reserved ids on PostgreSQL)."""
    table = Account.__table__
    if db.dialect != "postgresql":
        return [r[0] for r in db.session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)]
    ids = list(db.session.execute(text(
        "SELECT nextval(pg_get_serial_sequence('accounts', 'id')) FROM generate_series(1, :n)"),
        {"n": len(rows)}).scalars())
    for account_id, row in zip(ids, rows, strict=True):
        row["id"] = account_id
    _bulk(Account, rows)
    return ids


def _bulk(model, rows: list[dict]) -> None:
    """Insert many rows: COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    table = model.__table__
    if db.dialect == "postgresql":
        columns = list(rows[0])
        copy_rows(table.name, columns, (tuple(r[c] for c in columns) for r in rows))
    else:
        db.session.execute(insert(table), rows)


ACCOUNT_HEADER = ["Company name", "Company Domain Name", "Industry", "Number of Employees", "Annual Revenue",
                  "Country/Region", "Tier", "Time Zone"]
CONTACT_HEADER = ["Email", "First Name", "Last Name", "Job Title", "Buying Role", "Country/Region",
                  "Phone Number", "Company Domain"]


def generate_rows(n_accounts: int, contacts_per_account: int, seed: int = 42
                  ) -> Iterator[tuple[list, list[list]]]:
    """(account row, its contact rows) in the CSV headers' order, one account at a time."""
    gen = Generator(seed)
    for _ in range(n_accounts):
        c = gen.company()
        account = [c["name"], c["domain"], c["industry"], c["employees"], c["annual_revenue"], c["country"],
                   c["tier"], c["timezone"]]
        people = [[p["email"], p["first_name"], p["last_name"], p["title"], p["buying_role"], p["country"],
                   p["phone"], c["domain"]] for p in gen.people(c, contacts_per_account)]
        yield account, people


def write_csv(accounts_path, contacts_path, n_accounts: int, contacts_per_account: int, seed: int = 42) -> None:
    """Write HubSpot-style accounts and contacts CSV files of generated data (streamed).

    Either path may be None to write only the other file.
    """
    with _open(accounts_path) as af, _open(contacts_path) as cf:
        aw, cw = csv.writer(af), csv.writer(cf)
        aw.writerow(ACCOUNT_HEADER)
        cw.writerow(CONTACT_HEADER)
        for account, people in generate_rows(n_accounts, contacts_per_account, seed):
            aw.writerow(account)
            cw.writerows(people)


class _Null:
    def write(self, _text):
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _open(path):
    return open(path, "w", newline="", encoding="utf-8") if path else _Null()
