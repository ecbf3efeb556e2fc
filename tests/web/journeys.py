"""A playbook running in the live server's app, for the browser tests: three tier-1
accounts (Acme, Birch, Cedar) and one tier-2 (Other), each with a decision maker named
Dee; the playbook applied, activated, and its due steps sent by the worker (emails to the
outbox folder under the server's temporary directory)."""

from __future__ import annotations

from abm.db import db
from abm.models import Account, Contact
from abm.services import connectors
from abm.services import playbooks as playbook_service
from tests.engine.conftest import run_worker
from workers import dispatcher


def accounts_with_decision_makers(names, tier: int = 1) -> None:
    for name in names:
        account = Account(name=name, domain=f"{name.lower()}.example", tier=tier, stage="target")
        db.session.add(account)
        db.session.flush()
        db.session.add(Contact(account_id=account.id, email=f"dm@{account.domain}", first_name="Dee",
                               buying_role="decision_maker"))
    db.session.commit()


def start(live_server, source: str, key: str) -> None:
    """``source`` applied and active on Acme, Birch and Cedar (not Other), its due steps sent."""
    live_server.app.config["OUTBOX_DIR"] = str(live_server.tmp / "outbox")
    connectors.ensure_demo_connectors()
    db.session.commit()
    accounts_with_decision_makers(["Acme", "Birch", "Cedar"])
    accounts_with_decision_makers(["Other"], tier=2)
    playbook_service.apply(source)
    playbook_service.activate(key)
    dispatcher.dispatch(enqueue=True)
    run_worker(live_server.app)
