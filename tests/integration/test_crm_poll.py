"""The periodic CRM poll against the fake HubSpot and Salesforce APIs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from abm.db import db
from abm.models import Account, ConnectorConfig, Opportunity, StageChange
from abm.redis_conn import get_redis
from abm.services import connectors, crm_poll, crm_sync
from abm.services import settings as settings_service
from tests.integration.conftest import hubspot_connector, salesforce_connector
from workers import crm_jobs
from workers.queues import QUEUE_NAMES
from workers.scheduler import _resolve


def accounts(*domains: str) -> list[Account]:
    rows = [Account(name=d.split(".")[0].title(), domain=d, stage="target") for d in domains]
    db.session.add_all(rows)
    db.session.commit()
    return rows


def crm_moves(account_id: int | None = None) -> list[tuple]:
    query = select(StageChange.account_id, StageChange.from_stage, StageChange.to_stage, StageChange.source).where(
        StageChange.source.like("crm:%")).order_by(StageChange.id)
    if account_id is not None:
        query = query.where(StageChange.account_id == account_id)
    return list(db.session.execute(query).all())


def test_hubspot_poll_maps_stages_links_accounts_and_upserts_deals(app, hubspot):
    fake, server = hubspot
    acme, beta, _ = accounts("acme.example", "beta.example", "quiet.example")
    settings_service.update({"crm_stage_map": {"lead": "aware"}})
    hubspot_connector(server, stage_map={"salesqualifiedlead": "mqa", "weird": "no_such_stage"})
    fake.put("companies", "101", name="Acme", domain="https://www.acme.example", lifecyclestage="salesqualifiedlead")
    fake.put("companies", "102", name="Beta", domain="beta.example", lifecyclestage="lead")
    fake.put("companies", "103", name="Gamma", domain="gamma.example", lifecyclestage="lead")  # not ours
    fake.put("deals", "501", dealname="Acme pilot", amount="5000", dealstage="appointmentscheduled",
             deal_currency_code="EUR", createdate="2026-01-02T03:04:05Z", hs_is_closed="false")
    fake.deal_company["501"] = "101"

    result = crm_jobs.poll_crms()["hs"]
    assert result["stages"] == 2 and result["opportunities"] == 1 and result["unmatched"] == 1
    assert result["more"] is False
    db.session.expire_all()
    assert crm_moves() == [(acme.id, "target", "mqa", "crm:hs"), (beta.id, "target", "aware", "crm:hs")]
    assert db.session.get(Account, acme.id).crm_ids == {"hs": "101"}
    assert db.session.get(Account, beta.id).crm_ids == {"hs": "102"}
    opp = db.session.execute(select(Opportunity)).scalar_one()
    assert (opp.crm_id, opp.account_id, opp.name, opp.amount, opp.currency, opp.stage) == (
        "hs:501", acme.id, "Acme pilot", Decimal("5000.00"), "EUR", "appointmentscheduled")
    assert opp.created_at.year == 2026 and opp.created_at.month == 1

    # Nothing changed in HubSpot: the next poll reads nothing new and changes nothing.
    again = crm_jobs.poll_crms()["hs"]
    assert again["events"] == 0 and len(crm_moves()) == 2

    # A later change, and a stage that maps to no workspace stage (counted, not raised).
    fake.put("companies", "102", lifecyclestage="salesqualifiedlead")
    fake.put("companies", "101", lifecyclestage="weird")
    fake.put("deals", "501", dealstage="closedwon", hs_is_closed="true", hs_is_closed_won="true",
             closedate="2026-02-01T00:00:00Z")
    third = crm_jobs.poll_crms()["hs"]
    assert (third["events"], third["stages"], third["unknown_stage"]) == (3, 1, 1)
    db.session.expire_all()
    assert crm_moves(beta.id)[-1] == (beta.id, "aware", "mqa", "crm:hs")
    assert db.session.get(Account, acme.id).stage == "mqa"
    opp = db.session.execute(select(Opportunity)).scalar_one()
    assert opp.won is True and opp.closed_at is not None and opp.stage == "closedwon"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_poll_that_fails_half_way_resumes_without_loss_or_duplicates(app, hubspot):
    fake, server = hubspot
    domains = [f"co{i}.example" for i in range(6)]
    rows = accounts(*domains)
    hubspot_connector(server, page_size=1, max_pages=1, stage_map={"customer": "customer"})
    for i, domain in enumerate(domains):
        fake.put("companies", str(200 + i), name=f"Co{i}", domain=domain, lifecyclestage="customer")
    # The fourth company search answers 503: three companies are in, the rest must follow.
    fake.fail("/crm/v3/objects/companies/search", 503, {"status": "error", "message": "down"}, skip=3, times=1)

    first = crm_poll.poll_all()["hs"]
    assert first["rounds"] == 3 and "503" in first["error"]
    db.session.expire_all()
    assert len(crm_moves()) == 3
    state = db.session.execute(select(ConnectorConfig.state).where(ConnectorConfig.name == "hs")).scalar_one()
    assert "503" in state["crm_poll"]["last_error"]
    assert state["crm_poll"]["cursor"]["companies"]["ids_at_since"] == ["202"]

    second = crm_poll.poll_all()["hs"]
    assert "error" not in second and second["more"] is False
    db.session.expire_all()
    moves = crm_moves()
    assert sorted(m[0] for m in moves) == sorted(a.id for a in rows)  # each account once, none lost
    assert {a.stage for a in db.session.execute(select(Account)).scalars()} == {"customer"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_crash_before_the_commit_keeps_the_old_cursor(app, hubspot, monkeypatch):
    """Events and cursor are saved in one commit: dying in between loses nothing."""
    fake, server = hubspot
    (acme,) = accounts("acme.example")
    hubspot_connector(server, stage_map={"customer": "customer"})
    fake.put("companies", "101", domain="acme.example", lifecyclestage="customer")
    real = crm_sync.apply

    def crash(events, commit=True):
        real(events, commit=False)
        raise RuntimeError("worker killed")

    monkeypatch.setattr(crm_sync, "apply", crash)
    try:
        crm_poll.poll_connector("hs")
    except RuntimeError:
        db.session.rollback()
    db.session.expire_all()
    assert crm_moves() == [] and crm_poll.cursor_of(db.session.execute(
        select(ConnectorConfig).where(ConnectorConfig.name == "hs")).scalar_one()) is None
    monkeypatch.setattr(crm_sync, "apply", real)
    crm_poll.poll_connector("hs")
    assert crm_moves() == [(acme.id, "target", "customer", "crm:hs")]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_salesforce_poll_accounts_and_opportunities(app, salesforce):
    fake, server = salesforce
    acme, beta = accounts("acme.example", "beta.example")
    salesforce_connector(server, stage_map={"Customer - Direct": "customer", "Prospect": "aware"})
    fake.put("Account", "001A", Name="Acme", Website="https://acme.example", Type="Prospect")
    fake.put("Account", "001B", Name="Beta", Website="beta.example", Type="Customer - Direct")
    fake.put("Opportunity", "006X", Name="Acme expansion", Amount=12000, StageName="Prospecting",
             CloseDate="2026-03-01", CreatedDate="2026-01-05T10:00:00.000+0000", IsClosed=False, IsWon=False,
             AccountId="001A")

    result = crm_jobs.poll_crms()["sf"]
    assert (result["stages"], result["opportunities"]) == (2, 1)
    db.session.expire_all()
    assert crm_moves() == [(acme.id, "target", "aware", "crm:sf"), (beta.id, "target", "customer", "crm:sf")]
    opp = db.session.execute(select(Opportunity)).scalar_one()
    assert (opp.crm_id, opp.account_id, opp.amount) == ("sf:006X", acme.id, Decimal("12000.00"))
    assert crm_jobs.poll_crms()["sf"]["events"] == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_deal_webhook_with_only_the_deal_id_updates_the_known_opportunity(app):
    (acme,) = accounts("acme.example")
    base = {"occurred_at": "2026-01-01T00:00:00+00:00", "source": "hs"}
    crm_sync.apply([{**base, "type": "opportunity", "crm_id": "501", "account_domain": "acme.example",
                     "properties": {"name": "Pilot", "amount": 100, "crm_stage": "appointmentscheduled"}}])
    counts = crm_sync.apply([{**base, "type": "opportunity", "crm_id": "501",
                              "properties": {"crm_stage": "closedwon", "stage": None}},
                             {**base, "type": "opportunity", "crm_id": "999",
                              "properties": {"crm_stage": "closedwon", "stage": None}}])
    assert counts["opportunities"] == 1 and counts["unmatched"] == 1
    opp = db.session.execute(select(Opportunity)).scalar_one()
    assert (opp.stage, opp.name, opp.amount, opp.account_id) == ("closedwon", "Pilot", Decimal("100.00"), acme.id)
    assert db.session.execute(select(func.count()).select_from(Opportunity)).scalar_one() == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_disabled_or_non_crm_connectors_are_not_polled(app, hubspot):
    fake, server = hubspot
    hubspot_connector(server)
    connectors.ensure_demo_connectors()
    connectors.set_enabled("hs", False)
    assert crm_jobs.poll_crms() == {}
    assert fake.calls == {}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_periodic_jobs_are_declared_and_run_in_a_worker(app, hubspot):
    for path, queue, every in crm_jobs.PERIODIC:
        assert callable(_resolve(path)) and queue in QUEUE_NAMES and every >= 60
    fake, server = hubspot
    (acme,) = accounts("acme.example")
    hubspot_connector(server, stage_map={"customer": "customer"})
    fake.put("companies", "101", domain="acme.example", lifecyclestage="customer")
    conn = get_redis()
    job = Queue("default", connection=conn).enqueue("workers.crm_jobs.poll_crms")
    SimpleWorker([Queue("default", connection=conn)], connection=conn).work(burst=True, logging_level="WARNING")
    job.refresh()
    assert job.get_status() == "finished" and job.return_value()["hs"]["stages"] == 1
    assert crm_moves() == [(acme.id, "target", "customer", "crm:hs")]


def test_a_deal_first_seen_by_webhook_takes_hubspots_createdate_from_the_poll(app, hubspot):
    """The webhook carries no creation date; the poll's createdate replaces the first-seen time."""
    fake, server = hubspot
    (acme,) = accounts("acme.example")
    hubspot_connector(server)
    crm_sync.apply([{"occurred_at": "2026-03-01T10:00:00+00:00", "source": "hs", "type": "opportunity",
                     "crm_id": "501", "account_domain": "acme.example",
                     "properties": {"crm_stage": "appointmentscheduled", "stage": None}}])
    fake.put("companies", "101", name="Acme", domain="acme.example", lifecyclestage="lead")
    fake.put("deals", "501", dealname="Acme pilot", dealstage="appointmentscheduled",
             createdate="2026-01-02T03:04:05Z", hs_is_closed="false")
    fake.deal_company["501"] = "101"
    crm_jobs.poll_crms()
    db.session.expire_all()
    opp = db.session.execute(select(Opportunity)).scalar_one()
    assert opp.created_at.replace(tzinfo=None).isoformat() == "2026-01-02T03:04:05"
