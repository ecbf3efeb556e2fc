"""Conditions on opportunities in audiences, segments, the dry run's funnel and exits:
counted against an independent SQL query on both backends, and an exit "when a deal
opens" that works while the account's stage stays where it is -- in process with a
simulated clock, and with the production recipe (``abm worker`` and ``abm scheduler``);
and a ``wait_until`` on an opportunity in the engine, on a simulated clock: the
enrollment waits through deals that do not match, moves on when one does, and follows
``on_timeout`` when none opens in time."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from ruamel.yaml import YAML
from sqlalchemy import bindparam, select, text

from abm.db import UTCDateTime, db, utcnow
from abm.models import Account, Enrollment, Opportunity, Touch
from abm.services import audience, segments
from abm.services import opportunities as opportunity_service
from abm.services import playbooks as playbook_service
from playbooks.conditions import evaluate
from playbooks.settings import parse_account_condition
from tests.engine.conftest import make_account, sent_lines
from tests.engine.processes import Recipe, wait_for
from workers import dispatcher

CONDITION = """tier: [1]
opportunity:
  stage: [Prospecting, Proposal]
  product: Platform
  amount: {at_least: 10000}
  created_within: 30d
"""
INDEPENDENT = text("""SELECT count(*) FROM accounts a WHERE a.tier = 1 AND EXISTS (
  SELECT 1 FROM opportunities o WHERE o.account_id = a.id AND o.stage IN ('Prospecting', 'Proposal')
  AND o.product = 'Platform' AND o.amount >= 10000 AND o.created_at >= :since AND o.created_at <= :now)""")
NO_DEAL = text("""SELECT count(*) FROM accounts a WHERE NOT EXISTS (
  SELECT 1 FROM opportunities o WHERE o.account_id = a.id AND o.created_at <= :now)""")
#: (stage, product, amount, days ago); an account gets the deals of its row (n % 6).
DEALS = [
    [("Prospecting", "Platform", 25000, 3)],                                  # in
    [("Proposal", "Platform", 10000, 29)],                                    # in (bounds inclusive)
    [("Prospecting", "Platform", 25000, 45)],                                 # too old
    [("Prospecting", "Other", 50000, 2), ("Proposal", "Platform", 900, 2)],   # no one deal matches
    [("prospecting", "Platform", 25000, 2), ("Closed Lost", "Platform", None, 1)],  # case, no amount
    [],                                                                       # no deal
]


def _seed(now):
    for n in range(24):
        account = make_account(f"Opp{n:02d}", tier=1 + (n // 12), contacts=())
        for stage, product, amount, days in DEALS[n % 6]:
            db.session.add(Opportunity(account_id=account.id, name=f"Deal {n}", stage=stage, product=product,
                                       amount=Decimal(amount) if amount is not None else None,
                                       created_at=now - timedelta(days=days)))
    db.session.commit()


def _independent(query, now, **extra) -> int:
    typed = query.bindparams(*(bindparam(name, type_=UTCDateTime) for name in ("now", *extra)))
    return db.session.execute(typed, {"now": now, **extra}).scalar_one()


def test_opportunity_conditions_count_what_an_independent_query_counts(app, sent_log, clock):
    now = clock()
    _seed(now)
    expected = _independent(INDEPENDENT, now, since=now - timedelta(days=30))
    assert expected == 4  # rows 0 and 1 of the first twelve (tier 1)
    condition = parse_account_condition(_yaml(CONDITION), "where", ["target"], [])
    assert audience.count_matching(condition, now) == expected
    ids = audience.matching_ids(condition, now)
    facts = audience.load_facts([a for (a,) in db.session.execute(select(Account.id))], now, since=None)
    assert {i for i, f in facts.items() if evaluate(condition, f, now)} == set(ids)

    no_deal = parse_account_condition({"not": {"opportunity": {}}}, "where", ["target"], [])
    assert audience.count_matching(no_deal, now) == _independent(NO_DEAL, now) == 4

    segments.save("open-platform-deals", CONDITION)
    assert segments.count(segments.get("open-platform-deals")) == expected
    members, _ = segments.members("open-platform-deals")
    assert {m["id"] for m in members} == set(ids)
    assert all("an opportunity where stage is one of \"Prospecting\", \"Proposal\" and product is \"Platform\" "
               "and amount >= 10000 created within 30d" in m["reasons"] for m in members)

    source = PLAYBOOK.replace("  where: {tier: [1]}", "  segment: open-platform-deals")
    plan = playbook_service.plan(source, now=now)
    assert plan["entering"] == expected
    assert [(f["label"], f["kept"]) for f in plan["funnel"]][:3] == [
        ("accounts in the workspace", 24), ("tier is one of 1", 12),
        ("an opportunity where stage is one of \"Prospecting\", \"Proposal\" and product is \"Platform\" and "
         "amount >= 10000 created within 30d", expected)]


def _yaml(source: str):
    return YAML(typ="safe").load(source)


PLAYBOOK = """version: 1
key: until-a-deal
name: Until a deal opens
audience:
  where: {tier: [1]}
exit_when:
  opportunity: {created_within: 30d}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    alert: {to: seller@example.com, message: "Say hello to {{ account.name }}"}
  - wait: 7d
  - id: follow-up
    alert: {to: seller@example.com, message: "Follow up with {{ account.name }}"}
"""


def _enrollment(account_id: int) -> Enrollment:
    db.session.rollback()
    return db.session.execute(select(Enrollment).where(Enrollment.account_id == account_id)).scalar_one()


def test_an_exit_when_a_deal_opens_needs_no_stage_change(app, sent_log, clock, api):
    quiet = make_account("Quiet", contacts=())
    dealt = make_account("Dealt", contacts=())
    playbook_service.apply(PLAYBOOK)
    assert playbook_service.activate("until-a-deal", now=clock())["enrolled"] == 2
    dispatcher.dispatch(now=clock(), enqueue=False)
    assert _enrollment(dealt.id).state == "waiting"

    clock.advance(timedelta(days=2))
    created = api("admin").post("/api/v1/opportunities", json={"account_id": dealt.id, "name": "First deal",
                                                              "stage": "Discovery", "amount": 5000})
    assert created.status_code == 201, created.get_json()
    assert _enrollment(dealt.id).next_run_at <= clock()  # woken: checked on the next dispatch
    dispatcher.dispatch(now=clock(), enqueue=False)
    exited = _enrollment(dealt.id)
    assert (exited.state, exited.exit_reason) == ("exited", "exit_condition")
    assert db.session.get(Account, dealt.id).stage == "target"  # the CRM moved nothing

    clock.advance(timedelta(days=6))
    dispatcher.dispatch(now=clock(), enqueue=False)
    steps = db.session.execute(select(Touch.account_id, Touch.step_id)).all()
    assert sorted(steps) == sorted([(quiet.id, "hello"), (dealt.id, "hello"), (quiet.id, "follow-up")])


@pytest.fixture
def _postgresql_only(backend):
    if backend != "postgresql":
        pytest.skip("the production recipe's processes run against PostgreSQL here (SQLite: the test above)")


@pytest.mark.usefixtures("_postgresql_only")
def test_with_a_real_worker_a_new_deal_ends_the_wait_at_once(app, sent_log):
    account = make_account("Dealt", contacts=())
    playbook_service.apply(PLAYBOOK)
    playbook_service.activate("until-a-deal")
    with Recipe(app, workers=1):
        wait_for(lambda: _enrollment(account.id).state == "waiting", 40, "the first step sent, then the wait")
        opportunity_service.create({"account_id": account.id, "name": "Deal", "stage": "Discovery"})
        wait_for(lambda: _enrollment(account.id).state == "exited", 30, "the exit on the next dispatch")
    assert _enrollment(account.id).exit_reason == "exit_condition"
    assert db.session.get(Account, account.id).stage == "target"
    assert utcnow() - _enrollment(account.id).left_at < timedelta(seconds=30)


WAIT_FOR_A_DEAL = """version: 1
key: wait-for-a-deal
name: Wait for a deal
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    alert: {to: seller@example.com, message: "Say hello to {{ account.name }}"}
  - id: until-a-deal
    wait_until:
      condition:
        opportunity: {stage: [Proposal], product: Platform, amount: {at_least: 10000}, created_within: 30d}
      timeout: 14d
      on_timeout: nurture
  - id: celebrate
    alert: {to: seller@example.com, message: "{{ account.name }} opened a deal"}
  - exit: true
  - id: nurture
    alert: {to: seller@example.com, message: "No deal at {{ account.name }} yet"}
"""


def _messages(sent_log) -> list[str]:
    return [line["payload"]["message"] for line in sent_lines(sent_log)]


def test_a_wait_until_an_opportunity_opens_moves_on_when_one_does(app, sent_log, clock, worker, api):
    account = make_account("Dealt", contacts=())
    playbook_service.apply(WAIT_FOR_A_DEAL)
    assert playbook_service.activate("wait-for-a-deal", now=clock())["enrolled"] == 1
    dispatcher.dispatch(now=clock())
    worker()
    assert _messages(sent_log) == ["Say hello to Dealt"]
    assert _enrollment(account.id).state == "waiting"

    clock.advance(timedelta(days=3))
    # A deal that matches all but the amount is no deal for this wait.
    small = api("admin").post("/api/v1/opportunities", json={
        "account_id": account.id, "name": "Small", "stage": "Proposal", "product": "Platform", "amount": 900})
    assert small.status_code == 201, small.get_json()
    clock.advance(timedelta(minutes=20))  # past the 15-minute re-check too
    dispatcher.dispatch(now=clock())
    worker()
    assert _enrollment(account.id).state == "waiting" and _messages(sent_log) == ["Say hello to Dealt"]

    clock.advance(timedelta(days=2))
    big = api("admin").post("/api/v1/opportunities", json={
        "account_id": account.id, "name": "Big", "stage": "Proposal", "product": "Platform", "amount": 25000})
    assert big.status_code == 201, big.get_json()
    assert _enrollment(account.id).next_run_at <= clock()  # woken: checked on the next dispatch
    dispatcher.dispatch(now=clock())
    worker()
    assert _messages(sent_log) == ["Say hello to Dealt", "Dealt opened a deal"]
    done = _enrollment(account.id)
    assert (done.state, done.exit_reason) == ("completed", "exit_step")  # its `exit: true`, before nurture
    clock.advance(timedelta(days=20))  # long past the timeout: nurture never comes
    dispatcher.dispatch(now=clock())
    worker()
    assert _messages(sent_log) == ["Say hello to Dealt", "Dealt opened a deal"]


def test_a_wait_until_an_opportunity_opens_times_out_without_one(app, sent_log, clock, worker):
    account = make_account("Quiet", contacts=())
    # An old deal (outside created_within) and a lost one do not end the wait.
    db.session.add(Opportunity(account_id=account.id, name="Old", stage="Proposal", product="Platform",
                               amount=Decimal(50000), created_at=clock() - timedelta(days=45)))
    db.session.commit()
    playbook_service.apply(WAIT_FOR_A_DEAL)
    playbook_service.activate("wait-for-a-deal", now=clock())
    dispatcher.dispatch(now=clock())
    worker()
    clock.advance(timedelta(days=6))
    opportunity_service.create({"account_id": account.id, "name": "Lost", "stage": "Closed Lost",
                                "product": "Platform", "amount": 30000})
    dispatcher.dispatch(now=clock())
    worker()
    assert _enrollment(account.id).state == "waiting"
    clock.advance(timedelta(days=7, hours=23))  # a day short of the timeout
    dispatcher.dispatch(now=clock())
    worker()
    assert _enrollment(account.id).state == "waiting" and _messages(sent_log) == ["Say hello to Quiet"]

    clock.advance(timedelta(days=1))
    dispatcher.dispatch(now=clock())
    worker()
    assert _messages(sent_log) == ["Say hello to Quiet", "No deal at Quiet yet"]  # on_timeout: nurture
    assert _enrollment(account.id).state == "completed"
