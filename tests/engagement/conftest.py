"""Fixtures for engagement tests: accounts, contacts and touches made directly."""

from __future__ import annotations

import json

import pytest

from abm.db import db, utcnow
from abm.models import Account, Contact, Enrollment, Playbook, PlaybookVersion, Touch
from abm.redis_conn import get_redis
from abm.services import engine_hooks
from abm.services import settings as settings_service
from abm.services.events import QUEUE_KEY


@pytest.fixture
def notified(monkeypatch):
    """Records what the drain tells the engine (the engine's own tests cover what it does)."""
    calls = []

    monkeypatch.setattr(engine_hooks, "engagement_changed",
                        lambda ids, by_type, previous, now: calls.append(
                            (set(ids), {k: set(v) for k, v in by_type.items()}, dict(previous))))
    return calls


@pytest.fixture
def world(app, notified):
    """Two accounts with contacts and one sent email touch."""
    acme = Account(name="Acme", domain="acme.com", stage="aware")
    globex = Account(name="Globex", domain="globex.com", stage="target")
    db.session.add_all([acme, globex])
    db.session.flush()
    jane = Contact(account_id=acme.id, email="jane@acme.com", first_name="Jane", buying_role="champion")
    bob = Contact(account_id=acme.id, email="bob@acme.com", first_name="Bob", buying_role="user")
    db.session.add_all([jane, bob])
    pb = Playbook(key="intro", name="Intro", status="active")
    db.session.add(pb)
    db.session.flush()
    ver = PlaybookVersion(playbook_id=pb.id, version=1, source="", compiled={})
    db.session.add(ver)
    db.session.flush()
    enr = Enrollment(playbook_id=pb.id, version_id=ver.id, account_id=acme.id)
    db.session.add(enr)
    db.session.flush()
    touch = Touch(enrollment_id=enr.id, playbook_id=pb.id, account_id=acme.id, contact_id=jane.id,
                  contact_key=jane.id, step_id="intro", kind="email", channel="email", status="sent",
                  sent_at=utcnow())
    db.session.add(touch)
    db.session.commit()
    return {"acme": acme, "globex": globex, "jane": jane, "bob": bob, "playbook": pb, "touch": touch}


SITE_ORIGIN = "https://acme-vendor.example"


def add_site(origins=(SITE_ORIGIN,), name: str = "www", **settings) -> str:
    """Set up one website for the snippet (as an admin does in the settings); its key."""
    data = settings_service.update({"sites": [{"name": name, "origins": list(origins)}], **settings})
    return data["sites"][0]["key"]


def queued(app) -> list:
    return [json.loads(x) for x in get_redis().lrange(QUEUE_KEY, 0, -1)]
