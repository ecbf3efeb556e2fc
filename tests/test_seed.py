"""Demo data: deterministic for a seed, realistic in shape, refused on a database in use."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from abm.db import db
from abm.models import Account, Contact, Opportunity, StageChange, User
from abm.services import seed
from abm.services import settings as settings_service
from abm.services.imports import import_accounts, import_contacts
from tests.conftest import empty_database

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def snapshot():
    accounts = db.session.execute(select(Account.domain, Account.name, Account.industry, Account.employees,
                                         Account.annual_revenue, Account.tier, Account.stage, Account.country,
                                         Account.timezone, Account.created_at).order_by(Account.id)).all()
    contacts = db.session.execute(select(Contact.email, Contact.first_name, Contact.title, Contact.buying_role)
                                  .order_by(Contact.id)).all()
    deals = db.session.execute(select(Opportunity.name, Opportunity.amount, Opportunity.won)
                               .order_by(Opportunity.id)).all()
    return accounts, contacts, deals


def reset():
    db.session.rollback()  # the snapshot's reads hold locks that TRUNCATE would wait for
    empty_database(db.engine)


def test_same_seed_same_data_other_seed_other_data(app):
    counts = seed.seed(40, seed=7, now=NOW)
    first = snapshot()
    reset()
    assert seed.seed(40, seed=7, now=NOW) == counts
    assert snapshot() == first
    reset()
    seed.seed(40, seed=8, now=NOW)
    assert snapshot()[0] != first[0]


def test_data_is_realistic(app):
    counts = seed.seed(60, seed=3, now=NOW)
    assert counts["accounts"] == 60 and counts["users"] == len(seed.AES)
    per_account = Counter(db.session.execute(select(Contact.account_id)).scalars())
    assert len(per_account) == 60 and all(3 <= n <= 12 for n in per_account.values())
    assert sum(per_account.values()) == counts["contacts"]
    settings = settings_service.current()
    roles = set(db.session.execute(select(Contact.buying_role)).scalars())
    assert roles == set(settings["roles"])
    accounts = db.session.execute(select(Account)).scalars().all()
    assert {a.stage for a in accounts} <= set(settings["stages"])
    assert len({a.domain for a in accounts}) == 60 and all("." in a.domain for a in accounts)
    assert all(a.timezone and a.country and a.industry and a.employees > 0 for a in accounts)
    assert {a.tier for a in accounts} <= {1, 2, 3}
    owners = set(db.session.execute(select(User.id).where(User.role == "ae")).scalars())
    assert {a.owner_id for a in accounts if a.owner_id} <= owners
    for a in accounts:  # every account's history ends in its stage, in time order
        history = db.session.execute(select(StageChange).where(StageChange.account_id == a.id)
                                     .order_by(StageChange.changed_at, StageChange.id)).scalars().all()
        assert history[0].from_stage is None and history[-1].to_stage == a.stage
        assert all(h.changed_at <= NOW for h in history)
        deals = db.session.execute(select(Opportunity).where(Opportunity.account_id == a.id)).scalars().all()
        if a.stage in ("opportunity", "customer", "lost"):
            assert deals and all(d.amount > 0 and d.product for d in deals)
            if a.stage == "customer":
                assert any(d.won for d in deals)
        else:
            assert not deals
    emails = db.session.execute(select(Contact.email, Account.domain).join(Account)).all()
    assert all(email.endswith("@" + domain) for email, domain in emails)


def test_seed_refuses_a_database_with_accounts(app, runner):
    seed.seed(2, now=NOW)
    with pytest.raises(seed.SeedError, match="already has 2 accounts"):
        seed.seed(2)
    result = runner.invoke(args=["seed", "--accounts", "3"])
    assert result.exit_code == 1 and "already has 2 accounts" in result.output


def test_seed_command(app, runner):
    result = runner.invoke(args=["seed", "--accounts", "5", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "5 accounts" in result.output
    assert db.session.execute(select(func.count()).select_from(Account)).scalar_one() == 5


def test_write_csv_reimports_cleanly(app, tmp_path):
    accounts_csv, contacts_csv = tmp_path / "a.csv", tmp_path / "c.csv"
    seed.write_csv(accounts_csv, contacts_csv, 30, 4, seed=5)
    with open(contacts_csv, newline="", encoding="utf-8") as f:
        assert sum(1 for _ in csv.reader(f)) == 1 + 30 * 4
    with open(accounts_csv, "rb") as f:
        report = import_accounts(f)
    assert report.created == 30 and report.errors == []
    with open(contacts_csv, "rb") as f:
        report = import_contacts(f)
    assert report.created == 120 and report.errors == [] and report.unlinked == 0
