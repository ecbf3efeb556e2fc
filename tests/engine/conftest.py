"""Engine fixtures: a log connector counting at the connector, accounts, an in-process
RQ worker, and an injectable clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rq import Queue, SimpleWorker

from abm.db import db
from abm.models import Account, Contact, User
from abm.redis_conn import get_redis
from abm.services import connectors

# A Monday, 10:00 UTC: inside the default send window.
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
CHANNELS = ["email", "ads", "alert", "task", "webhook"]


class Clock:
    def __init__(self, at: datetime = T0):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta) -> datetime:
        self.at = self.at + delta
        return self.at


@pytest.fixture
def clock(app):
    c = Clock()
    app.config["ABM_CLOCK"] = c
    yield c
    app.config.pop("ABM_CLOCK", None)


@pytest.fixture
def sent_log(app, tmp_path) -> Path:
    """A ``log`` connector named ``log``, the default of every channel, appending one
    JSON line per touch it receives to the returned file."""
    path = tmp_path / "sent.jsonl"
    connectors.create({"type": "log", "name": "log", "settings": {"path": str(path)}, "default": CHANNELS})
    return path


def sent_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_account(name: str, stage: str = "target", tier: int = 1, industry: str = "fintech",
                 contacts=(("decision_maker", "CISO"),), owner: User | None = None, **fields) -> Account:
    domain = fields.pop("domain", f"{name.lower().replace(' ', '')}.example")
    account = Account(name=name, domain=domain, stage=stage, tier=tier, industry=industry,
                      owner_id=owner.id if owner else None, **fields)
    db.session.add(account)
    db.session.flush()
    for i, (role, title) in enumerate(contacts):
        db.session.add(Contact(account_id=account.id, email=f"c{i}@{domain}", first_name=f"P{i}",
                               buying_role=role, title=title))
    db.session.commit()
    return account


def run_worker(app) -> int:
    """Run the touches queue to empty in this process; returns the jobs that ran."""
    conn = get_redis()
    queue = Queue("touches", connection=conn)
    worker = SimpleWorker([queue], connection=conn)
    before = queue.count
    worker.work(burst=True, logging_level="WARNING")
    return before


@pytest.fixture
def worker(app):
    return lambda: run_worker(app)
