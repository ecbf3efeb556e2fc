"""Helpers for the API tests: seeding accounts in bulk, reading every page of a list."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from abm.db import db
from abm.models import Account
from abm.services.users import create_user


@pytest.fixture
def seed_accounts(app):
    """seed_accounts(rows) -> ids: insert account dicts in one statement (name, domain, ...)."""

    def _seed(rows: list[dict]) -> list[int]:
        defaults = {"stage": "target", "engagement": "cold", "score": 0.0, "score_ref": 0.0, "tags": [],
                    "attributes": {}, "crm_ids": {}}
        db.session.execute(insert(Account), [{**defaults, **r} for r in rows])
        db.session.commit()
        domains = [r["domain"] for r in rows]
        by_domain = dict(db.session.execute(select(Account.domain, Account.id).where(Account.domain.in_(domains))).all())
        return [by_domain[d] for d in domains]

    return _seed


def walk(client, url: str, limit: int, cursor: str | None = None) -> list[list[dict]]:
    """Every page of a list (from ``cursor``), following next_cursor; asserts each page's shape."""
    pages = []
    sep = "&" if "?" in url else "?"
    while True:
        r = client.get(f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.json
        assert set(r.json) == {"items", "next_cursor"}
        assert len(r.json["items"]) <= limit
        pages.append(r.json["items"])
        cursor = r.json["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 1000, "the cursor does not advance"


@pytest.fixture
def make_user(app):
    """make_user(role, email=None) -> User without a password: the API tests use tokens, and
    skipping the (deliberately slow) password hash keeps them fast."""
    counter = {"n": 0}

    def _make(role: str = "admin", email: str | None = None, name: str = ""):
        counter["n"] += 1
        return create_user(email=email or f"{role}{counter['n']}@example.com", role=role, password=None, name=name)

    return _make
